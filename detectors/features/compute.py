"""The feature dict of a merchant as of the end of its last closed day."""

from __future__ import annotations

from functools import lru_cache
from math import sqrt

from detectors.features.codes import (
    ACCOUNT_CATEGORIES,
    ACCOUNT_CODE_COUNT,
    CASH_WITHDRAWAL,
    CODE_IS_DEBIT,
    POS_SETTLEMENT,
    REGULAR_PAYMENTS,
    RETURNED_ITEM_CODES,
    TRANSFER_OUT,
    TRANSFER_OUT_OTHER_BANK,
    TRANSFER_OWN_OTHER_BANK,
)
from detectors.features.params import (
    ACCOUNT_DAYS,
    HISTORY_DAYS,
    MAX_WINDOW_DAYS,
    QUARTER_TREND_DAYS,
    RING_DAYS,
    RING_MASK,
    FeatureParams,
)
from detectors.features.sketches import gap_quantile, hll_window_estimates
from detectors.features.state import (
    BOOKING_CODE_BITS,
    BOOKING_COUNT_BITS,
    BOOKING_COUNT_MASK,
    EOD_RING_MASK,
    POS_RING_NAMES,
    MerchantState,
)
from schemas.inputs import CREDIT_ONLY, DEBIT_ONLY

CODE_MASK = (1 << BOOKING_CODE_BITS) - 1
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Settlement ratio reported when there was no POS turnover to settle, and its cap.
SETTLEMENT_RATIO_NEUTRAL = 1.0
SETTLEMENT_RATIO_CAP = 10.0


def _code_feature_names() -> dict[int, str]:
    names: dict[int, str] = {}
    for i, category in enumerate(ACCOUNT_CATEGORIES):
        if category not in DEBIT_ONLY:
            names[2 * i] = f"inflow_{category.value}_30d_fen"
        if category not in CREDIT_ONLY:
            names[2 * i + 1] = f"outflow_{category.value}_30d_fen"
    # Transfers to other banks are also transfers out.
    names[TRANSFER_OUT_OTHER_BANK] = names[TRANSFER_OUT]
    return names


CODE_FEATURE_NAMES = _code_feature_names()


@lru_cache(maxsize=16)
def _pos_names(windows: tuple[int, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(
        (
            f"txn_count_{w}d",
            f"amount_sum_{w}d_fen",
            f"avg_ticket_{w}d_fen",
            f"declined_count_{w}d",
            f"refund_count_{w}d",
            f"refund_amount_sum_{w}d_fen",
            f"chargeback_count_{w}d",
            f"chargeback_amount_sum_{w}d_fen",
            f"reversal_count_{w}d",
            f"refund_ratio_{w}d",
            f"chargeback_ratio_{w}d",
            f"decline_ratio_{w}d",
            f"active_days_{w}d",
            f"distinct_cards_{w}d",
        )
        for w in windows
    )


@lru_cache(maxsize=16)
def _account_names(windows: tuple[int, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(
        (
            f"acct_credit_count_{w}d",
            f"acct_credit_amount_sum_{w}d_fen",
            f"acct_debit_count_{w}d",
            f"acct_debit_amount_sum_{w}d_fen",
            f"net_cashflow_{w}d_fen",
        )
        for w in windows
    )


def last_days(ring: list[int], day: int, n: int) -> list[int]:
    """Bucket values of days ``day - n + 1 .. day``, oldest first (n <= RING_DAYS)."""
    end = (day & RING_MASK) + 1
    start = (day - n + 1) & RING_MASK
    if n == RING_DAYS:
        return ring[end:] + ring[:end]
    return ring[start:end] if start < end else ring[start:] + ring[:end]


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _relative_change(recent: int, base: int) -> float:
    """(recent - base) / (recent + base): -1 = stopped, 0 = unchanged, +1 = from nothing."""
    total = recent + base
    return (recent - base) / total if total else 0.0


def _cv(values: list[int]) -> float:
    """Coefficient of variation (population), exact in integers until the final division."""
    n = len(values)
    total = sum(values)
    if n < 2 or total <= 0:
        return 0.0
    return sqrt(max(n * sum(v * v for v in values) - total * total, 0)) / total


def _window_sums(values: list[int], windows: tuple[int, ...]) -> list[int]:
    """Sums of the last w values for each window w (values oldest first, len = largest w)."""
    return [sum(values[-w:]) for w in windows]


def _pos_features(state: MerchantState, day: int, params: FeatureParams) -> dict[str, float]:
    windows = params.windows_days
    n = windows[-1]
    count = last_days(state.approved_count, day, n)
    sums = [
        _window_sums(last_days(getattr(state, name), day, n), windows) for name in POS_RING_NAMES
    ]
    active = _window_sums([1 if c else 0 for c in count], windows)
    distinct = hll_window_estimates(state.hll_frontier, day, windows)
    out: dict[str, float] = {}
    for i, names in enumerate(_pos_names(windows)):
        c, a, d, rc, ra, cc, ca, rv = (column[i] for column in sums)
        values = (
            *(c, a, _ratio(a, c), d, rc, ra, cc, ca, rv),
            *(_ratio(ra, a), _ratio(cc, c), _ratio(d, c + d), active[i], distinct[i]),
        )
        for name, value in zip(names, values, strict=True):
            out[name] = float(value)
    return out


def _shape_features(state: MerchantState, day: int, out: dict[str, float]) -> None:
    """Trends, volatility and the weekday profile of approved turnover."""
    history = day - state.first_day + 1
    amount = last_days(state.approved_amount, day, HISTORY_DAYS)
    out["trend_7d_vs_prev_28d"] = (
        _relative_change(4 * sum(amount[-7:]), sum(amount[-35:-7])) if history >= 35 else 0.0
    )
    out["trend_28d_vs_quarter_ago"] = (
        _relative_change(sum(amount[-QUARTER_TREND_DAYS:]), sum(amount[:QUARTER_TREND_DAYS]))
        if history >= HISTORY_DAYS
        else 0.0
    )
    out["amount_cv_daily_30d"] = _cv(amount[-min(30, history) :])
    weeks = min(12, history // 7)
    size = len(amount)
    out["amount_cv_weekly_12w"] = _cv(
        [sum(amount[size - 7 * (i + 1) : size - 7 * i]) for i in range(weeks)]
    )
    amount84 = amount[-84:]
    count84 = last_days(state.approved_count, day, 84)
    total = sum(amount84)
    for weekday, name in enumerate(WEEKDAYS):  # Monday first, whatever the day: a stable order
        k = (weekday - day + 80) % 7
        first = day - 83 + k  # the slice k::7 holds days first, first + 7, ..., first + 77
        covered = 12 - min(12, max(0, -(-(state.first_day - first) // 7)))
        days = count84[k::7]
        out[f"weekday_share_{name}_12w"] = _ratio(sum(amount84[k::7]), total)
        out[f"weekday_active_rate_{name}_12w"] = _ratio(12 - days.count(0), covered)
    out["weekday_of_day"] = float((day + 3) % 7)
    out["history_days"] = float(history)


def _gap_features(state: MerchantState, day: int, out: dict[str, float]) -> None:
    last = state.last_active_day
    since = day - last if last >= 0 else day - state.first_day + 1
    hist = state.gap_hist
    q95 = gap_quantile(hist, 0.95)
    out["days_since_last_txn"] = float(since)
    out["ever_active"] = 1.0 if last >= 0 else 0.0
    out["gap_count"] = float(sum(hist))
    out["gap_q50_days"] = gap_quantile(hist, 0.50)
    out["gap_q90_days"] = gap_quantile(hist, 0.90)
    out["gap_q95_days"] = q95
    out["silence_ratio_q95"] = since / max(q95, 1.0)


def _account_features(
    state: MerchantState, day: int, params: FeatureParams, out: dict[str, float]
) -> None:
    windows = params.account_windows_days
    # Per day, oldest first: credit count and amount, debit count and amount.
    daily: list[list[int]] = [[0] * ACCOUNT_DAYS for _ in range(4)]
    code_count, code_amount = [0] * ACCOUNT_CODE_COUNT, [0] * ACCOUNT_CODE_COUNT
    first = day - ACCOUNT_DAYS + 1
    for key, packed in state.bookings.items():
        i = (key >> BOOKING_CODE_BITS) - first
        if not 0 <= i < ACCOUNT_DAYS:
            continue  # an open day after this one
        code = key & CODE_MASK
        count, amount = packed & BOOKING_COUNT_MASK, packed >> BOOKING_COUNT_BITS
        code_count[code] += count
        code_amount[code] += amount
        side = 2 if CODE_IS_DEBIT[code] else 0
        daily[side][i] += count
        daily[side + 1][i] += amount
    credit_count, credit_amount, debit_count, debit_amount = (
        _window_sums(series, windows) for series in daily
    )
    for i, names in enumerate(_account_names(windows)):
        values = (
            credit_count[i],
            credit_amount[i],
            debit_count[i],
            debit_amount[i],
            credit_amount[i] - debit_amount[i],
        )
        for name, value in zip(names, values, strict=True):
            out[name] = float(value)
    for name in CODE_FEATURE_NAMES.values():
        out[name] = 0.0
    for code, name in CODE_FEATURE_NAMES.items():
        out[name] += code_amount[code]
    debit_30d = sum(a for code, a in enumerate(code_amount) if CODE_IS_DEBIT[code])
    other_bank = code_amount[TRANSFER_OUT_OTHER_BANK] + code_amount[TRANSFER_OWN_OTHER_BANK]
    lag = params.settlement_delay_days
    turnover = sum(last_days(state.approved_amount, day - lag, ACCOUNT_DAYS))
    settled = code_amount[POS_SETTLEMENT]
    out["settlement_to_pos_ratio_30d"] = (
        min(settled / turnover, SETTLEMENT_RATIO_CAP) if turnover else SETTLEMENT_RATIO_NEUTRAL
    )
    out["other_bank_outflow_30d_fen"] = float(other_bank)
    out["other_bank_outflow_share_30d"] = _ratio(other_bank, debit_30d)
    out["cash_withdrawal_share_30d"] = _ratio(code_amount[CASH_WITHDRAWAL], debit_30d)
    out["returned_item_count_30d"] = float(sum(code_count[c] for c in RETURNED_ITEM_CODES))
    last = state.last_acct_day
    out["days_since_last_acct_txn"] = float(day - last) if last >= 0 else -1.0


def _lender_and_regular_features(state: MerchantState, day: int, out: dict[str, float]) -> None:
    count_30d = amount_30d = count_90d = amount_90d = 0
    recent: set[int] = set()
    older: set[int] = set()
    for event_day, lender, amount in state.lender_events:
        age = day - event_day
        if age < 0:
            break  # sorted by day: the rest are open days after this one
        if age >= MAX_WINDOW_DAYS:
            continue
        count_90d += 1
        amount_90d += amount
        if age < 30:
            count_30d += 1
            amount_30d += amount
            recent.add(lender)
        else:
            older.add(lender)
    out["other_lender_repay_count_30d"] = float(count_30d)
    out["other_lender_repay_amount_sum_30d_fen"] = float(amount_30d)
    out["other_lender_repay_count_90d"] = float(count_90d)
    out["other_lender_repay_amount_sum_90d_fen"] = float(amount_90d)
    out["other_lender_count_90d"] = float(len(recent | older))
    out["other_lender_new_30d"] = float(len(recent - older))
    for (name, _), days, last in zip(
        REGULAR_PAYMENTS, state.regular_days, state.regular_last, strict=True
    ):
        months = {(day - d) // 30 for d in days if 0 <= day - d < MAX_WINDOW_DAYS}
        out[f"{name}_months_paid_3m"] = float(len(months))
        out[f"days_since_{name}"] = float(day - last) if last >= 0 else -1.0


def _balance_features(state: MerchantState, day: int, out: dict[str, float]) -> None:
    known = state.eod_known_from
    ring = state.eod_ring
    values = (
        [ring[d & EOD_RING_MASK] for d in range(max(day - 29, known), day + 1)]
        if known >= 0
        else []
    )
    n = len(values)
    out["eod_balance_fen"] = float(values[-1]) if values else 0.0
    out["eod_balance_min_30d_fen"] = float(min(values)) if values else 0.0
    out["eod_balance_mean_30d_fen"] = sum(values) / n if n else 0.0
    slope = 0.0
    if n >= 2:
        sum_x = n * (n - 1) // 2
        sum_xx = (n - 1) * n * (2 * n - 1) // 6
        sum_xy = sum(i * v for i, v in enumerate(values))
        slope = (n * sum_xy - sum_x * sum(values)) / (n * sum_xx - sum_x * sum_x)
    out["eod_balance_slope_30d_fen_per_day"] = slope
    out["overdraft_days_30d"] = float(sum(1 for v in values if v < 0))
    out["eod_balance_known_days_30d"] = float(n)


def compute_features(state: MerchantState, day: int, params: FeatureParams) -> dict[str, float]:
    """Features as of the end of ``day``, the merchant's last closed day (see docs/features.md).

    The state is only read, except that distinct-card pairs no later close can see are dropped.
    """
    out = _pos_features(state, day, params)
    _shape_features(state, day, out)
    _gap_features(state, day, out)
    _account_features(state, day, params, out)
    _lender_and_regular_features(state, day, out)
    _balance_features(state, day, out)
    return out


def feature_names(params: FeatureParams) -> tuple[str, ...]:
    """Every feature name close_day emits with these parameters, in emission order.

    >>> names = feature_names(FeatureParams())
    >>> "amount_sum_7d_fen" in names and "gap_q95_days" in names
    True
    """
    state = MerchantState("names", 0)
    state.closed_through = 0
    return tuple(compute_features(state, 0, params))
