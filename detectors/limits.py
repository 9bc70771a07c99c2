"""POS-loan limit policy (POS贷额度): winsorised turnover in, a damped, explained limit out."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field, fields
from datetime import date
from typing import NamedTuple

from detectors.base import DetectorParamsError, StateDecodeError, clip
from detectors.features.params import BusinessCalendar

#: Format byte of ``LimitState.encode``; ``decode`` refuses any other.
LIMIT_STATE_FORMAT = 1
#: Calendar months kept per merchant: the longest look-back (12) plus the current partial month.
MAX_MONTHS = 13
#: Largest warm-up (active days held raw until the typical day is known): the memory bound.
MAX_WARMUP_DAYS = 7
#: Average days per month: trailing turnover per observed day is scaled to a month with it.
DAYS_PER_MONTH = 30.44
#: Months of the expected turnover that repays the loan (at most the look-back).
EXPECTED_TURNOVER_MONTHS = 3
#: One day's turnover is clamped to this (CNY 10 trillion), so month sums fit in 64 bits.
MAX_DAY_FEN = 10**15
#: Longest reason, as the output schema allows.
MAX_REASON_CHARS = 200

_HEAD = struct.Struct("<BdiiiqBIBBBd")  # format, typical, observed, first, last, limit, eligible,
# version, credit alert, months count, warm-up count, smoothed volatility
_MONTH = struct.Struct("<HqBB")  # month index, winsorised turnover fen, days observed, spike days
_WARM = struct.Struct("<iq")  # day, raw approved turnover fen

# name: (low, high, low excluded); ints are checked to be ints.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "product_cap_fen": (1, 10**12, False),
    "turnover_multiple": (0.0, 24.0, True),
    "lookback_months": (1, 12, False),
    "repayment_share": (0.0, 1.0, True),
    "payback_months": (1, 120, False),
    "spike_cap_multiple": (1.0, 1000.0, False),
    "spike_floor_fen": (1, 10**12, False),
    "typical_alpha": (0.0, 1.0, True),
    "warmup_active_days": (1, MAX_WARMUP_DAYS, False),
    "stable_cv": (0.0, 10.0, False),
    "unstable_cv": (0.0, 10.0, True),
    "unstable_haircut": (0.0, 1.0, False),
    "max_txn_per_card": (1.0, 10_000.0, False),
    "credit_score_weight": (0.0, 1.0, False),
    "open_credit_alert_factor": (0.0, 1.0, False),
    "min_history_months": (0, 120, False),
    "min_observed_days": (0, 3660, False),
    "min_active_days_30d": (0, 30, False),
    "max_refund_ratio": (0.0, 1.0, False),
    "max_chargeback_ratio": (0.0, 1.0, False),
    "increase_rate": (0.0, 1.0, True),
    "rounding_fen": (1, 10**12, False),
    "change_tolerance": (0.0, 0.5, False),
    "volatility_alpha": (0.0, 1.0, True),
}
_INT_PARAMS = frozenset(
    {
        "product_cap_fen",
        "lookback_months",
        "payback_months",
        "spike_floor_fen",
        "warmup_active_days",
        "min_history_months",
        "min_observed_days",
        "min_active_days_30d",
        "rounding_fen",
    }
)


@dataclass(frozen=True)
class LimitParams:
    """Every parameter of the POS-loan limit policy (each one a setting); validated on creation.

    Parameters
    ----------
    product_cap_fen
        Largest limit the product allows.
    turnover_multiple
        The turnover leg: this many times the trailing monthly approved turnover.
    lookback_months
        Calendar months (1..12, the current partial one included) of the trailing turnover.
    repayment_share
        Share of card sales that repays; the repayment leg is this share of the expected
        monthly turnover (last 3 months) times ``payback_months``.
    payback_months
        Months over which a loan is repaid.
    spike_cap_multiple
        A day's turnover counts at most this multiple of the merchant's typical active day.
    spike_floor_fen
        ... but a day is never cut below this (so a few tiny test days cannot cap everything).
    typical_alpha
        EWMA weight of a new active day in the typical active day.
    warmup_active_days
        The first active days (1..7) are held raw; their median then sets the typical day and
        they are winsorised against it after the fact. Until then the merchant is ineligible.
    stable_cv, unstable_cv, unstable_haircut
        Weekly-turnover CV at or below ``stable_cv``: no haircut; at or above ``unstable_cv``:
        ``unstable_haircut``; linear in between.
    max_txn_per_card
        More approved transactions per distinct card (30 days) than this: the limit is
        multiplied by ``max_txn_per_card / ratio`` (self-swiping a few cards).
    credit_score_weight
        Risk factor ``1 - weight * credit_score`` (the score in 0..1, higher is worse) ...
    open_credit_alert_factor
        ... times this while a credit alert is open; on opening, the limit is cut at once to at
        most this share of the previous limit, and it does not rise until the alert closes.
    min_history_months, min_observed_days, min_active_days_30d
        Eligibility: months since onboarding, days of turnover observed here, active days.
    max_refund_ratio, max_chargeback_ratio
        Eligibility: 90-day refund and chargeback ratios at most these.
    increase_rate
        An increase moves this share of the gap to the target per recompute (at least one
        ``rounding_fen`` step, never past the target); cuts are immediate.
    rounding_fen
        Limits are rounded down to multiples of this.
    change_tolerance
        A target within this share of the current limit leaves it unchanged, so day-to-day
        noise does not make limits flicker (a credit alert or ineligibility still cuts at once).
    volatility_alpha
        EWMA weight of today's weekly CV in the volatility the haircut uses.

    Examples
    --------
    >>> LimitParams().product_cap_fen
    50000000
    >>> LimitParams(stable_cv=0.6)
    Traceback (most recent call last):
    ...
    detectors.base.DetectorParamsError: stable_cv (0.6) must be below unstable_cv (0.5)
    """

    product_cap_fen: int = 50_000_000
    turnover_multiple: float = 2.0
    lookback_months: int = 6
    repayment_share: float = 0.10
    payback_months: int = 12
    spike_cap_multiple: float = 3.0
    spike_floor_fen: int = 100_000
    typical_alpha: float = 0.05
    warmup_active_days: int = 5
    stable_cv: float = 0.25
    unstable_cv: float = 0.5
    unstable_haircut: float = 0.5
    max_txn_per_card: float = 4.0
    credit_score_weight: float = 0.5
    open_credit_alert_factor: float = 0.5
    min_history_months: int = 3
    min_observed_days: int = 30
    min_active_days_30d: int = 8
    max_refund_ratio: float = 0.10
    max_chargeback_ratio: float = 0.01
    increase_rate: float = 0.25
    rounding_fen: int = 100_000
    change_tolerance: float = 0.1
    volatility_alpha: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            low, high, open_low = _RANGES[f.name]
            is_int = isinstance(value, int) and not isinstance(value, bool)
            if f.name in _INT_PARAMS and not is_int:
                raise DetectorParamsError(f"{f.name} must be an int, got {value!r}")
            if not (is_int or isinstance(value, float)):
                raise DetectorParamsError(f"{f.name} must be a number, got {value!r}")
            if not (low < value <= high if open_low else low <= value <= high):
                side = "(" if open_low else "["
                msg = f"{f.name} must lie within {side}{low}, {high}], got {value!r}"
                raise DetectorParamsError(msg)
        if self.stable_cv >= self.unstable_cv:
            msg = f"stable_cv ({self.stable_cv}) must be below unstable_cv ({self.unstable_cv})"
            raise DetectorParamsError(msg)
        if self.rounding_fen > self.product_cap_fen:
            msg = f"rounding_fen ({self.rounding_fen}) exceeds product_cap_fen"
            raise DetectorParamsError(msg)


class MonthTotal(NamedTuple):
    """One calendar month of a merchant's approved POS turnover, as kept in ``LimitState``."""

    month: int  # year * 12 + month - 1
    turnover_fen: int  # winsorised
    days: int  # days observed in the month (quiet days included)
    spike_days: int  # days whose turnover was winsorised


@dataclass(slots=True)
class LimitState:
    """What the limit policy keeps per merchant (bounded: < 300 bytes encoded).

    ``warmup`` holds the first active days raw (day, fen) until ``warmup_active_days`` are
    seen; ``typical_day_fen`` is 0 until then. ``credit_alert`` is the open credit-alert level
    at the last decision (a newly opened alert cuts at once).
    """

    typical_day_fen: float = 0.0
    observed_days: int = 0
    first_day: int = -1
    last_day: int = -1
    months: list[MonthTotal] = field(default_factory=list)
    warmup: list[tuple[int, int]] = field(default_factory=list)
    limit_fen: int = 0
    eligible: bool = False
    version: int = 0
    credit_alert: int = 0
    volatility: float = -1.0

    def encode(self) -> bytes:
        """Compact bytes for the worker's table (format byte first).

        >>> s = LimitState()
        >>> observe_day(s, 20_000, 150_000, LimitParams())
        >>> LimitState.decode(s.encode()) == s, len(s.encode())
        (True, 69)
        """
        head = _HEAD.pack(
            LIMIT_STATE_FORMAT,
            self.typical_day_fen,
            self.observed_days,
            self.first_day,
            self.last_day,
            self.limit_fen,
            self.eligible,
            self.version,
            self.credit_alert,
            len(self.months),
            len(self.warmup),
            self.volatility,
        )
        months = b"".join(_MONTH.pack(*m) for m in self.months)
        return head + months + b"".join(_WARM.pack(d, a) for d, a in self.warmup)

    @classmethod
    def decode(cls, data: bytes) -> LimitState:
        """The state from ``encode``'s bytes; ``StateDecodeError`` on anything else."""
        if not data or data[0] != LIMIT_STATE_FORMAT:
            got = data[0] if data else "empty"
            msg = f"unknown limit state format {got} (this build reads {LIMIT_STATE_FORMAT})"
            raise StateDecodeError(msg)
        try:
            return cls._decode(memoryview(data))
        except (struct.error, ValueError) as exc:
            raise StateDecodeError(f"corrupt limit state: {exc}") from exc

    @classmethod
    def _decode(cls, buf: memoryview) -> LimitState:
        head = _HEAD.unpack_from(buf, 0)
        _, typical, observed, first, last, limit, eligible, version, alert, n_months, n_warm = head[
            :11
        ]
        volatility = head[11]
        if n_months > MAX_MONTHS or n_warm > MAX_WARMUP_DAYS:
            raise ValueError(f"{n_months} months, {n_warm} warm-up days")
        size = _HEAD.size + n_months * _MONTH.size + n_warm * _WARM.size
        if len(buf) != size:
            raise ValueError(f"{len(buf)} bytes, expected {size}")
        if eligible > 1 or alert > 2 or not (math.isfinite(typical) and typical >= 0):
            raise ValueError("field out of range")
        if not (math.isfinite(volatility) and volatility >= -1.0):
            raise ValueError("field out of range")
        months = [
            MonthTotal(*_MONTH.unpack_from(buf, _HEAD.size + i * _MONTH.size))
            for i in range(n_months)
        ]
        if any(m.days > 31 or m.spike_days > m.days or m.turnover_fen < 0 for m in months):
            raise ValueError("month out of range")
        start = _HEAD.size + n_months * _MONTH.size
        warmup = [_WARM.unpack_from(buf, start + i * _WARM.size) for i in range(n_warm)]
        return cls(
            typical,
            observed,
            first,
            last,
            months,
            warmup,
            limit,
            bool(eligible),
            version,
            alert,
            volatility,
        )


def month_of_day(day: int) -> int:
    """Month index (``year * 12 + month - 1``) of a business day.

    >>> month_of_day(BusinessCalendar.day_of_date(date(2026, 3, 31)))
    24314
    """
    d = BusinessCalendar.date_of_day(day)
    return d.year * 12 + d.month - 1


def _month_start(month: int) -> int:
    return BusinessCalendar.day_of_date(date(month // 12, month % 12 + 1, 1))


def _add(months: list[MonthTotal], month: int, fen: int, days: int, spikes: int) -> None:
    """Add to a month's totals (months are ascending and days arrive in order)."""
    if months and months[-1].month == month:
        m = months[-1]
        months[-1] = MonthTotal(month, m.turnover_fen + fen, m.days + days, m.spike_days + spikes)
    else:
        months.append(MonthTotal(month, fen, days, spikes))


def _count_quiet_days(months: list[MonthTotal], start: int, stop: int) -> None:
    """Days ``start .. stop - 1`` were not reported: observed, with no turnover."""
    start = max(start, _month_start(month_of_day(stop) - MAX_MONTHS + 1))
    while start < stop:
        month = month_of_day(start)
        end = min(_month_start(month + 1), stop)
        _add(months, month, 0, end - start, 0)
        start = end


def _end_warmup(state: LimitState, params: LimitParams) -> None:
    """Typical day from the warm-up's median; the warm-up days winsorised after the fact."""
    amounts = sorted(a for _, a in state.warmup)
    n = len(amounts)
    median = (amounts[(n - 1) // 2] + amounts[n // 2]) / 2
    ceiling = max(int(params.spike_cap_multiple * median), params.spike_floor_fen)
    total = 0
    for day, amount in state.warmup:
        kept = min(amount, ceiling)
        total += kept
        month = month_of_day(day)
        for i, m in enumerate(state.months):
            if m.month == month and kept < amount:
                excess = amount - kept
                state.months[i] = m._replace(
                    turnover_fen=m.turnover_fen - excess, spike_days=m.spike_days + 1
                )
    state.typical_day_fen = total / n
    state.warmup.clear()


def observe_day(state: LimitState, day: int, approved_amount_fen: int, params: LimitParams) -> None:
    """Fold one closed merchant-day's approved POS turnover (winsorised) into the state.

    Days arrive in increasing order; a repeated or older day is ignored. Days skipped since the
    last one count as observed days without turnover. After the warm-up a day counts at most
    ``max(spike_cap_multiple * typical_day_fen, spike_floor_fen)``.

    Examples
    --------
    >>> params, state = LimitParams(), LimitState()
    >>> for i in range(10):
    ...     observe_day(state, 20_000 + i, 200_000, params)
    >>> observe_day(state, 20_010, 50_000_000, params)  # a spike: counts as 3 typical days
    >>> state.typical_day_fen, state.months[-1].turnover_fen, state.months[-1].spike_days
    (220000.0, 2600000, 1)
    """
    if state.last_day >= 0 and day <= state.last_day:
        return
    amount = min(max(int(approved_amount_fen), 0), MAX_DAY_FEN)
    if state.first_day < 0:
        state.first_day = day
    elif day > state.last_day + 1:
        _count_quiet_days(state.months, state.last_day + 1, day)
        state.observed_days += day - state.last_day - 1
    kept, spike = amount, 0
    if amount > 0:
        if state.typical_day_fen > 0:
            ceiling = max(
                int(params.spike_cap_multiple * state.typical_day_fen), params.spike_floor_fen
            )
            kept, spike = min(amount, ceiling), int(amount > ceiling)
            state.typical_day_fen += params.typical_alpha * (kept - state.typical_day_fen)
        else:
            state.warmup.append((day, amount))
    month = month_of_day(day)
    _add(state.months, month, kept, 1, spike)
    while state.months[0].month <= month - MAX_MONTHS:
        del state.months[0]
    state.observed_days += 1
    state.last_day = day
    if state.warmup and len(state.warmup) >= params.warmup_active_days:
        _end_warmup(state, params)


@dataclass(frozen=True, slots=True)
class LimitInputs:
    """What the limit needs on a day besides its own state (features, profile, alerts, loans)."""

    day: int
    history_months: float
    active_days_30d: int
    refund_ratio_90d: float
    chargeback_ratio_90d: float
    weekly_cv: float
    txn_count_30d: int
    distinct_cards_30d: int
    credit_score: float
    open_credit_alert: int
    dormant: bool
    outstanding_fen: int
    blocked_reason: str | None = None


@dataclass(frozen=True, slots=True)
class LimitDecision:
    """A limit with its parts and reasons (``risk_factor`` includes ``concentration_factor``)."""

    eligible: bool
    limit_fen: int
    previous_limit_fen: int
    cap_fen: int
    turnover_based_fen: int
    repayment_based_fen: int
    stability_haircut: float
    risk_factor: float
    outstanding_fen: int
    reasons: tuple[str, ...]
    target_fen: int = 0
    concentration_factor: float = 1.0
    open_credit_alert: int = 0
    volatility: float = -1.0


def cny(fen: float) -> str:
    """An amount in fen as ``CNY 1,234.56`` (truncated to whole fen).

    >>> cny(12_345_678), cny(-5)
    ('CNY 123,456.78', 'CNY -0.05')
    """
    value = int(fen)
    sign, value = ("-" if value < 0 else ""), abs(value)
    return f"CNY {sign}{value // 100:,}.{value % 100:02d}"


def _trailing(state: LimitState, day: int, n_months: int) -> tuple[float, int, int]:
    """Monthly turnover over the last ``n_months`` (per observed day x 30.44), days, spikes."""
    last = month_of_day(day)
    first = last - n_months + 1
    days = total = spikes = 0
    for m in state.months:  # one pass: this runs at every merchant-day close
        if first <= m.month <= last:
            days += m.days
            total += m.turnover_fen
            spikes += m.spike_days
    return (total / days * DAYS_PER_MONTH if days else 0.0), days, spikes


def _smoothed(previous: float, cv: float, alpha: float) -> float:
    """The volatility the haircut uses: an EWMA of the weekly CV (one bad week moves it a
    little, a lasting change fully); NaN while nothing valid was seen."""
    if not math.isfinite(cv) or cv < 0:
        return previous if previous >= 0 else math.nan
    return cv if previous < 0 else previous + alpha * (cv - previous)


def _haircut(cv: float, params: LimitParams) -> float:
    if not math.isfinite(cv) or cv >= params.unstable_cv:
        return params.unstable_haircut
    if cv <= params.stable_cv:
        return 1.0
    share = (cv - params.stable_cv) / (params.unstable_cv - params.stable_cv)
    return 1.0 - share * (1.0 - params.unstable_haircut)


def _round_down(fen: float, step: int) -> int:
    return int(fen) // step * step


def _ineligibility(state: LimitState, x: LimitInputs, params: LimitParams) -> list[str]:
    """Every failing eligibility rule as a reason (NaN inputs fail their rule)."""
    out = []
    if x.blocked_reason:
        out.append(f"ineligible: {x.blocked_reason}")
    if not x.history_months >= params.min_history_months:
        out.append(
            f"ineligible: acquiring history {x.history_months:.1f} months"
            f" < {params.min_history_months}"
        )
    if state.observed_days < params.min_observed_days:
        out.append(
            f"ineligible: {state.observed_days} days of turnover observed"
            f" < {params.min_observed_days}"
        )
    if state.typical_day_fen <= 0:
        out.append(
            f"ineligible: {len(state.warmup)} active days observed,"
            f" {params.warmup_active_days} needed to learn a typical day"
        )
    if x.active_days_30d < params.min_active_days_30d:
        out.append(
            f"ineligible: {x.active_days_30d} active days in 30d < {params.min_active_days_30d}"
        )
    if not x.refund_ratio_90d <= params.max_refund_ratio:
        out.append(
            f"ineligible: refund ratio 90d {x.refund_ratio_90d:.1%} > {params.max_refund_ratio:.1%}"
        )
    if not x.chargeback_ratio_90d <= params.max_chargeback_ratio:
        out.append(
            f"ineligible: chargeback ratio 90d {x.chargeback_ratio_90d:.2%}"
            f" > {params.max_chargeback_ratio:.2%}"
        )
    if x.dormant:
        out.append("ineligible: dormant")
    if x.open_credit_alert >= 2:
        out.append("ineligible: open high-severity credit alert")
    return out


def _damp(
    previous: int, target: int, alert: int, state: LimitState, params: LimitParams
) -> tuple[int, str]:
    """Cuts at once, increases damped, no increase while a credit alert is open."""
    step = params.rounding_fen
    if alert and not state.credit_alert:
        limit = min(target, _round_down(previous * params.open_credit_alert_factor, step))
        return limit, f"cut at once: open credit alert, {cny(previous)} -> {cny(limit)}"
    band = params.change_tolerance * previous
    if previous - band <= target <= previous + band:
        # Day-to-day noise (turnover, scores) must not make the limit flicker.
        return previous, f"unchanged at {cny(previous)} (target {cny(target)} within tolerance)"
    if target < previous:
        return target, f"cut at once: {cny(previous)} -> {cny(target)}"
    if alert:
        return previous, f"no increase while a credit alert is open (target {cny(target)})"
    moved = _round_down(previous + params.increase_rate * (target - previous), step)
    limit = min(target, max(moved, _round_down(previous, step) + step))
    return limit, f"increase damped: {cny(previous)} -> {cny(limit)} toward target {cny(target)}"


def decide(state: LimitState, inputs: LimitInputs, params: LimitParams) -> LimitDecision:
    """The limit for ``inputs.day`` from the state and inputs, damped against ``state.limit_fen``.

    Pure: the state is not mutated (``apply`` records the decision). The parts are computed
    even when the merchant is ineligible (for audit); the limit is then 0 at once.

    Examples
    --------
    >>> params, state = LimitParams(), LimitState()
    >>> for i in range(120):  # CNY 2,000 a day for four months
    ...     observe_day(state, 20_000 + i, 200_000, params)
    >>> x = LimitInputs(day=20_119, history_months=6.0, active_days_30d=30,
    ...     refund_ratio_90d=0.01, chargeback_ratio_90d=0.0, weekly_cv=0.1, txn_count_30d=900,
    ...     distinct_cards_30d=600, credit_score=0.2, open_credit_alert=0, dormant=False,
    ...     outstanding_fen=0)
    >>> d = decide(state, x, params)
    >>> d.turnover_based_fen, d.repayment_based_fen, d.risk_factor, d.target_fen, d.limit_fen
    (12176000, 7305600, 0.9, 6500000, 1600000)
    >>> d.reasons[-1]
    'increase damped: CNY 0.00 -> CNY 16,000.00 toward target CNY 65,000.00'
    >>> apply(state, d), apply(state, d)
    (True, False)
    >>> decide(state, x, params).limit_fen  # a quarter of the remaining gap, rounded down
    2800000
    """
    failures = _ineligibility(state, inputs, params)
    alert = min(max(int(inputs.open_credit_alert), 0), 2)
    monthly, days, spikes = _trailing(state, inputs.day, params.lookback_months)
    expected_months = min(EXPECTED_TURNOVER_MONTHS, params.lookback_months)
    expected = _trailing(state, inputs.day, expected_months)[0]
    cap = params.product_cap_fen
    turnover_based = int(params.turnover_multiple * monthly)
    repayment_based = int(params.repayment_share * expected * params.payback_months)
    base = min(cap, turnover_based, repayment_based)
    volatility = _smoothed(state.volatility, inputs.weekly_cv, params.volatility_alpha)
    haircut = _haircut(volatility, params)
    score = clip(inputs.credit_score) if math.isfinite(inputs.credit_score) else 1.0
    credit = 1.0 - params.credit_score_weight * score
    per_card = max(inputs.txn_count_30d, 0) / max(inputs.distinct_cards_30d, 1)
    concentration = min(1.0, params.max_txn_per_card / per_card) if per_card > 0 else 1.0
    risk = credit * (params.open_credit_alert_factor if alert else 1.0) * concentration
    outstanding = max(inputs.outstanding_fen, 0)
    target = _round_down(clip(base * haircut * risk - outstanding, 0, cap), params.rounding_fen)

    binds = ("product cap", "turnover-based", "repayment-based")[
        (cap, turnover_based, repayment_based).index(base)
    ]
    reasons = [
        f"trailing monthly turnover {cny(monthly)} over {params.lookback_months} months"
        f" ({days} days observed, {spikes} spike day{'' if spikes == 1 else 's'} winsorised)",
        f"turnover-based {cny(turnover_based)} = {params.turnover_multiple:g} x monthly turnover",
        f"repayment-based {cny(repayment_based)} = {params.repayment_share:.0%} x expected"
        f" monthly turnover {cny(expected)} x {params.payback_months} months",
        f"base {cny(base)}: {binds} binds",
    ]
    if haircut < 1.0:
        reasons.append(
            f"stability haircut {haircut:.2f}: weekly turnover CV {volatility:.2f}"
            f" (smoothed; today {inputs.weekly_cv:.2f})"
        )
    if credit < 1.0:
        reasons.append(f"credit score {score:.2f}: x{credit:.2f}")
    if alert:
        reasons.append(f"open credit alert: x{params.open_credit_alert_factor:g}")
    if concentration < 1.0:
        reasons.append(
            f"card concentration: {per_card:.1f} approved txns per card in 30d"
            f" > {params.max_txn_per_card:g}: x{concentration:.2f}"
        )
    if outstanding:
        reasons.append(f"less outstanding POS-loan balance {cny(outstanding)}")
    previous = state.limit_fen
    if failures:
        limit = 0
        reasons = failures + (["cut at once to 0"] if previous else []) + reasons
    else:
        limit, note = _damp(previous, target, alert, state, params)
        reasons.append(note)
    return LimitDecision(
        eligible=not failures,
        limit_fen=limit,
        previous_limit_fen=previous,
        cap_fen=cap,
        turnover_based_fen=turnover_based,
        repayment_based_fen=repayment_based,
        stability_haircut=haircut,
        risk_factor=clip(risk),
        outstanding_fen=outstanding,
        reasons=tuple(r[:MAX_REASON_CHARS] for r in reasons),
        target_fen=target,
        concentration_factor=concentration,
        open_credit_alert=alert,
        volatility=volatility if math.isfinite(volatility) else -1.0,
    )


def apply(state: LimitState, decision: LimitDecision) -> bool:
    """Record the decision in the state; True when the limit or the eligibility changed.

    The caller then publishes a new version (and bumps ``state.version``).
    """
    changed = decision.limit_fen != state.limit_fen or decision.eligible != state.eligible
    state.limit_fen = decision.limit_fen
    state.eligible = decision.eligible
    state.credit_alert = decision.open_credit_alert
    state.volatility = decision.volatility
    return changed
