"""The action step (limits and outreach per closed merchant-day) over simulated merchants."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from itertools import pairwise

import pytest

from detectors.actions import (
    ActionParams,
    ActionState,
    MerchantFacts,
    on_outcome,
)
from detectors.base import DetectorParamsError, StateDecodeError
from detectors.limits import LimitParams
from detectors.manager_queue import ManagerQueue, admit, roll_day
from detectors.outreach import SuccessModel
from schemas.inputs import OutcomeKind
from schemas.outputs import TaskStatus, TaskType
from schemas.settings import Settings
from streams.detection import ActionReplay, detect
from streams.sim import Scenario, Simulation, simulate


def test_state_round_trip_and_size() -> None:
    state = ActionState(MerchantFacts(manager_id="am-007", do_not_contact=True, facility_fen=5))
    state.limit.limit_fen = 1_200_000
    data = state.encode()
    assert ActionState.decode(data) == state
    assert len(data) < 400
    with pytest.raises(StateDecodeError):
        ActionState.decode(b"\x09" + data[1:])
    with pytest.raises(StateDecodeError):
        ActionState.decode(data[:10])


def test_params_come_from_settings_and_bad_values_name_the_variables() -> None:
    assert ActionParams.from_settings(Settings()) == ActionParams()
    changed = ActionParams.from_settings(Settings(limit_product_cap_fen=9_000_000))  # type: ignore[call-arg]
    assert changed.limits.product_cap_fen == 9_000_000
    with pytest.raises(DetectorParamsError, match="MONITOR_LIMIT_"):
        ActionParams.from_settings(Settings(limit_stable_cv=0.9))  # type: ignore[call-arg]
    with pytest.raises(DetectorParamsError, match="MONITOR_OUTREACH_"):
        ActionParams.from_settings(Settings(outreach_manager_capacity_per_day=0))  # type: ignore[call-arg]


def test_an_outcome_frees_the_slot_of_its_type() -> None:
    state = ActionState()
    state.slots.mark(TaskType.WIN_BACK, 100)
    assert state.slots.is_open(TaskType.WIN_BACK)
    on_outcome(state, "m1:win_back:20240410")
    assert not state.slots.is_open(TaskType.WIN_BACK)
    on_outcome(state, "not-one-of-ours")  # frees nothing, raises nothing


@pytest.fixture(scope="module")
def chained() -> _Run:
    """Features, detectors and actions over one simulation, as the worker chains them."""
    sim = simulate(Scenario.default().resized(merchants=150, days=200), 11)
    return _Run(sim, detect(sim).actions)


@dataclass(frozen=True)
class _Run:
    sim: Simulation
    replay: ActionReplay


def test_limits_are_bounded_rounded_and_published_only_on_change(chained: _Run) -> None:
    cap = LimitParams().product_cap_fen
    rounding = LimitParams().rounding_fen
    states = chained.replay.states
    eligible = [m for m, s in states.items() if s.limit.eligible]
    assert len(eligible) >= len(states) // 4, "most stable merchants become eligible"
    for merchant, daily in chained.replay.limits.items():
        assert all(0 <= v <= cap and v % rounding == 0 for v in daily)
        # a version on every change (and on eligibility flips at 0), none on days without one
        changes = sum(1 for a, b in pairwise(daily) if a != b) + (daily[0] != 0)
        assert states[merchant].limit.version >= changes
    published = sum(s.limit.version for s in states.values())
    closed_days = len(states) * chained.sim.days
    assert published < closed_days / 5, "a limit is not republished every day"


def test_self_swiped_turnover_does_not_buy_a_larger_limit(chained: _Run) -> None:
    by_trajectory: dict[str, list[int]] = defaultdict(list)
    for label in chained.sim.labels:
        state = chained.replay.states[label.merchant_id]
        if state.limit.eligible:
            by_trajectory[label.trajectory].append(state.limit.limit_fen)
    inflated = by_trajectory.get("inflated_turnover", [])
    stable = sorted(by_trajectory["stable"])
    # An inflating merchant ends with no limit or one no larger than a typical stable one.
    median_stable = stable[len(stable) // 2]
    assert all(limit <= 2 * median_stable for limit in inflated)


def test_tasks_follow_the_merchants_trouble(chained: _Run) -> None:
    trajectory = {label.merchant_id: label.trajectory for label in chained.sim.labels}
    kinds: dict[str, Counter[TaskType]] = defaultdict(Counter)
    for p in chained.replay.proposals:
        kinds[trajectory[p.merchant_id]][p.task_type] += 1
    churn_types = {TaskType.REACTIVATION_CALL, TaskType.WIN_BACK, TaskType.RETENTION_VISIT}

    def churn_share(name: str) -> float:
        merchants = sum(1 for t in trajectory.values() if t == name)
        return sum(kinds[name][t] for t in churn_types) / max(merchants, 1)

    assert churn_share("dormant") > 3 * max(churn_share("stable"), 0.05)
    assert (
        kinds["stable"][TaskType.POS_LOAN_PREAPPROVAL]
        + kinds["stable"][TaskType.LIMIT_INCREASE_OFFER]
        > 0
    ), "eligible stable merchants get offers"
    ids = [p.task_id for p in chained.replay.proposals]
    assert len(ids) == len(set(ids))


def test_manager_queues_respect_capacity_and_drop_nothing(chained: _Run) -> None:
    params = replace(chained.replay.params.outreach, manager_capacity_per_day=2)
    queues: dict[str, ManagerQueue] = {}
    opened_per_day: Counter[tuple[str, int]] = Counter()
    status: dict[str, TaskStatus] = {}
    for proposal in sorted(chained.replay.proposals, key=lambda p: p.day):
        queue = queues.setdefault(proposal.manager_id, ManagerQueue(proposal.manager_id))
        for update in admit(queue, proposal, params):
            status[update.task_id] = update.status
            if update.status is TaskStatus.OPEN:
                assert update.opened_day is not None
                opened_per_day[(proposal.manager_id, update.opened_day)] += 1
    last = max(p.day for p in chained.replay.proposals)
    for manager, queue in queues.items():
        for update in roll_day(queue, last + 60, params):
            status[update.task_id] = update.status
            assert update.opened_day is not None
            if update.status is TaskStatus.OPEN:
                opened_per_day[(manager, update.opened_day)] += 1
    assert max(opened_per_day.values()) <= 2
    assert set(status) == {p.task_id for p in chained.replay.proposals}, "every proposal is tracked"
    # nothing dropped: open, still queued, or cancelled (expired unanswered / superseded)
    assert set(status.values()) <= {TaskStatus.OPEN, TaskStatus.QUEUED, TaskStatus.CANCELLED}
    assert not any(queue.queued for queue in queues.values()), "60 days later all have opened"


def test_an_outcome_moves_the_success_model(chained: _Run) -> None:
    model = SuccessModel.from_params(chained.replay.params.outreach)
    proposal = next(p for p in chained.replay.proposals if p.task_type is TaskType.WIN_BACK)
    before = model.likelihood(proposal.task_type, proposal.features)
    for _ in range(5):
        model.learn_one(proposal.task_type, proposal.features, OutcomeKind.WON_BACK)
    assert model.likelihood(proposal.task_type, proposal.features) > before
    assert model.n_labels == 5
