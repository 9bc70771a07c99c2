"""Unit tests of the detectors on plain values, with Hypothesis invariants."""

from __future__ import annotations

import pickle
import random
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.alerts import AlertPolicy, AlertSlot, Decision
from detectors.base import StateDecodeError
from detectors.churn import ChurnRules
from detectors.credit import CreditRules, loan_category
from detectors.dormancy import DormancyDetector, DormancyMemory, DormancyState
from detectors.drift import TurnoverDrift
from detectors.features import BusinessCalendar, DailyTotals, DaySnapshot
from detectors.lifecycle import LifecycleRules
from detectors.pipeline import MonitorModels, MonitorParams, on_day_closed, on_loan_event
from detectors.state import DetectorState
from schemas.dashboard_rows import LifecycleStage, LoanCategory
from schemas.outputs import AlertStatus, AlertType

DAY = BusinessCalendar.day_of_date(date(2026, 6, 10))  # far from the Spring Festival


def _x(silence: int, q95: float = 2.0, gaps: float = 40.0) -> dict[str, float]:
    return {
        "ever_active": 1.0,
        "days_since_last_txn": float(silence),
        "gap_q95_days": q95,
        "gap_count": gaps,
        "weekday_of_day": 2.0,
    }


def test_dormancy_states_follow_own_gaps() -> None:
    det = DormancyDetector()
    states = [det.assess(_x(s), DAY).state for s in (0, 4, 10, 31, 95)]
    assert states == [
        DormancyState.ACTIVE,
        DormancyState.QUIET,
        DormancyState.QUIET,
        DormancyState.DORMANT,
        DormancyState.LOST,
    ]
    # A merchant that sells every three weeks is not quiet after ten days.
    assert det.assess(_x(10, q95=21.0), DAY).state is DormancyState.ACTIVE
    assert det.assess(_x(40, q95=21.0), DAY).state is DormancyState.QUIET  # dormant from 63 days


def test_dormancy_weekday_aware_closing_days() -> None:
    det = DormancyDetector()
    closed_weekends = {
        **_x(2, q95=1.0),
        "weekday_of_day": 6.0,
        "weekday_active_rate_sat_12w": 0.0,
        "weekday_active_rate_sun_12w": 0.0,
    }
    assert det.assess(closed_weekends, DAY).state is DormancyState.ACTIVE
    assert det.assess({**closed_weekends, "weekday_of_day": 2.0}, DAY).state is DormancyState.QUIET


def test_dormancy_learns_a_closure_and_reactivation() -> None:
    det = DormancyDetector()
    memory = DormancyMemory()
    for silence in range(1, 41):
        det.remember(memory, det.assess(_x(silence), DAY + silence, memory), DAY + silence)
    assert memory.state is DormancyState.DORMANT
    verdict = det.assess(_x(0), DAY + 41, memory)
    assert verdict.reactivated
    det.remember(memory, verdict, DAY + 41)
    assert memory.closures == [(DAY + 1, 40)]
    # A year later, the same closure is expected: not dormant at 40 days (threshold 47).
    next_year = DAY + 1 + 365 + 40
    assert det.assess(_x(40), next_year, memory).state is not DormancyState.DORMANT


@given(st.integers(0, 400), st.floats(0, 400), st.floats(0, 100))
def test_dormancy_score_in_range(silence: int, q95: float, gaps: float) -> None:
    v = DormancyDetector().assess(_x(silence, q95, gaps), DAY)
    assert 0.0 <= v.score <= 1.0


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "settlement_missing_days",
                "turnover_fast_vs_slow",
                "drift_direction",
                "returned_item_count_30d",
                "overdraft_days_30d",
                "other_lender_new_30d",
                "eod_min_vs_turnover",
                "payroll_late",
                "days_since_last_txn",
                "festival_season",
            ]
        ),
        st.floats(-50, 50),
    )
)
@settings(max_examples=200)
def test_rule_scores_in_range_and_order_free(x: dict[str, float]) -> None:
    items = list(x.items())
    random.Random(1).shuffle(items)
    shuffled = dict(items)
    for det in (ChurnRules(), CreditRules()):
        score = det.score_one(x)
        assert 0.0 <= score <= 1.0
        assert det.score_one(shuffled) == score


def test_churn_rules_signals() -> None:
    rules = ChurnRules()
    assert rules.hits({"settlement_missing_days": 3.0}, {})[0].name == "settlement_leaving"
    stop = {"missed_open_days_ratio": 5.0}
    raw = {"days_since_last_txn": 6.0, "days_since_last_acct_txn": 1.0}
    assert rules.hits(stop, raw)[0].name == "pos_stopped_account_active"
    assert rules.hits({**stop, "festival_season": 1.0}, raw) == []


def test_drift_direction_both_ways() -> None:
    down, up = TurnoverDrift(), TurnoverDrift()
    for _ in range(40):
        down.update(10_000.0)
        up.update(10_000.0)
    assert [down.update(1_000.0, d) for d in range(10)][-1] == -1
    assert [up.update(60_000.0, d) for d in range(10)][-1] == 1


def test_loan_categories() -> None:
    assert loan_category(0) is LoanCategory.NORMAL
    assert loan_category(30) is LoanCategory.SPECIAL_MENTION
    assert loan_category(0, other_bank_npl=True) is LoanCategory.SPECIAL_MENTION
    assert loan_category(100) is LoanCategory.SUBSTANDARD


def test_lifecycle_stages() -> None:
    rules = LifecycleRules()
    assert rules.stage(400, DormancyState.ACTIVE, 0.0, 1.5, 0.0) is LifecycleStage.GROWTH
    assert rules.stage(400, DormancyState.ACTIVE, 0.0, 1.0, 0.0) is LifecycleStage.MATURITY


def test_alert_lifecycle_cooldown_and_resolution() -> None:
    policy = AlertPolicy(release_days=2, cooldown_days=5)
    slot = AlertSlot()
    fire = Decision(AlertType.DORMANCY, True, 1.0, 1, "rules:own_gaps")
    calm = Decision(AlertType.DORMANCY, False, 0.0, 0, "rules:own_gaps", resolved_by_data=True)
    slot, opened = policy.step(slot, fire, "M1", DAY)
    assert opened is not None
    assert opened.status is AlertStatus.OPEN
    slot, acked = policy.acknowledge(slot, fire, "M1", DAY + 1)
    assert acked is not None
    assert acked.version == 2
    assert acked.alert_id == opened.alert_id
    slot, resolved = policy.step(slot, calm, "M1", DAY + 2)
    assert resolved is not None
    assert resolved.status is AlertStatus.RESOLVED
    assert policy.step(slot, fire, "M1", DAY + 3)[1] is None  # cooling down
    assert policy.step(slot, fire, "M1", DAY + 8)[1] is not None


def _snap(day: int, amount: int, settlement: int = 0, **features: float) -> DaySnapshot:
    totals = DailyTotals(
        pos_approved_count=1 if amount else 0,
        pos_approved_amount_fen=amount,
        acct_settlement_amount_fen=settlement,
    )
    return DaySnapshot("M1", day, totals, dict(features))


def test_pipeline_settlement_leaving_alert_and_state_codec() -> None:
    params, models = MonitorParams(), MonitorModels()
    state = None
    alerts = []
    for k in range(10):
        day = DAY + k
        settled = 10_000 if k < 5 else 0
        feats = _x(0) | {"amount_sum_7d_fen": 70_000.0, "days_since_last_acct_txn": 0.0}
        state, out, scores = on_day_closed(
            state, _snap(day, 10_000, settled, **feats), "catering", models, params
        )
        alerts += out
        state = DetectorState.decode(state.encode())  # the worker's table round trip
    assert scores is not None
    assert 0.0 <= scores.p_inactive <= 1.0
    churn = [a for a in alerts if a.alert_type is AlertType.CHURN]
    assert churn
    assert churn[0].decided_by == "rules:settlement_leaving"
    assert churn[0].reasons[0].feature == "settlement_missing_days"
    state = on_loan_event(state, "overdue", DAY + 10, 9, 100, models, params)
    _, out, scores = on_day_closed(
        state, _snap(DAY + 10, 10_000, 9_000, **_x(0)), "catering", models, params
    )
    assert scores is not None
    assert scores.loan_category is LoanCategory.SPECIAL_MENTION
    assert scores.credit_score == 1.0


def test_state_decode_rejects_unknown_format() -> None:
    import pytest

    with pytest.raises(StateDecodeError):
        DetectorState.decode(b"\x09rest")


def test_models_pickle_round_trip() -> None:
    models = MonitorModels()
    again = MonitorModels.from_bytes(models.to_bytes())
    assert again.churn.version == models.churn.version
    assert pickle.loads(pickle.dumps(models)).inactive.version == models.inactive.version
