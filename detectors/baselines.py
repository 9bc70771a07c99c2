"""Baselines to beat: days since the last sale, a 7-day turnover drop, and returned items.

Each baseline maps a merchant's daily series (the last axis is days; a 2-D array holds one
merchant per row) to a boolean flag per day. They are deliberately simple: they give the real
detectors numbers to beat. A merchant cannot be flagged before it has been seen trading.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Flags = npt.NDArray[np.bool_]
Series = npt.ArrayLike

#: Days without an approved sale after which the first baseline flags (its fixed threshold).
DEFAULT_SILENCE_DAYS = 30
#: The turnover-drop baseline: 7-day turnover under this share of the long-run 7-day level.
DEFAULT_DROP_RATIO = 0.5
DEFAULT_RECENT_DAYS = 7
DEFAULT_BASELINE_DAYS = 90
#: Days of history (from the first sale in the series) before the drop baseline may flag.
DEFAULT_MIN_HISTORY_DAYS = 28


def _days_matrix(values: Series) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim not in (1, 2):
        raise ValueError(
            f"a daily series is 1-D (days) or 2-D (merchants x days), got {array.ndim}-D"
        )
    return array if array.ndim == 2 else array[None, :]


def _shaped(flags: Flags, values: Series) -> Flags:
    return flags if np.ndim(values) == 2 else flags[0]


def days_since_last_txn(approved_count: Series) -> npt.NDArray[np.int64]:
    """Days since the last day with an approved sale; -1 until the first sale.

    >>> days_since_last_txn([3, 0, 0, 2, 0]).tolist()
    [0, 1, 2, 0, 1]
    >>> days_since_last_txn([0, 0, 4]).tolist()
    [-1, -1, 0]
    """
    counts = _days_matrix(approved_count)
    days = np.arange(counts.shape[1])
    last = np.maximum.accumulate(np.where(counts > 0, days, -1), axis=1)
    since = np.where(last >= 0, days - last, -1).astype(np.int64)
    return since if np.ndim(approved_count) == 2 else since[0]


def silence_flags(approved_count: Series, threshold_days: int = DEFAULT_SILENCE_DAYS) -> Flags:
    """Baseline 1: flag each day on which the days since the last sale exceed the threshold.

    >>> silence_flags([1, 0, 0, 0, 0], threshold_days=2).tolist()
    [False, False, False, True, True]
    """
    if threshold_days < 0:
        raise ValueError("threshold_days must be >= 0")
    since = days_since_last_txn(approved_count)
    return np.asarray(since > threshold_days, dtype=np.bool_)


def _trailing_sum(values: npt.NDArray[np.float64], window: int) -> npt.NDArray[np.float64]:
    total = np.cumsum(values, axis=1)
    shifted = np.zeros_like(total)
    shifted[:, window:] = total[:, :-window]
    return total - shifted


def turnover_drop_flags(
    approved_amount: Series,
    ratio: float = DEFAULT_DROP_RATIO,
    recent_days: int = DEFAULT_RECENT_DAYS,
    baseline_days: int = DEFAULT_BASELINE_DAYS,
    min_history_days: int = DEFAULT_MIN_HISTORY_DAYS,
) -> Flags:
    """Baseline 2: the last ``recent_days`` turnover under ``ratio`` x the long-run level.

    The long-run level is the average daily turnover over the trailing ``baseline_days`` (the
    recent days included; fewer days while the series is shorter, counted from the first
    sale), scaled to ``recent_days``. No flag before ``min_history_days`` of history, nor when
    the long-run level is zero.

    >>> sales = [100] * 30 + [10] * 7
    >>> flags = turnover_drop_flags(sales, min_history_days=28)
    >>> bool(flags[:33].any()), bool(flags[-1])
    (False, True)
    """
    amounts = _days_matrix(approved_amount)
    if not 0 < recent_days <= baseline_days:
        raise ValueError("need 0 < recent_days <= baseline_days")
    days = np.arange(amounts.shape[1])
    first = np.argmax(amounts > 0, axis=1)
    seen: Flags = np.asarray((amounts > 0).any(axis=1), dtype=np.bool_)
    history = days[None, :] - first[:, None] + 1
    recent = _trailing_sum(amounts, recent_days)
    span = np.clip(np.minimum(history, baseline_days), 1, None)
    # The baseline window starts no earlier than the first sale: the zeros before a merchant
    # existed are not a quiet period of its business.
    long_run = _trailing_sum(amounts, baseline_days) / span * recent_days
    mature = seen[:, None] & (history >= min_history_days)
    flags: Flags = np.asarray(mature & (long_run > 0) & (recent < ratio * long_run), dtype=np.bool_)
    return _shaped(flags, approved_amount)


def returned_item_flags(returned_item_count: Series) -> Flags:
    """Credit baseline: flag each day with at least one bounced (returned) item.

    >>> returned_item_flags([0, 1, 0]).tolist()
    [False, True, False]
    """
    counts = _days_matrix(returned_item_count)
    return _shaped(np.asarray(counts > 0, dtype=np.bool_), returned_item_count)


def first_flag_day(flags: npt.ArrayLike) -> int | None:
    """Index of the first flagged day, or None.

    >>> first_flag_day([False, False, True, True])
    2
    >>> first_flag_day([False]) is None
    True
    """
    hits = np.flatnonzero(np.asarray(flags, dtype=np.bool_))
    return int(hits[0]) if hits.size else None
