"""Runs the real detection code over a simulation and turns its alerts into evaluation flags."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from detectors.actions import ActionParams, ActionState, on_day_closed, on_profile
from detectors.evaluation import (
    DailySeries,
    DetectorRun,
    FlagMatrix,
    Label,
    WorkedTask,
    default_detectors,
)
from detectors.features import BusinessCalendar, DaySnapshot, FeatureParams
from detectors.manager_queue import ManagerQueue, admit, roll_day
from detectors.outreach import SuccessModel, TaskProposal, TaskUpdate
from detectors.pipeline import DayScores, MonitorModels, MonitorParams
from detectors.state import DetectorState
from schemas import topics
from schemas.inputs import MerchantProfile
from schemas.outputs import Alert, AlertStatus, TaskStatus
from streams.history import RunResult, days_of_millis, from_simulation, millis_of, run
from streams.sim.simulation import Simulation

log = logging.getLogger(__name__)
_SOURCES = {
    "dormancy": "detectors:dormancy (own gaps, weekday and season aware)",
    "churn": "detectors:churn (rules + online LR heads)",
    "credit": "detectors:credit (stress rules + segment HST + online LR)",
}


@dataclass(slots=True)
class ActionReplay:
    """The worker's action stage over a run (``run(on_day=...)``): each merchant's limit after
    every closed day, and the tasks each manager's queue opens within its daily capacity.

    Profiles apply from their business day on, as the worker reads them. No outcomes come back
    (the simulation has no managers), so tasks end expired and the success model keeps its
    prior: priorities are those of a new deployment.
    """

    params: ActionParams
    #: Account managers named in the profiles.
    managers: int
    #: merchant -> its profiles (business day, profile), oldest first; consumed as days pass.
    profiles: dict[str, list[tuple[int, MerchantProfile]]]
    success: SuccessModel
    states: dict[str, ActionState] = field(default_factory=dict)
    queues: dict[str, ManagerQueue] = field(default_factory=dict)
    #: merchant -> its limit (fen) at the end of each closed day with scores.
    limits: dict[str, list[int]] = field(default_factory=dict)
    proposals: list[TaskProposal] = field(default_factory=list)
    worked: list[WorkedTask] = field(default_factory=list)

    @classmethod
    def of(cls, simulation: Simulation, fp: FeatureParams, params: ActionParams) -> ActionReplay:
        table = simulation.table(topics.MERCHANT_PROFILES)
        days = days_of_millis(millis_of(table.column("updated_at")), fp).tolist()
        profiles: dict[str, list[tuple[int, MerchantProfile]]] = {}
        for day, row in sorted(zip(days, table.to_pylist(), strict=True), key=lambda r: r[0]):
            profiles.setdefault(row["merchant_id"], []).append(
                (day, MerchantProfile.model_validate(row))
            )
        managers = len(set(table.column("account_manager_id").to_pylist()))
        return cls(params, managers, profiles, SuccessModel.from_params(params.outreach))

    def on_day(
        self,
        snapshot: DaySnapshot,
        detector: DetectorState,
        alerts: list[Alert],
        scores: DayScores | None,
    ) -> None:
        merchant = snapshot.merchant_id
        state = self.states.get(merchant)
        pending = self.profiles.get(merchant, [])
        while pending and pending[0][0] <= snapshot.day:
            state = on_profile(state, pending.pop(0)[1])
        state, actions = on_day_closed(
            state, snapshot, scores, alerts, detector, self.success, self.params
        )
        self.states[merchant] = state
        if actions.limit is not None:
            state.limit.version += 1  # a new version, published by the worker
        if scores is not None:
            self.limits.setdefault(merchant, []).append(state.limit.limit_fen)
        self.proposals += actions.proposals
        for proposal in actions.proposals:
            queue = self.queues.setdefault(proposal.manager_id, ManagerQueue(proposal.manager_id))
            self._record(admit(queue, proposal, self.params.outreach))

    def finish(self, last_day: int) -> None:
        """Roll every queue to the last day: queued work opens as capacity allows."""
        for queue in self.queues.values():
            self._record(roll_day(queue, last_day, self.params.outreach))

    def _record(self, updates: list[TaskUpdate]) -> None:
        for update in updates:
            if update.status is TaskStatus.OPEN and update.opened_day is not None:
                p = update.proposal
                self.worked.append(
                    WorkedTask(
                        p.merchant_id,
                        p.manager_id,
                        p.task_type.value,
                        BusinessCalendar.date_of_day(p.day),
                        BusinessCalendar.date_of_day(update.opened_day),
                    )
                )


@dataclass(frozen=True, slots=True)
class DetectionRun:
    """Alert opening dates per task and merchant, the runner's result and the action stage."""

    openings: Mapping[str, Mapping[str, list[date]]]
    result: RunResult
    actions: ActionReplay


def detect(
    simulation: Simulation,
    params: MonitorParams | None = None,
    action_params: ActionParams | None = None,
) -> DetectionRun:
    """Features, detectors and actions over the whole simulation, day-major, features every
    day."""
    fp = FeatureParams(auto_close_features=False)
    history = from_simulation(simulation, fp)
    actions = ActionReplay.of(simulation, fp, action_params or ActionParams())
    result = run(history, fp, params or MonitorParams(), MonitorModels(), on_day=actions.on_day)
    actions.finish(BusinessCalendar.day_of_date(simulation.end))
    log.info(
        "detection: %d merchant-days in %.1f s (%.0f/s), %d alert versions, %d tasks opened",
        result.merchant_days,
        result.seconds,
        result.merchant_days / max(result.seconds, 1e-9),
        len(result.alerts),
        len(actions.worked),
    )
    openings: dict[str, dict[str, list[date]]] = {task: {} for task in _SOURCES}
    for alert in result.alerts:
        if alert.status is AlertStatus.OPEN and alert.version == 1:
            openings[alert.alert_type.value].setdefault(alert.merchant_id, []).append(
                alert.as_of_date
            )
    return DetectionRun(openings, result, actions)


def _flags(openings: Mapping[str, list[date]]) -> object:
    def flags(series: DailySeries) -> FlagMatrix:
        matrix = np.zeros((len(series.merchant_ids), series.days), dtype=np.bool_)
        row = {m: i for i, m in enumerate(series.merchant_ids)}
        for merchant, dates in openings.items():
            for d in dates:
                col = (d - series.start).days
                if 0 <= col < series.days:
                    matrix[row[merchant], col] = True
        return matrix

    return flags


def detector_runs(detection: DetectionRun) -> dict[str, DetectorRun]:
    """The report's entries: the real detectors under the task names, baselines kept."""
    runs = default_detectors()
    for task, source in _SOURCES.items():
        runs[task] = DetectorRun(task, source, _flags(detection.openings[task]))  # type: ignore[arg-type]
    return runs


def credit_extras(
    detection: DetectionRun,
    labels: Sequence[Label],
    borrowers: set[str],
    start: date,
    days: int,
    lead_days: int = 30,
) -> dict[str, object]:
    """Issue targets the generic score lacks: defaulters flagged >= lead_days before the first
    missed repayment, and the share of healthy borrowers flagged per month."""
    openings = detection.openings["credit"]
    defaulters = [lab for lab in labels if lab.trajectory == "credit_default" and lab.event_date]
    early = 0
    reachable = 0
    for lab in defaulters:
        assert lab.event_date is not None
        assert lab.onset_date is not None
        first_ok = [d for d in openings.get(lab.merchant_id, []) if lab.onset_date <= d]
        if first_ok and (lab.event_date - min(first_ok)).days >= lead_days:
            early += 1
        reachable += (lab.event_date - lab.onset_date).days >= lead_days
    healthy = borrowers - {
        lab.merchant_id
        for lab in labels
        if lab.trajectory in ("credit_default", "inflated_turnover")
    }
    flagged = sum(1 for m in healthy if openings.get(m))
    months = days / 30.0
    return {
        "defaulters": len(defaulters),
        f"flagged_{lead_days}d_before_default": early,
        f"share_flagged_{lead_days}d_before_default": early / len(defaulters)
        if defaulters
        else None,
        f"share_reachable_{lead_days}d_before_default": reachable / len(defaulters)
        if defaulters
        else None,
        "healthy_borrowers": len(healthy),
        "healthy_borrowers_flagged": flagged,
        "healthy_borrowers_flagged_share_per_month": flagged / len(healthy) / months
        if healthy
        else None,
    }


def lead_by_trajectory(
    detection: DetectionRun, labels: Sequence[Label], task: str, grace_days: int
) -> dict[str, object]:
    """Median lead (reference date - first alert in the window) per positive trajectory."""
    out: dict[str, list[int]] = {}
    openings = detection.openings[task]
    for lab in labels:
        if lab.onset_date is None or lab.event_date is None:
            continue
        if task == "churn" and lab.trajectory not in (
            "decline_churn",
            "acquirer_switch",
            "settlement_moved",
        ):
            continue
        deadline = lab.event_date + timedelta(days=grace_days)
        inside = [d for d in openings.get(lab.merchant_id, []) if lab.onset_date <= d <= deadline]
        if inside:
            out.setdefault(lab.trajectory, []).append((lab.event_date - min(inside)).days)
    return {
        t: {"true_alerts": len(v), "median_lead_days": float(np.median(v))}
        for t, v in sorted(out.items())
    }


def seasonal_false_share(detection: DetectionRun, labels: Sequence[Label]) -> float | None:
    """Share of seasonal merchants (closure, not churn) with any dormancy alert."""
    seasonal = [lab.merchant_id for lab in labels if lab.trajectory == "seasonal"]
    if not seasonal:
        return None
    flagged = sum(1 for m in seasonal if detection.openings["dormancy"].get(m))
    return flagged / len(seasonal)


def day_of(value: date) -> int:
    return BusinessCalendar.day_of_date(value)
