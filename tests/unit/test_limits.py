"""Unit tests of the POS-loan limit policy on plain values, with Hypothesis invariants."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import DetectorParamsError, StateDecodeError
from detectors.features.params import BusinessCalendar
from detectors.limits import (
    DAYS_PER_MONTH,
    MAX_MONTHS,
    MAX_WARMUP_DAYS,
    LimitDecision,
    LimitInputs,
    LimitParams,
    LimitState,
    MonthTotal,
    apply,
    decide,
    month_of_day,
    observe_day,
)

P = LimitParams()
DAY0 = BusinessCalendar.day_of_date(date(2026, 1, 5))
QUICK = settings(max_examples=60, deadline=None)


def _state(amounts: list[int], params: LimitParams = P, start: int = DAY0) -> LimitState:
    state = LimitState()
    for i, amount in enumerate(amounts):
        observe_day(state, start + i, amount, params)
    return state


def _inputs(day: int, **overrides: object) -> LimitInputs:
    """Inputs of a healthy, eligible merchant on ``day``."""
    base = LimitInputs(
        day=day,
        history_months=12.0,
        active_days_30d=26,
        refund_ratio_90d=0.01,
        chargeback_ratio_90d=0.0,
        weekly_cv=0.1,
        txn_count_30d=900,
        distinct_cards_30d=700,
        credit_score=0.0,
        open_credit_alert=0,
        dormant=False,
        outstanding_fen=0,
    )
    return dataclasses.replace(base, **overrides)


def _at_limit(state: LimitState, limit_fen: int, credit_alert: int = 0) -> LimitState:
    """A copy of the state whose last decided limit was ``limit_fen`` (eligible)."""
    out = LimitState.decode(state.encode())
    out.limit_fen, out.eligible, out.credit_alert = limit_fen, True, credit_alert
    return out


STEADY = [100_000] * 150  # CNY 1,000 a day for five months
LAST = DAY0 + len(STEADY) - 1

amounts_st = st.lists(st.integers(0, 5_000_000), min_size=0, max_size=160)
healthy_amounts_st = st.lists(st.integers(50_000, 3_000_000), min_size=60, max_size=160)
inputs_st = st.fixed_dictionaries(
    {
        "history_months": st.floats(0, 60),
        "active_days_30d": st.integers(0, 30),
        "refund_ratio_90d": st.floats(0, 0.3),
        "chargeback_ratio_90d": st.floats(0, 0.03),
        "weekly_cv": st.floats(0, 2),
        "txn_count_30d": st.integers(0, 5000),
        "distinct_cards_30d": st.integers(0, 3000),
        "credit_score": st.floats(0, 1),
        "open_credit_alert": st.integers(0, 2),
        "dormant": st.booleans(),
        "outstanding_fen": st.integers(0, 60_000_000),
    }
)
eligible_inputs_st = st.fixed_dictionaries(
    {
        "weekly_cv": st.floats(0, 2),
        "txn_count_30d": st.integers(0, 5000),
        "distinct_cards_30d": st.integers(0, 3000),
        "credit_score": st.floats(0, 1),
        "outstanding_fen": st.integers(0, 5_000_000),
    }
)


# ---- parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"product_cap_fen": 0},
        {"turnover_multiple": 0.0},
        {"turnover_multiple": float("nan")},
        {"lookback_months": 0},
        {"lookback_months": 13},
        {"lookback_months": 6.0},
        {"repayment_share": 0.0},
        {"repayment_share": 1.5},
        {"payback_months": 0},
        {"spike_cap_multiple": 0.5},
        {"stable_cv": 0.5},
        {"stable_cv": -0.1},
        {"unstable_haircut": 1.5},
        {"max_txn_per_card": 0.5},
        {"credit_score_weight": -0.1},
        {"open_credit_alert_factor": 2.0},
        {"min_active_days_30d": 31},
        {"max_refund_ratio": -0.01},
        {"increase_rate": 0.0},
        {"increase_rate": 1.01},
        {"rounding_fen": 0},
        {"rounding_fen": 60_000_000},
        {"warmup_active_days": MAX_WARMUP_DAYS + 1},
        {"typical_alpha": 0.0},
        {"min_history_months": True},
    ],
)
def test_bad_params_raise(overrides: dict[str, object]) -> None:
    with pytest.raises(DetectorParamsError):
        LimitParams(**overrides)  # type: ignore[arg-type]


def test_default_params_are_the_documented_ones() -> None:
    assert (P.product_cap_fen, P.turnover_multiple, P.lookback_months) == (50_000_000, 2.0, 6)
    assert (P.repayment_share, P.payback_months, P.rounding_fen) == (0.10, 12, 100_000)
    assert (P.stable_cv, P.unstable_cv, P.unstable_haircut, P.increase_rate) == (
        0.25,
        0.5,
        0.5,
        0.25,
    )


# ---- observing days ---------------------------------------------------------------------


def test_repeated_and_older_days_are_ignored() -> None:
    state = _state([100_000] * 10)
    before = state.encode()
    observe_day(state, DAY0 + 9, 9_000_000, P)
    observe_day(state, DAY0 + 3, 9_000_000, P)
    assert state.encode() == before


def test_skipped_days_count_as_quiet_observed_days() -> None:
    state = LimitState()
    observe_day(state, DAY0, 100_000, P)
    observe_day(state, DAY0 + 40, 100_000, P)  # 39 unreported days between
    assert state.observed_days == 41
    assert sum(m.days for m in state.months) == 41
    assert sum(m.turnover_fen for m in state.months) == 200_000


def test_months_are_bounded_and_ordered() -> None:
    state = _state([100_000] * 800)
    assert len(state.months) == MAX_MONTHS
    months = [m.month for m in state.months]
    assert months == list(range(months[0], months[0] + MAX_MONTHS))
    assert months[-1] == month_of_day(DAY0 + 799)


def test_warm_up_does_not_cap_a_growing_start() -> None:
    state = _state([100_000, 200_000, 300_000, 400_000, 500_000])
    assert not state.warmup
    assert state.typical_day_fen == pytest.approx(300_000)
    assert sum(m.turnover_fen for m in state.months) == 1_500_000
    assert sum(m.spike_days for m in state.months) == 0


def test_spike_in_warm_up_is_winsorised_after_the_fact() -> None:
    state = _state([100_000, 100_000, 1_000_000_000, 100_000, 100_000])
    assert sum(m.turnover_fen for m in state.months) == 4 * 100_000 + 300_000
    assert sum(m.spike_days for m in state.months) == 1
    assert state.typical_day_fen == pytest.approx(140_000)


# ---- decisions: range and monotonicity ----------------------------------------------------


@QUICK
@given(
    amounts=amounts_st,
    x=inputs_st,
    cap_units=st.integers(1, 500),
    rounding=st.sampled_from([1, 100, 100_000]),
    prev_units=st.integers(0, 600),
    prev_alert=st.integers(0, 2),
)
def test_limit_is_never_negative_nor_above_the_cap(
    amounts: list[int],
    x: dict[str, object],
    cap_units: int,
    rounding: int,
    prev_units: int,
    prev_alert: int,
) -> None:
    params = LimitParams(product_cap_fen=cap_units * 100_000, rounding_fen=rounding)
    state = _state(amounts, params)
    state = _at_limit(state, prev_units * rounding, prev_alert)
    d = decide(state, _inputs(DAY0 + len(amounts), **x), params)
    assert 0 <= d.limit_fen <= params.product_cap_fen
    assert 0 <= d.target_fen <= params.product_cap_fen
    assert d.limit_fen % rounding == 0
    assert min(d.turnover_based_fen, d.repayment_based_fen, d.outstanding_fen) >= 0
    assert 0.0 <= d.stability_haircut <= 1.0
    assert 0.0 <= d.risk_factor <= 1.0
    assert d.reasons
    assert all(0 < len(r) <= 200 for r in d.reasons)
    if not d.eligible:
        assert d.limit_fen == 0


@QUICK
@given(
    amounts=healthy_amounts_st,
    extra=st.lists(st.integers(0, 10_000_000), min_size=160, max_size=160),
    x=eligible_inputs_st,
    prev_units=st.integers(0, 500),
)
def test_more_turnover_never_gives_a_lower_limit(
    amounts: list[int], extra: list[int], x: dict[str, object], prev_units: int
) -> None:
    low = _state(amounts)
    high = _state([a + e for a, e in zip(amounts, extra, strict=False)])
    inputs = _inputs(DAY0 + len(amounts) - 1, **x)
    for prev in (0, prev_units * P.rounding_fen):
        d_low = decide(_at_limit(low, prev), inputs, P)
        d_high = decide(_at_limit(high, prev), inputs, P)
        assert d_high.turnover_based_fen >= d_low.turnover_based_fen
        assert d_high.target_fen >= d_low.target_fen
        assert d_high.limit_fen >= d_low.limit_fen


def test_cap_binds() -> None:
    state = _state([10_000_000] * 150)  # CNY 100,000 a day
    d = decide(_at_limit(state, P.product_cap_fen), _inputs(LAST), P)
    assert d.limit_fen == d.target_fen == P.product_cap_fen
    assert any("product cap binds" in r for r in d.reasons)


def test_partial_observation_is_scaled_to_a_month() -> None:
    state = _state([100_000] * 40)
    d = decide(state, _inputs(DAY0 + 39), P)
    assert d.turnover_based_fen == int(2.0 * 100_000 * DAYS_PER_MONTH)
    assert d.repayment_based_fen == int(0.10 * 100_000 * DAYS_PER_MONTH * 12)


def test_decide_does_not_mutate_the_state() -> None:
    state = _state(STEADY)
    before = state.encode()
    decide(state, _inputs(LAST, open_credit_alert=1, outstanding_fen=10), P)
    assert state.encode() == before


def test_apply_reports_changes_and_leaves_the_version_to_the_caller() -> None:
    state = _state(STEADY)
    d = decide(state, _inputs(LAST), P)
    assert d.limit_fen > 0
    assert apply(state, d) is True
    assert (state.limit_fen, state.eligible, state.version) == (d.limit_fen, True, 0)
    assert apply(state, d) is False
    assert apply(state, dataclasses.replace(d, eligible=False, limit_fen=0)) is True


# ---- damping and cuts ---------------------------------------------------------------------


@QUICK
@given(amounts=healthy_amounts_st, x=eligible_inputs_st, share=st.floats(0, 1))
def test_an_increase_is_damped(amounts: list[int], x: dict[str, object], share: float) -> None:
    state = _state(amounts)
    inputs = _inputs(DAY0 + len(amounts) - 1, **x)
    target = decide(state, inputs, P).target_fen
    prev = int(target * share) // P.rounding_fen * P.rounding_fen
    d = decide(_at_limit(state, prev), inputs, P)
    assert d.target_fen == target
    if target > prev * (1 + P.change_tolerance):
        assert prev < d.limit_fen <= target
        assert d.limit_fen - prev <= max(P.increase_rate * (target - prev), P.rounding_fen)
        assert any("increase damped" in r for r in d.reasons)
    elif target >= prev:  # within the tolerance band: no flicker
        assert d.limit_fen == prev
    else:
        assert d.limit_fen == target


def test_a_new_merchant_climbs_to_its_target() -> None:
    state = _state(STEADY)
    inputs = _inputs(LAST)
    limits = []
    for _ in range(40):
        d = decide(state, inputs, P)
        apply(state, d)
        limits.append(d.limit_fen)
    assert limits[0] <= P.increase_rate * d.target_fen
    assert limits == sorted(limits)
    # it settles within the no-flicker band below the target, not stuck lower by rounding
    assert d.target_fen > 0
    assert d.target_fen * (1 - P.change_tolerance) <= limits[-1] <= d.target_fen


@QUICK
@given(amounts=healthy_amounts_st, x=eligible_inputs_st, prev_units=st.integers(1, 500))
def test_an_open_credit_alert_cuts_at_once(
    amounts: list[int], x: dict[str, object], prev_units: int
) -> None:
    state = _at_limit(_state(amounts), prev_units * P.rounding_fen)
    prev = state.limit_fen
    inputs = _inputs(DAY0 + len(amounts) - 1, **x)
    d = decide(state, dataclasses.replace(inputs, open_credit_alert=1), P)
    assert d.eligible
    assert d.limit_fen <= P.open_credit_alert_factor * prev
    assert any("cut at once: open credit alert" in r for r in d.reasons)
    apply(state, d)
    again = decide(state, dataclasses.replace(inputs, open_credit_alert=1), P)
    assert again.limit_fen <= d.limit_fen  # no climbing back while the alert is open


def test_a_cut_on_deterioration_is_immediate() -> None:
    state = _state(STEADY)
    healthy = decide(state, _inputs(LAST), P).target_fen
    state = _at_limit(state, healthy)
    d = decide(state, _inputs(LAST, weekly_cv=0.9, credit_score=0.8), P)
    assert d.limit_fen == d.target_fen < healthy * 0.5
    assert any("cut at once" in r for r in d.reasons)


# ---- eligibility ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        ({"history_months": 2.1}, "acquiring history 2.1 months < 3"),
        ({"history_months": float("nan")}, "acquiring history"),
        ({"active_days_30d": 5}, "5 active days in 30d < 8"),
        ({"refund_ratio_90d": 0.2}, "refund ratio"),
        ({"chargeback_ratio_90d": 0.05}, "chargeback ratio"),
        ({"dormant": True}, "dormant"),
        ({"open_credit_alert": 2}, "high-severity credit alert"),
        ({"blocked_reason": "under investigation"}, "ineligible: under investigation"),
    ],
)
def test_each_ineligibility_rule_zeroes_the_limit_with_its_reason(
    overrides: dict[str, object], phrase: str
) -> None:
    state = _at_limit(_state(STEADY), 3_000_000)
    d = decide(state, _inputs(LAST, **overrides), P)
    assert not d.eligible
    assert d.limit_fen == 0
    assert d.previous_limit_fen == 3_000_000
    assert any(r.startswith("ineligible") and phrase in r for r in d.reasons)
    assert d.turnover_based_fen > 0  # the parts are kept for audit


def test_every_failing_rule_is_listed() -> None:
    state = _state([100_000] * 3)  # too short, still warming up
    x = _inputs(DAY0 + 2, history_months=1.0, active_days_30d=3, dormant=True)
    d = decide(state, x, P)
    failing = [r for r in d.reasons if r.startswith("ineligible")]
    assert len(failing) == 5
    assert any("3 days of turnover observed < 30" in r for r in failing)
    assert any("needed to learn a typical day" in r for r in failing)


def test_a_long_blocked_reason_is_truncated() -> None:
    d = decide(_state(STEADY), _inputs(LAST, blocked_reason="x" * 500), P)
    assert max(len(r) for r in d.reasons) == 200


# ---- self-swiping: spikes and concentrated cards --------------------------------------------


def test_one_huge_day_raises_the_limit_far_less_than_proportionally() -> None:
    spike = 1_000_000_000  # CNY 10 million on one day
    base = _state(STEADY)
    spiked = _state([*STEADY[:100], spike, *STEADY[101:]])
    d_base = decide(base, _inputs(LAST), P)
    d_spiked = decide(spiked, _inputs(LAST), P)
    raw_gain = 2.0 * (spike - 100_000) / len(STEADY) * DAYS_PER_MONTH
    gain = d_spiked.turnover_based_fen - d_base.turnover_based_fen
    assert 0 < gain < 0.001 * raw_gain
    assert d_spiked.target_fen <= 1.05 * d_base.target_fen
    assert any("1 spike day winsorised" in r for r in d_spiked.reasons)


@QUICK
@given(
    amount=st.integers(50_000, 3_000_000),
    n=st.integers(60, 160),
    spike=st.integers(10_000_000, 10**12),
    data=st.data(),
)
def test_a_spike_counts_at_most_the_winsorising_ceiling(
    amount: int, n: int, spike: int, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, n - 1), label="spike day")  # warm-up days included
    day = DAY0 + n - 1
    steady = [amount] * n
    gain = (
        decide(
            _state([*steady[:at], amount + spike, *steady[at + 1 :]]), _inputs(day), P
        ).turnover_based_fen
        - decide(_state(steady), _inputs(day), P).turnover_based_fen
    )
    ceiling = max(P.spike_cap_multiple * amount, P.spike_floor_fen)
    bound = P.turnover_multiple * (ceiling - amount) / n * DAYS_PER_MONTH + 1
    assert 0 <= gain <= bound


def test_concentrated_cards_are_discounted() -> None:
    state = _state(STEADY)
    plain = decide(state, _inputs(LAST, txn_count_30d=900, distinct_cards_30d=700), P)
    swiped = decide(state, _inputs(LAST, txn_count_30d=900, distinct_cards_30d=30), P)
    assert swiped.concentration_factor == pytest.approx(4.0 / 30.0)
    assert swiped.risk_factor == pytest.approx(plain.risk_factor * 4.0 / 30.0)
    assert swiped.target_fen <= plain.target_fen * 4.0 / 30.0 + P.rounding_fen
    assert swiped.target_fen < plain.target_fen
    assert any("card concentration: 30.0 approved txns per card" in r for r in swiped.reasons)
    assert not any("card concentration" in r for r in plain.reasons)


# ---- encoding -------------------------------------------------------------------------------


@QUICK
@given(
    steps=st.lists(st.tuples(st.integers(1, 45), st.integers(0, 10**13)), max_size=120),
    version=st.integers(0, 2**32 - 1),
    decided=st.booleans(),
)
def test_encode_decode_round_trip_and_size(
    steps: list[tuple[int, int]], version: int, decided: bool
) -> None:
    state, day = LimitState(), DAY0
    for gap, amount in steps:
        day += gap
        observe_day(state, day, amount, P)
        assert len(state.months) <= MAX_MONTHS
        assert len(state.warmup) < P.warmup_active_days
    if decided:
        apply(state, decide(state, _inputs(day, open_credit_alert=1), P))
    state.version = version
    data = state.encode()
    assert LimitState.decode(data) == state
    assert len(data) < 300


def test_the_largest_state_stays_under_300_bytes() -> None:
    state = LimitState(
        typical_day_fen=1e15,
        observed_days=2**31 - 1,
        first_day=DAY0,
        last_day=DAY0 + 400,
        months=[MonthTotal(24_300 + i, 31 * 10**15, 31, 31) for i in range(MAX_MONTHS)],
        warmup=[(DAY0 + i, 10**15) for i in range(MAX_WARMUP_DAYS)],
        limit_fen=10**12,
        eligible=True,
        version=2**32 - 1,
        credit_alert=2,
    )
    data = state.encode()
    assert len(data) < 300
    assert LimitState.decode(data) == state


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b"",
        lambda b: b"\x02" + b[1:],
        lambda b: b[:-1],
        lambda b: b + b"\x00",
        lambda b: b[:35] + bytes([MAX_MONTHS + 1]) + b[36:],  # months count
        lambda b: b[:29] + b"\x05" + b[30:],  # eligible flag
        lambda b: b[:1] + struct.pack("<d", float("nan")) + b[9:],  # typical day
    ],
)
def test_bad_bytes_raise_state_decode_error(mutate: Callable[[bytes], bytes]) -> None:
    data = _state([100_000] * 40).encode()
    assert LimitState.decode(data).observed_days == 40
    with pytest.raises(StateDecodeError):
        LimitState.decode(mutate(data))


def test_decision_fields_match_the_published_limit() -> None:
    names = {f.name for f in dataclasses.fields(LimitDecision)}
    assert {
        "eligible",
        "limit_fen",
        "previous_limit_fen",
        "cap_fen",
        "turnover_based_fen",
        "repayment_based_fen",
        "stability_haircut",
        "risk_factor",
        "outstanding_fen",
        "reasons",
    } <= names
