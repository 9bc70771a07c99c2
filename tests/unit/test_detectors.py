"""Unit tests of the detectors on plain values, with Hypothesis invariants."""

from __future__ import annotations

import pickle
import random
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.alerts import AlertPolicy, AlertSlot, Decision
from detectors.base import StateDecodeError
from detectors.churn import ChurnRules, churn_heads
from detectors.credit import CreditRules, loan_category
from detectors.dormancy import DormancyDetector, DormancyMemory, DormancyState
from detectors.drift import TurnoverDrift
from detectors.features import BusinessCalendar, DailyTotals, DaySnapshot
from detectors.lifecycle import LifecycleRules
from detectors.pipeline import MonitorModels, MonitorParams, on_day_closed, on_loan_event
from detectors.state import _SILENCE, DetectorState
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


def test_churn_weak_signals_cannot_open_an_alert_alone() -> None:
    rules, params = ChurnRules(), MonitorParams()
    weak = {
        "missed_open_days_ratio": 5.0,
        "drift_direction": -1.0,
        "turnover_fast_vs_slow": 0.1,
    }
    raw = {"days_since_last_txn": 6.0, "days_since_last_acct_txn": 1.0}
    names = {h.name for h in rules.hits(weak, raw)}
    assert names == {"pos_stopped_account_active", "turnover_decline"}
    assert rules.score_one({**weak, **raw}) < params.churn_open_score


def _stopped(silence: float, credit_days: float, excess: float) -> dict[str, float]:
    return {
        "ever_active": 1.0,
        "days_since_last_txn": silence,
        "silence_ratio_q95": silence / 2.0,
        "silence_credit_days": credit_days,
        "silence_excess_inflow": excess,
    }


def test_churn_other_acquirer_needs_daily_credits_and_waits_out_the_festival() -> None:
    rules, params = ChurnRules(), MonitorParams()
    switched = _stopped(6, 5, 0.9)
    assert rules.hits(switched, switched)[0].name == "pos_stopped_other_acquirer"
    assert rules.score_one(switched) >= params.churn_open_score
    closed = _stopped(6, 2, 0.9)  # a shop closed for a while: transfers only now and then
    assert rules.score_one(closed) < params.churn_open_score
    usual = _stopped(6, 6, 0.05)  # credits every day, but no more than usual
    assert rules.score_one(usual) < params.churn_open_score
    season = {**switched, "festival_season": 1.0}
    assert rules.score_one(season) < params.churn_open_score
    long_season = {**_stopped(11, 10, 0.9), "festival_season": 1.0}
    assert rules.score_one(long_season) >= params.churn_open_score


def test_churn_balance_swept_after_sales_stop() -> None:
    rules = ChurnRules()
    swept = _stopped(3, 0, 0.0) | {
        "eod_balance_mean_30d_fen": 1_000_000.0,
        "eod_balance_fen": 5_000.0,
        "outflow_transfer_own_other_bank_30d_fen": 900_000.0,
    }
    assert rules.hits(swept, swept)[0].name == "balance_swept_pos_stopped"
    spent = {**swept, "outflow_transfer_own_other_bank_30d_fen": 0.0}  # spent, not moved
    assert rules.hits(spent, spent) == []
    selling = {**swept, "days_since_last_txn": 0.0, "silence_ratio_q95": 0.0}
    assert rules.hits(selling, selling) == []


def test_credit_strong_and_weak_signals() -> None:
    rules, params = CreditRules(), MonitorParams()
    assert rules.score_one({"returned_item_count_30d": 1.0}) >= params.credit_open_score
    near_zero = {"eod_min_vs_turnover": 0.01, "eod_slope_vs_turnover": -0.2}
    assert rules.hits(near_zero)[0].name == "balance_near_zero"
    assert rules.score_one(near_zero) >= params.credit_open_score
    # A merchant that stopped selling: its empty account is a departure, not credit stress.
    assert rules.score_one({**near_zero, "pos_stopped": 1.0}) < params.credit_open_score
    borrowing = {"other_lender_new_30d": 1.0, "eod_vs_mean_30d": 0.3}
    assert rules.hits(borrowing)[0].name == "new_lender_balance_draining"
    assert rules.score_one({**borrowing, "eod_vs_mean_30d": 0.9}) < params.credit_open_score
    weak = {
        "overdraft_days_30d": 0.2,
        "other_lender_new_30d": 1.0,
        "payroll_late": 1.0,
        "turnover_fast_vs_slow": 0.1,
    }
    assert len(rules.hits(weak)) == 4
    assert rules.score_one(weak) < params.credit_open_score


def test_credit_returned_items_with_new_lender_after_sales_stop() -> None:
    rules, params = CreditRules(), MonitorParams()
    bounced_stopped = {"returned_item_count_30d": 1.0, "pos_stopped": 1.0}
    # A closed or departed shop whose standing orders bounce: dormancy or churn, not credit.
    assert rules.score_one(bounced_stopped) < params.credit_open_score
    # Bouncing while borrowing at a new lender is credit stress whether or not it still sells.
    borrowing = {**bounced_stopped, "other_lender_new_30d": 1.0}
    assert rules.hits(borrowing)[0].name == "returned_items"
    assert rules.score_one(borrowing) >= params.credit_open_score
    # The other strong rules stay off once the sales stopped.
    drained = {**borrowing, "returned_item_count_30d": 0.0, "eod_vs_mean_30d": 0.1}
    assert rules.score_one(drained) < params.credit_open_score


def test_alert_cooldown_overridden_by_strong_evidence() -> None:
    policy = AlertPolicy(release_days=2, cooldown_days=30)
    fire = Decision(AlertType.CREDIT, True, 0.8, 1, "rules:balance_near_zero")
    calm = Decision(AlertType.CREDIT, False, 0.0, 1, "rules:none")
    strong = Decision(
        AlertType.CREDIT, True, 0.97, 2, "rules:returned_items", overrides_cooldown=True
    )
    slot, _ = policy.step(AlertSlot(), fire, "M1", DAY)
    slot, _ = policy.step(slot, calm, "M1", DAY + 1)
    slot, resolved = policy.step(slot, calm, "M1", DAY + 2)
    assert resolved is not None
    assert resolved.status is AlertStatus.RESOLVED
    assert policy.step(slot, fire, "M1", DAY + 5)[1] is None  # same evidence: cooling down
    slot, reopened = policy.step(slot, strong, "M1", DAY + 5)
    assert reopened is not None
    assert reopened.status is AlertStatus.OPEN
    assert reopened.version == 1


def test_pipeline_credit_review_raised_again_within_cooldown() -> None:
    selling = {"ever_active": 1.0, "days_since_last_txn": 0.0}
    bounced = {**selling, "returned_item_count_30d": 1.0}  # one strong signal
    # Bounced items, new borrowing elsewhere and the balance run down: several strong signals.
    stressed = {
        **bounced,
        "other_lender_new_30d": 1.0,
        "eod_balance_fen": 100.0,
        "eod_balance_mean_30d_fen": 1000.0,
    }
    plan = [bounced] * 3 + [selling] * 7 + [bounced] * 3 + [stressed] * 2

    def openings(params: MonitorParams) -> list[int]:
        models = MonitorModels()
        state = on_loan_event(None, "disbursed", DAY, 0, 1_000_000, models, params)
        days = []
        for i, features in enumerate(plan):
            state, out, _ = on_day_closed(
                state, _snap(DAY + i, 10_000, **features), "retail", models, params
            )
            days += [
                i
                for a in out
                if a.alert_type is AlertType.CREDIT
                and a.status is AlertStatus.OPEN
                and a.version == 1
            ]
        return days

    # Opened on day 0 and closed after 7 calm days; the same single signal does not raise it
    # again within the cooldown, several strong signals at once do.
    assert openings(MonitorParams()) == [0, 13]
    assert openings(MonitorParams(credit_reraise_score=1.01)) == [0]


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


def test_state_trailer_round_trip_and_states_written_before_it() -> None:
    state = DetectorState(first_day=DAY, silence_credit_days=4, silence_inflow_fen=12_345.0)
    state.inflow_fen, state.sale_fen = 800.0, 5_000.0
    assert DetectorState.decode(state.encode()) == state
    # A state written before the silence trailer existed decodes with its defaults.
    old = DetectorState(first_day=DAY).encode()[: -_SILENCE.size]
    again = DetectorState.decode(old)
    assert again.first_day == DAY
    assert (again.silence_credit_days, again.inflow_fen) == (0, -1.0)


def test_state_decode_rejects_unknown_format() -> None:
    import pytest

    with pytest.raises(StateDecodeError):
        DetectorState.decode(b"\x09rest")


def test_models_pickle_round_trip() -> None:
    models = MonitorModels()
    again = MonitorModels.from_bytes(models.to_bytes())
    assert again.churn.version == models.churn.version
    assert pickle.loads(pickle.dumps(models)).inactive.version == models.inactive.version


def test_pipeline_other_acquirer_alert_from_daily_credits() -> None:
    params, models = MonitorParams(), MonitorModels()
    state = None
    alerts = []
    for k in range(40):
        day = DAY - 40 + k
        credit = 3_000 if k % 5 == 0 else 0  # a customer transfer now and then
        totals = DailyTotals(
            pos_approved_count=5,
            pos_approved_amount_fen=10_000,
            acct_credit_count=1 + (credit > 0),
            acct_credit_amount_fen=9_940 + credit,
            acct_settlement_amount_fen=9_940,
        )
        feats = _x(0) | {"silence_ratio_q95": 0.0}
        state, _, _ = on_day_closed(
            state, DaySnapshot("M1", day, totals, feats), "catering", models, params
        )
    for k in range(1, 8):
        # POS stopped; another acquirer's settlement arrives here every day from the second.
        totals = DailyTotals(
            acct_credit_count=1 if k > 1 else 0,
            acct_credit_amount_fen=9_900 if k > 1 else 0,
        )
        feats = _x(k) | {"silence_ratio_q95": k / 2.0}
        state, out, _ = on_day_closed(
            state, DaySnapshot("M1", DAY + k, totals, feats), "catering", models, params
        )
        alerts += out
        state = DetectorState.decode(state.encode())
    churn = [a for a in alerts if a.alert_type is AlertType.CHURN]
    assert [a.decided_by for a in churn] == ["rules:pos_stopped_other_acquirer"]
    assert churn[0].as_of_date == BusinessCalendar.date_of_day(DAY + 5)


@given(st.lists(st.tuples(st.integers(0, 5).map(float), st.booleans()), min_size=2, max_size=40))
def test_rank_auc_equals_pairwise_count(pairs: list[tuple[float, bool]]) -> None:
    from detectors.monitoring import rank_auc

    scores = [s for s, _ in pairs]
    labels = [y for _, y in pairs]
    pos = [s for s, y in pairs if y]
    neg = [s for s, y in pairs if not y]
    got = rank_auc(scores, labels)
    if not pos or not neg:
        assert got is None
        return
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert got is not None
    assert abs(got - wins / (len(pos) * len(neg))) < 1e-9


def test_models_saved_before_the_rivalry_still_load() -> None:
    models = MonitorModels()
    del models.inactive_rivalry
    again = MonitorModels.from_bytes(models.to_bytes())
    assert not again.inactive_rivalry.model_decides


def test_dormancy_waits_two_more_days_for_a_silence_that_ran_into_the_festival() -> None:
    det = DormancyDetector()
    festival = BusinessCalendar.day_of_date(date(2026, 2, 17))
    # Began 23 days before the festival (outside its window) and ran into it.
    into = [det.assess(_x(s), festival - 24 + s) for s in (31, 32, 33)]
    assert all(v.seasonal for v in into)
    assert [v.state for v in into][1:] == [DormancyState.QUIET, DormancyState.DORMANT]
    # The same silence in June: dormant once it exceeds the 30-day convention.
    june = det.assess(_x(31), DAY)
    assert not june.seasonal
    assert june.state is DormancyState.DORMANT


def test_dormancy_a_silence_resuming_after_a_stray_sale_in_a_shutdown_is_seasonal() -> None:
    det = DormancyDetector()
    festival = BusinessCalendar.day_of_date(date(2026, 2, 17))
    start = festival + 9  # after the festival window
    shut = DormancyMemory(closures=[(festival - 6, 14)])  # reopened on festival + 8
    assert det.assess(_x(32), start + 31, shut).seasonal
    assert det.assess(_x(32), start + 31, shut).state is DormancyState.QUIET
    other = DormancyMemory(closures=[(festival - 60, 14)])  # an older, unrelated closure
    assert not det.assess(_x(32), start + 31, other).seasonal
    # A closure this year does not raise the threshold; one a year ago does (plus a week).
    assert det.assess(_x(32), start + 31, shut).threshold_days == 32.0
    last_year = DormancyMemory(closures=[(start - 365, 40)])
    assert det.assess(_x(32), start + 31, last_year).threshold_days == 47.0


def test_the_churn_heads_score_alone_does_not_make_a_churn_stage() -> None:
    """A warm churn head scoring a merchant high (the rules silent) is reported, but neither
    opens an alert nor puts the merchant in the churn stage, unless ``churn_model_opens``."""
    feats = _x(0) | {"amount_sum_7d_fen": 70_000.0, "days_since_last_acct_txn": 0.0}
    stages = {}
    for opens in (False, True):
        models = MonitorModels()
        models.churn = churn_heads(min_labels=1, min_positives=1)[0]
        for _ in range(200):
            models.churn.learn_one(feats | {"txn_count_30d": 30.0}, True)
        params = MonitorParams(churn_model_opens=opens)
        _, alerts, scores = on_day_closed(
            None, _snap(DAY, 10_000, 10_000, **feats), "catering", models, params
        )
        assert scores is not None
        assert scores.churn_decided_by.startswith("model:")
        assert scores.churn_score >= LifecycleRules().churn_score
        assert any(a.alert_type is AlertType.CHURN for a in alerts) is opens
        stages[opens] = scores.lifecycle_stage
    assert stages[False] is not LifecycleStage.CHURN
    assert stages[True] is LifecycleStage.CHURN
