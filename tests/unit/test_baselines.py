"""The baselines agree with a naive day-by-day recomputation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.baselines import (
    days_since_last_txn,
    first_flag_day,
    returned_item_flags,
    silence_flags,
    turnover_drop_flags,
)

daily_counts = st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=120)
daily_amounts = st.lists(
    st.one_of(st.just(0), st.integers(min_value=1, max_value=10_000_000)), min_size=1, max_size=150
)


def _naive_since(counts: list[int]) -> list[int]:
    out, last = [], None
    for day, count in enumerate(counts):
        if count > 0:
            last = day
        out.append(-1 if last is None else day - last)
    return out


def _naive_drop(
    amounts: list[int], ratio: float, recent: int, base: int, min_history: int
) -> list[bool]:
    out = []
    first = next((i for i, a in enumerate(amounts) if a > 0), None)
    for day in range(len(amounts)):
        if first is None or day - first + 1 < min_history:
            out.append(False)
            continue
        span = min(day - first + 1, base)
        long_run = sum(amounts[max(0, day - base + 1) : day + 1]) / span * recent
        recent_sum = sum(amounts[max(0, day - recent + 1) : day + 1])
        out.append(long_run > 0 and recent_sum < ratio * long_run)
    return out


@given(daily_counts)
def test_days_since_last_txn_matches_a_naive_count(counts: list[int]) -> None:
    assert days_since_last_txn(counts).tolist() == _naive_since(counts)


@given(daily_counts, st.integers(min_value=0, max_value=40))
def test_silence_flags_matches_a_naive_count(counts: list[int], threshold: int) -> None:
    expected = [since > threshold for since in _naive_since(counts)]
    assert silence_flags(counts, threshold).tolist() == expected


@settings(max_examples=60)
@given(daily_amounts, st.sampled_from([(0.5, 7, 90, 28), (0.3, 3, 10, 5), (0.8, 1, 1, 1)]))
def test_turnover_drop_matches_a_naive_recomputation(
    amounts: list[int], params: tuple[float, int, int, int]
) -> None:
    ratio, recent, base, min_history = params
    got = turnover_drop_flags(amounts, ratio, recent, base, min_history).tolist()
    assert got == _naive_drop(amounts, ratio, recent, base, min_history)


def test_matrices_are_one_merchant_per_row() -> None:
    counts = np.array([[1, 0, 0, 0], [0, 0, 2, 0]])
    assert silence_flags(counts, 1).tolist() == [
        [False, False, True, True],
        [False, False, False, False],
    ]
    amounts = np.array([[100] * 30 + [0] * 7, [100] * 37])
    flags = turnover_drop_flags(amounts)
    assert flags.shape == (2, 37)
    assert flags[0, -1]
    assert not flags[1].any()


def test_a_merchant_never_seen_trading_is_not_flagged() -> None:
    assert not silence_flags([0] * 60).any()
    assert not turnover_drop_flags([0] * 60).any()


def test_drop_waits_for_history_and_ignores_days_before_the_first_sale() -> None:
    # A new merchant: 20 silent days before its first sale do not count as a drop.
    amounts = [0] * 20 + [500] * 40
    assert not turnover_drop_flags(amounts).any()


def test_returned_items_and_first_flag() -> None:
    flags = returned_item_flags([0, 0, 2, 0, 1])
    assert flags.tolist() == [False, False, True, False, True]
    assert first_flag_day(flags) == 2
    assert first_flag_day([False, False]) is None


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold_days"):
        silence_flags([1], threshold_days=-1)
    with pytest.raises(ValueError, match="recent_days"):
        turnover_drop_flags([1], recent_days=10, baseline_days=5)
    with pytest.raises(ValueError, match="1-D"):
        silence_flags(np.zeros((2, 2, 2)))
