"""Unit tests of the outreach policy: proposals, priorities, manager queues, the success model."""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import DetectorError, DetectorParamsError, StateDecodeError
from detectors.dormancy import DormancyState
from detectors.features.params import BusinessCalendar
from detectors.manager_queue import (
    ManagerQueue,
    admit,
    close,
    open_tasks,
    queued_tasks,
    roll_day,
)
from detectors.outreach import (
    CONTACT_TYPES,
    TASK_TYPES,
    MerchantSignals,
    OutreachParams,
    SuccessModel,
    TaskProposal,
    TaskSlots,
    TaskUpdate,
    due_date,
    is_success,
    propose,
    task_id_for,
    task_type_of,
)
from schemas.common import ID_PATTERN
from schemas.inputs import OutcomeKind
from schemas.outputs import OutreachTask, TaskStatus, TaskType

MONDAY = BusinessCalendar.day_of_date(date(2026, 6, 8))
FRIDAY = MONDAY + 4
PARAMS = OutreachParams()
ID_RE = re.compile(ID_PATTERN)


def _signals(**overrides: Any) -> MerchantSignals:
    """A quiet, ordinary merchant that calls for no task; overrides make it call for some."""
    base: dict[str, Any] = {
        "merchant_id": "M000123",
        "day": MONDAY,
        "manager_id": "AM7",
        "do_not_contact": False,
        "monthly_turnover_fen": 1_000_000,
        "dormancy_state": "active",
        "churn_score": 0.1,
        "churn_alert_opened": None,
        "dormancy_alert_opened": None,
        "credit_alert_opened": None,
        "credit_score": 0.1,
        "lifecycle_stage": "maturity",
        "has_pos_loan": False,
        "limit_eligible": False,
        "limit_fen": 0,
        "facility_fen": 0,
        "other_lender_repayments_30d": 0,
    }
    return MerchantSignals(**{**base, **overrides})


def _types(proposals: list[TaskProposal]) -> set[TaskType]:
    return {p.task_type for p in proposals}


def _run(signals: MerchantSignals, slots: TaskSlots | None = None) -> list[TaskProposal]:
    return propose(slots or TaskSlots(), signals, SuccessModel.from_params(PARAMS), PARAMS)


def _proposal(
    n: int, day: int, priority: float, manager: str = "AM1", task_type: TaskType | None = None
) -> TaskProposal:
    kind = task_type or TASK_TYPES[n % len(TASK_TYPES)]
    return TaskProposal(
        task_id=task_id_for(f"M{n}", kind, day),
        merchant_id=f"M{n}",
        manager_id=manager,
        task_type=kind,
        day=day,
        value_at_stake_fen=1000 * n,
        urgency=0.5,
        likelihood_of_success=0.3,
        priority=priority,
        due_working_days=5,
        reason="r",
        suggested_action="a",
        source_alert_id=None,
        features={"urgency": 0.5},
    )


def _as_task(update: TaskUpdate) -> OutreachTask:
    """What streams will publish; validates ids, ranges and text lengths against the schema."""
    p = update.proposal
    at = datetime(2026, 6, 8, 8, tzinfo=UTC)
    return OutreachTask(
        task_id=p.task_id,
        merchant_id=p.merchant_id,
        manager_id=p.manager_id,
        task_type=p.task_type,
        status=update.status,
        priority=p.priority,
        explanation=p.explanation,
        reason=p.reason,
        suggested_action=p.suggested_action,
        due_date=update.due_date or due_date(p.day, p.due_working_days),
        created_at=at,
        updated_at=at,
        source_alert_id=p.source_alert_id,
    )


# --- proposals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, set()),
        ({"dormancy_state": "dormant"}, {TaskType.REACTIVATION_CALL}),
        ({"dormancy_state": DormancyState.DORMANT}, {TaskType.REACTIVATION_CALL}),
        ({"dormancy_alert_opened": "M000123:dormancy:20260608"}, {TaskType.REACTIVATION_CALL}),
        ({"dormancy_state": "lost", "lifecycle_stage": "churn"}, {TaskType.WIN_BACK}),
        ({"lifecycle_stage": "churn", "churn_score": 0.9}, {TaskType.WIN_BACK}),
        ({"churn_alert_opened": "M000123:churn:20260608"}, {TaskType.RETENTION_VISIT}),
        ({"lifecycle_stage": "decline", "churn_score": 0.6}, {TaskType.RETENTION_VISIT}),
        ({"lifecycle_stage": "decline", "churn_score": 0.2}, set()),
        (
            {"lifecycle_stage": "growth", "has_pos_loan": True, "limit_eligible": True}
            | {"limit_fen": 3_000_000, "facility_fen": 1_000_000},
            {TaskType.LIMIT_INCREASE_OFFER},
        ),
        (
            {"lifecycle_stage": "growth", "has_pos_loan": True, "limit_eligible": True}
            | {"limit_fen": 1_000_000, "facility_fen": 1_000_000},
            set(),
        ),
        ({"limit_eligible": True, "limit_fen": 2_000_000}, {TaskType.POS_LOAN_PREAPPROVAL}),
        ({"limit_eligible": False, "limit_fen": 2_000_000}, set()),
        (
            {"limit_eligible": True, "limit_fen": 2_000_000, "other_lender_repayments_30d": 2},
            {TaskType.REFINANCE_OFFER},
        ),
        ({"other_lender_repayments_30d": 2}, set()),
        ({"credit_alert_opened": "M000123:credit:20260608"}, {TaskType.CREDIT_REVIEW}),
    ],
)
def test_each_trigger_yields_its_task_type(overrides: dict[str, Any], expected: set[TaskType]):
    assert _types(_run(_signals(**overrides))) == expected


def test_no_manager_means_no_tasks_and_no_slot_marked() -> None:
    slots = TaskSlots()
    signals = _signals(manager_id=None, dormancy_state="dormant", credit_alert_opened="A1")
    assert _run(signals, slots) == []
    assert slots == TaskSlots()


def test_refinance_reason_names_the_compliance_review() -> None:
    [p] = _run(_signals(limit_eligible=True, limit_fen=2_000_000, other_lender_repayments_30d=1))
    assert "借新还旧" in p.reason
    assert "ompliance" in p.reason


def test_source_alert_and_reasons_carried() -> None:
    [p] = _run(_signals(churn_alert_opened="A:churn:1", reasons=("settlement moved away",)))
    assert p.source_alert_id == "A:churn:1"
    assert p.reason.endswith("settlement moved away")


def test_unknown_states_are_refused() -> None:
    with pytest.raises(DetectorError):
        _run(_signals(dormancy_state="sleepy"))
    with pytest.raises(DetectorError):
        _run(_signals(lifecycle_stage="teenage"))


def test_cooldown_and_one_open_per_type() -> None:
    slots = TaskSlots()
    alert = _signals(churn_alert_opened="A1")
    assert _types(_run(alert, slots)) == {TaskType.RETENTION_VISIT}
    # still open: nothing, even after the cooldown, until the open task expires
    params = dataclasses.replace(PARAMS, task_expiry_days=PARAMS.cooldown_days + 10)
    success = SuccessModel.from_params(params)
    later = dataclasses.replace(alert, day=MONDAY + PARAMS.cooldown_days + 5)
    assert propose(TaskSlots.decode(slots.encode()), later, success, params) == []
    expired = dataclasses.replace(alert, day=MONDAY + params.task_expiry_days)
    assert _types(propose(TaskSlots.decode(slots.encode()), expired, success, params)) == {
        TaskType.RETENTION_VISIT
    }
    slots.close(TaskType.RETENTION_VISIT)
    # closed, but within the cooldown of the first proposal: nothing
    assert _run(dataclasses.replace(alert, day=MONDAY + PARAMS.cooldown_days - 1), slots) == []
    # the cooldown has run out: a new one, with a new id
    again = _run(dataclasses.replace(alert, day=MONDAY + PARAMS.cooldown_days), slots)
    assert _types(again) == {TaskType.RETENTION_VISIT}
    assert slots.last_proposed_day(TaskType.RETENTION_VISIT) == MONDAY + PARAMS.cooldown_days


def test_a_blocked_churn_task_is_not_replaced_by_another_churn_type() -> None:
    slots = TaskSlots()
    assert _types(_run(_signals(dormancy_state="dormant"), slots)) == {TaskType.REACTIVATION_CALL}
    churn = _signals(dormancy_state="dormant", day=MONDAY + 3, churn_alert_opened="A2")
    assert _run(churn, slots) == []
    lost = _signals(dormancy_state="lost", day=MONDAY + 60)
    assert _types(_run(lost, slots)) == {TaskType.WIN_BACK}


signal_strategy = st.builds(
    _signals,
    day=st.integers(MONDAY, MONDAY + 400),
    do_not_contact=st.booleans(),
    monthly_turnover_fen=st.integers(0, 100_000_000),
    dormancy_state=st.sampled_from(["active", "quiet", "dormant", "lost"]),
    churn_score=st.floats(0.0, 1.0),
    churn_alert_opened=st.one_of(st.none(), st.just("A:churn")),
    dormancy_alert_opened=st.one_of(st.none(), st.just("A:dormancy")),
    credit_alert_opened=st.one_of(st.none(), st.just("A:credit")),
    credit_score=st.floats(0.0, 1.0),
    lifecycle_stage=st.sampled_from(["acquisition", "growth", "maturity", "decline", "churn"]),
    has_pos_loan=st.booleans(),
    limit_eligible=st.booleans(),
    limit_fen=st.integers(0, 50_000_000),
    facility_fen=st.integers(0, 50_000_000),
    other_lender_repayments_30d=st.integers(0, 5),
    reasons=st.lists(st.text(min_size=1, max_size=300), max_size=4).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(signal_strategy)
def test_do_not_contact_only_yields_credit_review(signals: MerchantSignals) -> None:
    signals = dataclasses.replace(signals, do_not_contact=True)
    types = _types(_run(signals))
    expected = {TaskType.CREDIT_REVIEW} if signals.credit_alert_opened else set()
    assert types == expected


@settings(max_examples=200, deadline=None)
@given(signal_strategy)
def test_proposals_are_valid_tasks_with_priority_explained(signals: MerchantSignals) -> None:
    proposals = _run(signals)
    assert len(_types(proposals)) == len(proposals)
    assert len(_types(proposals) & {TaskType.REACTIVATION_CALL, TaskType.RETENTION_VISIT}) <= 1
    for p in proposals:
        assert ID_RE.match(p.task_id)
        assert 0.0 <= p.priority <= 1.0
        assert 0.0 <= p.urgency <= 1.0
        assert 0.0 <= p.likelihood_of_success <= 1.0
        assert p.value_at_stake_fen >= 0
        assert TaskProposal.from_dict(p.to_dict()) == p
        _as_task(TaskUpdate(p, TaskStatus.QUEUED))  # raises if the schema refuses it


def test_task_ids_are_deterministic_and_valid() -> None:
    signals = _signals(churn_alert_opened="A1", credit_alert_opened="A2")
    first, second = _run(signals), _run(signals)
    assert [p.task_id for p in first] == [p.task_id for p in second]
    assert first == second
    assert len({p.task_id for p in first}) == 2
    next_day = _run(dataclasses.replace(signals, day=MONDAY + 1))
    assert not {p.task_id for p in first} & {p.task_id for p in next_day}
    for merchant in ("M" * 64, "a:b:c" * 12, "X1"):
        for kind in TASK_TYPES:
            task_id = task_id_for(merchant, kind, MONDAY)
            assert ID_RE.match(task_id), task_id
            assert task_type_of(task_id) is kind
    assert task_id_for("M" * 64, TaskType.WIN_BACK, 1) != task_id_for(
        "M" * 63 + "N", TaskType.WIN_BACK, 1
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 12), signal_strategy, st.sets(st.sampled_from(TASK_TYPES))),
        max_size=40,
    )
)
def test_cooldown_and_single_open_hold_over_any_sequence(
    steps: list[tuple[int, MerchantSignals, set[TaskType]]],
) -> None:
    slots, model = TaskSlots(), SuccessModel.from_params(PARAMS)
    last: dict[TaskType, int] = {}
    is_open: set[TaskType] = set()
    day = MONDAY
    for gap, signals, closing in steps:
        day += gap
        for kind in closing:
            slots.close(kind)
            is_open.discard(kind)
        for p in propose(slots, dataclasses.replace(signals, day=day), model, PARAMS):
            # open means proposed, no outcome, and not yet expired
            assert p.task_type not in is_open or (
                day - last[p.task_type] >= PARAMS.task_expiry_days
            )
            assert p.task_type not in last or day - last[p.task_type] >= PARAMS.cooldown_days
            last[p.task_type] = day
            is_open.add(p.task_type)


# --- due dates and priorities --------------------------------------------------------------


def test_due_dates_skip_weekends() -> None:
    assert due_date(FRIDAY, 2) == date(2026, 6, 16)  # Fri + 2 working days = Tue
    assert due_date(FRIDAY + 1, 1) == date(2026, 6, 15)  # Sat + 1 = Mon
    assert due_date(MONDAY, 5) == date(2026, 6, 15)  # Mon + 5 = next Mon
    assert due_date(MONDAY, 10) == date(2026, 6, 22)
    for start in range(MONDAY, MONDAY + 14):
        assert due_date(start, 3).weekday() < 5


@pytest.mark.parametrize(
    ("overrides", "task_type", "due_days"),
    [
        (
            {"churn_alert_opened": "A", "monthly_turnover_fen": 6_000_000},
            TaskType.RETENTION_VISIT,
            2,
        ),
        (
            {"dormancy_state": "dormant", "monthly_turnover_fen": 0}
            | {"baseline_monthly_turnover_fen": 9_000_000},
            TaskType.REACTIVATION_CALL,
            2,
        ),
        ({"dormancy_state": "dormant"}, TaskType.REACTIVATION_CALL, 5),
        ({"dormancy_state": "lost"}, TaskType.WIN_BACK, 5),
        ({"churn_alert_opened": "A"}, TaskType.RETENTION_VISIT, 10),
        ({"limit_eligible": True, "limit_fen": 2_000_000}, TaskType.POS_LOAN_PREAPPROVAL, 10),
        ({"credit_alert_opened": "A"}, TaskType.CREDIT_REVIEW, 10),
    ],
)
def test_contact_standards_set_the_due_date(
    overrides: dict[str, Any], task_type: TaskType, due_days: int
) -> None:
    [p] = _run(_signals(day=FRIDAY, **overrides))
    assert (p.task_type, p.due_working_days) == (task_type, due_days)
    [update] = admit(ManagerQueue(), p, PARAMS)
    assert update.status is TaskStatus.OPEN
    assert update.due_date == due_date(FRIDAY, due_days)
    assert update.due_date is not None
    assert update.due_date.weekday() < 5


def test_due_date_counts_from_the_day_a_queued_task_opens() -> None:
    params = OutreachParams(manager_capacity_per_day=1)
    queue = ManagerQueue()
    admit(queue, _proposal(1, FRIDAY, 0.9), params)
    [queued] = admit(queue, _proposal(2, FRIDAY, 0.5), params)
    assert (queued.status, queued.due_date) == (TaskStatus.QUEUED, None)
    [opened] = roll_day(queue, FRIDAY + 3, params)
    assert opened.opened_day == FRIDAY + 1  # Saturday had capacity
    assert opened.due_date == due_date(FRIDAY + 1, 5)


def test_priority_follows_value_urgency_and_likelihood() -> None:
    small = _run(_signals(churn_alert_opened="A", monthly_turnover_fen=100_000))[0]
    big = _run(_signals(churn_alert_opened="A", monthly_turnover_fen=20_000_000))[0]
    assert big.priority > small.priority
    calm = _run(_signals(churn_alert_opened="A", churn_score=0.1))[0]
    urgent = _run(_signals(churn_alert_opened="A", churn_score=0.95))[0]
    assert urgent.urgency > calm.urgency
    assert urgent.priority > calm.priority
    model = SuccessModel.from_params(PARAMS)
    for _ in range(20):
        model.learn_one(TaskType.RETENTION_VISIT, {}, OutcomeKind.REACHED)
    liked = propose(TaskSlots(), _signals(churn_alert_opened="A"), model, PARAMS)[0]
    plain = _run(_signals(churn_alert_opened="A"))[0]
    assert liked.likelihood_of_success > plain.likelihood_of_success
    assert liked.priority > plain.priority
    expected = (
        PARAMS.weight_value * big.features["value_score"]
        + PARAMS.weight_urgency * big.urgency
        + PARAMS.weight_likelihood * big.likelihood_of_success
    )
    assert big.priority == pytest.approx(expected, abs=1e-5)


# --- the manager queue ---------------------------------------------------------------------

proposal_strategy = st.tuples(
    st.integers(0, 30), st.sampled_from(TASK_TYPES), st.integers(-2, 2), st.floats(0.0, 1.0)
)
close_strategy = st.tuples(st.integers(0, 500), st.sampled_from(list(OutcomeKind)))
#: Business days: (days since the previous one, roll explicitly?, proposals, outcomes).
days_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.booleans(),
        st.lists(proposal_strategy, max_size=10),
        st.lists(close_strategy, max_size=3),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), days_strategy)
def test_capacity_respected_and_nothing_dropped(capacity: int, days: list[tuple[Any, ...]]):
    params = OutreachParams(manager_capacity_per_day=capacity)
    queue = ManagerQueue("AM1")
    day = MONDAY
    admitted: list[str] = []
    opened_on: dict[int, set[str]] = defaultdict(set)
    closed: set[str] = set()
    cancelled: set[str] = set()

    def record(updates: list[TaskUpdate], admitting: TaskProposal | None = None) -> None:
        for u in updates:
            if u.status is TaskStatus.CANCELLED:
                # expired (open too long without an outcome) or superseded by a newer task of
                # the same merchant and type: never anything else
                assert u.closed_day is not None
                expired = (
                    u.opened_day is not None
                    and u.closed_day - u.opened_day >= params.task_expiry_days
                )
                superseded = (
                    admitting is not None
                    and admitting.merchant_id == u.proposal.merchant_id
                    and admitting.task_type is u.proposal.task_type
                )
                assert expired or superseded
                cancelled.add(u.task_id)
            if u.status is TaskStatus.OPEN:
                assert u.opened_day is not None
                assert all(u.task_id not in ids for ids in opened_on.values())
                opened_on[u.opened_day].add(u.task_id)
                assert len(opened_on[u.opened_day]) <= capacity
            if u.status is TaskStatus.DONE:
                closed.add(u.task_id)

    for gap, explicit_roll, proposals, outcomes in days:
        day += gap
        if explicit_roll:
            updates = roll_day(queue, day, params)
            assert all(u.status in (TaskStatus.OPEN, TaskStatus.CANCELLED) for u in updates)
            record(updates)
            updates = [u for u in updates if u.status is TaskStatus.OPEN]
            priorities = [u.proposal.priority for u in updates]
            assert priorities == sorted(priorities, reverse=True)  # queued open by priority
            if updates:
                assert all(p.priority <= priorities[-1] for p in queue.queued.values())
        for merchant, kind, offset, priority in proposals:
            p = _proposal(merchant, day + offset, round(priority, 6), task_type=kind)
            known = queue.knows(p.task_id)
            updates = admit(queue, p, params)
            if known:
                assert updates == []
            else:
                admitted.append(p.task_id)
                assert p.task_id in {u.task_id for u in updates}
            record(updates, p)
            # capacity never idles while work waits
            assert not queue.queued or queue.opened_today >= capacity
        for index, outcome in outcomes if admitted else ():
            task_id = admitted[index % len(admitted)]
            proposal, updates = close(queue, task_id, outcome, day)
            if task_id in closed or task_id in cancelled:
                assert (proposal, updates) == (None, [])
            else:
                assert proposal is not None
                assert proposal.task_id == task_id
                assert [u.status for u in updates] == [TaskStatus.DONE]
            record(updates)
    # nothing dropped: every task admitted is open, queued, done or cancelled (expired or
    # superseded, checked above), and only one of these
    for task_id in admitted:
        states = [
            task_id in queue.opened,
            task_id in queue.queued,
            task_id in closed,
            task_id in cancelled,
        ]
        assert sum(states) == 1, task_id
    assert ManagerQueue.decode(queue.encode()) == queue


def test_admit_is_idempotent_and_queue_orders_by_priority() -> None:
    params = OutreachParams(manager_capacity_per_day=2)
    queue = ManagerQueue()
    proposals = [_proposal(n, MONDAY, prio) for n, prio in enumerate([0.2, 0.3, 0.9, 0.1, 0.5])]
    statuses = [admit(queue, p, params)[0].status for p in proposals]
    assert statuses == [TaskStatus.OPEN, TaskStatus.OPEN] + [TaskStatus.QUEUED] * 3
    assert admit(queue, proposals[3], params) == []
    assert [u.proposal.priority for u in queued_tasks(queue)] == [0.9, 0.5, 0.1]
    assert [u.proposal.priority for u in open_tasks(queue)] == [0.3, 0.2]
    opened = roll_day(queue, MONDAY + 1, params)
    assert [u.proposal.priority for u in opened] == [0.9, 0.5]
    assert [u.proposal.priority for u in open_tasks(queue)] == [0.9, 0.5, 0.3, 0.2]
    proposal, [done] = close(queue, proposals[2].task_id, OutcomeKind.REACHED, MONDAY + 1)
    assert proposal == proposals[2]
    assert (done.status, done.outcome, done.closed_day) == (
        TaskStatus.DONE,
        OutcomeKind.REACHED,
        MONDAY + 1,
    )
    assert admit(queue, proposals[2], params) == []  # a replay of a done task stays done
    assert close(queue, proposals[2].task_id, OutcomeKind.REACHED, MONDAY + 2) == (None, [])
    assert close(queue, "unknown", OutcomeKind.REACHED, MONDAY + 2) == (None, [])


def test_a_queued_task_can_be_closed_without_opening() -> None:
    params = OutreachParams(manager_capacity_per_day=1)
    queue = ManagerQueue()
    admit(queue, _proposal(1, MONDAY, 0.9), params)
    queued = _proposal(2, MONDAY, 0.1)
    admit(queue, queued, params)
    _, [done] = close(queue, queued.task_id, OutcomeKind.NOT_REACHABLE, MONDAY)
    assert (done.opened_day, done.due_date) == (None, None)
    assert roll_day(queue, MONDAY + 1, params) == []


# --- success model -------------------------------------------------------------------------


def test_success_model_moves_with_outcomes() -> None:
    model = SuccessModel.from_params(PARAMS)
    prior = model.likelihood(TaskType.WIN_BACK, {})
    assert prior == pytest.approx(PARAMS.success_prior)
    for _ in range(5):
        model.learn_one(TaskType.WIN_BACK, {}, OutcomeKind.WON_BACK)
    up = model.likelihood(TaskType.WIN_BACK, {})
    assert up > prior
    for _ in range(10):
        model.learn_one(TaskType.WIN_BACK, {}, OutcomeKind.DECLINED)
    assert model.likelihood(TaskType.WIN_BACK, {}) < up
    failing = SuccessModel.from_params(PARAMS)
    for _ in range(5):
        failing.learn_one(TaskType.LIMIT_INCREASE_OFFER, {}, OutcomeKind.REACHED)
    assert failing.likelihood(TaskType.LIMIT_INCREASE_OFFER, {}) < prior
    assert failing.likelihood(TaskType.CREDIT_REVIEW, {}) == pytest.approx(prior)
    assert failing.n_labels == 5


def test_warm_success_model_learns_from_features() -> None:
    model = SuccessModel(min_labels=20)
    for i in range(400):
        keen = i % 2 == 0
        outcome = OutcomeKind.OFFER_ACCEPTED if keen else OutcomeKind.DECLINED
        model.learn_one(TaskType.POS_LOAN_PREAPPROVAL, {"value_score": float(keen)}, outcome)
    assert model.is_warm
    high = model.likelihood(TaskType.POS_LOAN_PREAPPROVAL, {"value_score": 1.0})
    low = model.likelihood(TaskType.POS_LOAN_PREAPPROVAL, {"value_score": 0.0})
    assert high > 0.6 > 0.4 > low
    assert 0.0 <= model.likelihood(TaskType.WIN_BACK, {"brand_new": float("nan")}) <= 1.0


def test_success_model_pickles_and_clones_untrained() -> None:
    model = SuccessModel(min_labels=5)
    for i in range(30):
        outcome = OutcomeKind.REACHED if i % 3 else OutcomeKind.NO_ANSWER
        model.learn_one(TaskType.RETENTION_VISIT, {"urgency": i / 30}, outcome)
    x = {"urgency": 0.7}
    again = pickle.loads(pickle.dumps(model))
    assert again.likelihood(TaskType.RETENTION_VISIT, x) == model.likelihood(
        TaskType.RETENTION_VISIT, x
    )
    assert again.n_labels == model.n_labels == 30
    fresh = model.clone()
    assert fresh.n_labels == 0
    assert not fresh.is_warm
    assert fresh._get_params() == model._get_params()
    assert fresh.likelihood(TaskType.RETENTION_VISIT, x) == pytest.approx(model.success_prior)


@pytest.mark.parametrize(
    ("task_type", "successes"),
    [
        (TaskType.WIN_BACK, {OutcomeKind.WON_BACK}),
        (TaskType.LIMIT_INCREASE_OFFER, {OutcomeKind.OFFER_ACCEPTED}),
        (TaskType.POS_LOAN_PREAPPROVAL, {OutcomeKind.OFFER_ACCEPTED}),
        (TaskType.REFINANCE_OFFER, {OutcomeKind.OFFER_ACCEPTED}),
        (
            TaskType.RETENTION_VISIT,
            {OutcomeKind.REACHED, OutcomeKind.WON_BACK, OutcomeKind.OFFER_ACCEPTED},
        ),
        (
            TaskType.REACTIVATION_CALL,
            {OutcomeKind.REACHED, OutcomeKind.WON_BACK, OutcomeKind.OFFER_ACCEPTED},
        ),
        (
            TaskType.CREDIT_REVIEW,
            {OutcomeKind.REACHED, OutcomeKind.WON_BACK, OutcomeKind.OFFER_ACCEPTED},
        ),
    ],
)
def test_is_success(task_type: TaskType, successes: set[OutcomeKind]) -> None:
    assert {o for o in OutcomeKind if is_success(task_type, o)} == successes


# --- encoding and parameters ---------------------------------------------------------------


@given(
    st.lists(st.integers(-1, 2**31 - 1), min_size=7, max_size=7),
    st.lists(st.booleans(), min_size=7, max_size=7),
)
def test_task_slots_round_trip(last_days: list[int], opened: list[bool]) -> None:
    slots = TaskSlots(last_days, opened)
    data = slots.encode()
    assert data[0] == 1
    assert TaskSlots.decode(data) == slots


def test_bad_bytes_are_refused() -> None:
    good_slots = TaskSlots().encode()
    for bad in (b"", b"\x02" + good_slots[1:], good_slots[:-1], good_slots[:-1] + b"\x07"):
        with pytest.raises(StateDecodeError):
            TaskSlots.decode(bad)
    queue = ManagerQueue("AM1")
    admit(queue, _proposal(1, MONDAY, 0.5), PARAMS)
    good = queue.encode()
    for bad in (b"", b"\x09" + good[1:], good[:-3], b"\x01[]", b'\x01{"manager_id":1}'):
        with pytest.raises(StateDecodeError):
            ManagerQueue.decode(bad)
    with pytest.raises(StateDecodeError):
        TaskProposal.from_dict({**_proposal(1, MONDAY, 0.5).to_dict(), "task_type": "nap"})


def test_manager_queue_round_trip_keeps_every_state() -> None:
    params = OutreachParams(manager_capacity_per_day=2)
    queue = ManagerQueue("AM1")
    for n in range(6):
        admit(queue, _proposal(n, MONDAY, n / 10), params)
    close(queue, _proposal(0, MONDAY, 0.0).task_id, OutcomeKind.DECLINED, MONDAY)
    again = ManagerQueue.decode(queue.encode())
    assert again == queue
    assert (len(again.opened), len(again.queued), len(again.done)) == (1, 4, 1)
    assert roll_day(again, MONDAY + 1, params) == roll_day(queue, MONDAY + 1, params)


@pytest.mark.parametrize(
    "overrides",
    [
        {"manager_capacity_per_day": 0},
        {"cooldown_days": 0},
        {"high_value_monthly_fen": 0},
        {"due_working_days_dormant": 0},
        {"success_prior": 1.0},
        {"prior_strength": 0.0},
        {"min_labels": 0},
        {"weight_value": 0.9},
        {"weight_urgency": -0.1, "weight_value": 0.85},
        {"churn_risk_score": 1.5},
    ],
)
def test_params_are_validated(overrides: dict[str, Any]) -> None:
    with pytest.raises(DetectorParamsError):
        OutreachParams(**overrides)


def test_contact_types_exclude_only_the_credit_review() -> None:
    assert set(TASK_TYPES) - CONTACT_TYPES == {TaskType.CREDIT_REVIEW}


def test_unanswered_tasks_expire_and_newer_ones_supersede() -> None:
    params = OutreachParams(manager_capacity_per_day=5, task_expiry_days=10)
    queue = ManagerQueue("AM1")
    first = _proposal(1, MONDAY, 0.5, task_type=TaskType.WIN_BACK)
    assert [u.status for u in admit(queue, first, params)] == [TaskStatus.OPEN]
    # a newer task of the same merchant and type replaces the open one
    newer = _proposal(1, MONDAY + 3, 0.6, task_type=TaskType.WIN_BACK)
    updates = admit(queue, newer, params)
    assert [(u.task_id, u.status) for u in updates] == [
        (first.task_id, TaskStatus.CANCELLED),
        (newer.task_id, TaskStatus.OPEN),
    ]
    # nobody answers: ten days after it opened it expires
    assert roll_day(queue, MONDAY + 12, params) == []
    [expired] = roll_day(queue, MONDAY + 13, params)
    assert (expired.task_id, expired.status, expired.closed_day) == (
        newer.task_id,
        TaskStatus.CANCELLED,
        MONDAY + 13,
    )
    assert not queue.opened
    assert close(queue, newer.task_id, OutcomeKind.REACHED, MONDAY + 14) == (
        None,
        [],
    )
