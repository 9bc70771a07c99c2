"""Judging early warnings against ground truth: targets per task, alert scoring, and metrics.

Definitions (also in docs/simulator.md). Each task has positive trajectories, ignored ones
(neither right nor wrong to flag) and negatives (all others). A positive has a *target*: a
window in which a first alert counts as a true warning, and a reference date for lead time.

- dormancy: positives are dormant, dormant_reactivated (only if silent past the crossing),
  decline_churn and acquirer_switch (once they stopped selling). Silence starts the day after
  the last sale; the *crossing* is the day the days since the last sale first exceed
  ``dormancy_days``. Window: silence start .. crossing + ``dormancy_grace_days`` (flagged within
  2 days of crossing). Lead = crossing - alert date.
- churn: positives are decline_churn, acquirer_switch, settlement_moved; ignored: dormant,
  dormant_reactivated. Window: onset .. event date (last sale, or last settlement at our bank)
  + ``churn_grace_days``. Lead = event date - alert date (negative when flagged after it).
- credit: positives are credit_default; ignored: inflated_turnover. Window: onset (start of the
  squeeze) .. first missed repayment + ``credit_grace_days``. Lead = first missed repayment -
  alert date.

An alert is the first day of a run of flagged days. On a positive, the first alert inside the
window is the true alert; later alerts are repeats and not counted; alerts outside the window
(too early or too late) are false when there is no true alert. Every alert on a negative is
false. A positive whose window ends after the evaluation window and that was not flagged is
censored: left out of recall.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise
from statistics import median
from typing import Literal

import numpy as np
import numpy.typing as npt

from detectors.baselines import returned_item_flags, silence_flags, turnover_drop_flags

Task = Literal["dormancy", "churn", "credit"]
TASKS: tuple[Task, ...] = ("dormancy", "churn", "credit")
FlagMatrix = npt.NDArray[np.bool_]
#: Days per merchant-month in alert rates.
DAYS_PER_MONTH = 30.0

POSITIVES: dict[Task, frozenset[str]] = {
    "dormancy": frozenset({"dormant", "dormant_reactivated", "decline_churn", "acquirer_switch"}),
    "churn": frozenset({"decline_churn", "acquirer_switch", "settlement_moved"}),
    "credit": frozenset({"credit_default"}),
}
IGNORED: dict[Task, frozenset[str]] = {
    "dormancy": frozenset(),
    "churn": frozenset({"dormant", "dormant_reactivated"}),
    "credit": frozenset({"inflated_turnover"}),
}


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth of one merchant (a row of labels.csv)."""

    merchant_id: str
    trajectory: str
    onset_date: date | None = None
    event_date: date | None = None


@dataclass(frozen=True, slots=True)
class EvaluationParams:
    """Conventions of the evaluation; see the module docstring."""

    dormancy_days: int = 30
    dormancy_grace_days: int = 2
    churn_grace_days: int = 14
    credit_grace_days: int = 7


DEFAULT_PARAMS = EvaluationParams()


@dataclass(frozen=True, slots=True)
class Target:
    """When a warning on a positive counts; None = beyond what the labels know."""

    window_start: date
    deadline: date | None
    reference: date | None


def targets(
    task: Task, labels: Sequence[Label], params: EvaluationParams = DEFAULT_PARAMS
) -> tuple[dict[str, Target], frozenset[str]]:
    """Targets of the positives of ``task``, and the merchants to ignore.

    >>> t, ignored = targets("credit", [Label("M1", "credit_default", date(2026, 1, 10),
    ...                                          date(2026, 2, 5))])
    >>> t["M1"].deadline, t["M1"].reference
    (datetime.date(2026, 2, 12), datetime.date(2026, 2, 5))
    """
    out: dict[str, Target] = {}
    ignored = {lab.merchant_id for lab in labels if lab.trajectory in IGNORED[task]}
    for lab in labels:
        if lab.trajectory not in POSITIVES[task]:
            continue
        target = _target(task, lab, params)
        if target is None:
            ignored.add(lab.merchant_id)
        else:
            out[lab.merchant_id] = target
    return out, frozenset(ignored)


def _target(task: Task, lab: Label, params: EvaluationParams) -> Target | None:
    if task == "dormancy":
        if lab.trajectory in ("dormant", "dormant_reactivated"):
            silence = lab.onset_date
        else:
            silence = lab.event_date + timedelta(days=1) if lab.event_date else None
        if silence is None:
            return None
        crossing = silence + timedelta(days=params.dormancy_days)
        if (
            lab.trajectory == "dormant_reactivated"
            and lab.event_date
            and lab.event_date <= crossing
        ):
            return None  # reactivated before the silence counted as dormancy
        return Target(silence, crossing + timedelta(days=params.dormancy_grace_days), crossing)
    if lab.onset_date is None:
        return None
    grace = params.churn_grace_days if task == "churn" else params.credit_grace_days
    deadline = lab.event_date + timedelta(days=grace) if lab.event_date else None
    return Target(lab.onset_date, deadline, lab.event_date)


@dataclass(frozen=True, slots=True)
class DetectorScore:
    """How one detector did on one task."""

    precision: float | None
    recall: float | None
    median_lead_days: float | None
    false_alerts_per_1000_merchant_months: float | None
    true_alerts: int
    false_alerts: int
    positives: int
    censored: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "median_lead_days": self.median_lead_days,
            "false_alerts_per_1000_merchant_months": self.false_alerts_per_1000_merchant_months,
            "true_alerts": self.true_alerts,
            "false_alerts": self.false_alerts,
            "positives": self.positives,
            "censored": self.censored,
        }


def score_alerts(
    alerts: Mapping[str, Sequence[date]],
    labels: Sequence[Label],
    task: Task,
    window_end: date,
    merchant_days: int,
    params: EvaluationParams = DEFAULT_PARAMS,
) -> DetectorScore:
    """Score alert dates per merchant (a single first-flag date per merchant works too).

    >>> labels = [Label("M1", "credit_default", date(2026, 1, 10), date(2026, 2, 5)),
    ...           Label("M2", "stable")]
    >>> s = score_alerts({"M1": [date(2026, 1, 25)], "M2": [date(2026, 1, 3)]}, labels,
    ...                  "credit", date(2026, 3, 1), merchant_days=2 * 60)
    >>> s.precision, s.recall, s.median_lead_days, s.false_alerts_per_1000_merchant_months
    (0.5, 1.0, 11.0, 250.0)
    """
    goals, ignored = targets(task, labels, params)
    true_alerts = false_alerts = 0
    leads: list[int] = []
    hit: set[str] = set()
    for merchant, dates in alerts.items():
        if merchant in ignored:
            continue
        days = sorted(set(dates))
        goal = goals.get(merchant)
        if goal is None:
            false_alerts += len(days)
            continue
        last = min(goal.deadline, window_end) if goal.deadline else window_end
        inside = [d for d in days if goal.window_start <= d <= last]
        if inside:
            true_alerts += 1
            hit.add(merchant)
            if goal.reference is not None:
                leads.append((goal.reference - inside[0]).days)
            false_alerts += sum(1 for d in days if d < goal.window_start)
        else:
            false_alerts += len(days)
    due = {m for m, g in goals.items() if g.deadline is not None and g.deadline <= window_end}
    scored = due | hit
    alerts_total = true_alerts + false_alerts
    months = merchant_days / DAYS_PER_MONTH
    return DetectorScore(
        precision=true_alerts / alerts_total if alerts_total else None,
        recall=len(hit) / len(scored) if scored else None,
        median_lead_days=float(median(leads)) if leads else None,
        false_alerts_per_1000_merchant_months=1000.0 * false_alerts / months if months else None,
        true_alerts=true_alerts,
        false_alerts=false_alerts,
        positives=len(scored),
        censored=len(goals) - len(scored),
    )


def alert_starts(
    flags: FlagMatrix, merchant_ids: Sequence[str], start: date
) -> dict[str, list[date]]:
    """Turn daily flags (merchants x days) into alert dates: the first day of each flagged run.

    >>> alert_starts(np.array([[False, True, True, False, True]]), ["M1"], date(2026, 1, 1))
    {'M1': [datetime.date(2026, 1, 2), datetime.date(2026, 1, 5)]}
    """
    matrix = np.asarray(flags, dtype=np.bool_)
    if matrix.shape[0] != len(merchant_ids):
        raise ValueError(f"{matrix.shape[0]} rows of flags for {len(merchant_ids)} merchants")
    previous = np.zeros_like(matrix)
    previous[:, 1:] = matrix[:, :-1]
    rows, cols = np.nonzero(matrix & ~previous)
    out: dict[str, list[date]] = {}
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        out.setdefault(merchant_ids[r], []).append(start + timedelta(days=c))
    return out


#: Task types (``schemas.outputs.TaskType`` values) by what they answer.
CHURN_TASKS = frozenset({"reactivation_call", "retention_visit", "win_back"})
CREDIT_TASKS = frozenset({"credit_review"})
OFFER_TASKS = frozenset({"limit_increase_offer", "pos_loan_preapproval", "refinance_offer"})
#: Merchants leaving or gone: a churn-type task on them is right from their onset on.
LEAVING = POSITIVES["dormancy"] | POSITIVES["churn"]
#: Merchants an offer should not go to from their onset on (leaving, defaulting, or inflating
#: their turnover before a loan application).
TROUBLED = LEAVING | POSITIVES["credit"] | IGNORED["credit"]


@dataclass(frozen=True, slots=True)
class WorkedTask:
    """A task a manager's queue opened (so within the manager's daily capacity)."""

    merchant_id: str
    manager_id: str
    task_type: str
    proposed: date
    opened: date


def _after_onset(task: WorkedTask, label: Label) -> bool:
    return label.onset_date is not None and task.proposed >= label.onset_date


def _troubled(task: WorkedTask, label: Label) -> bool:
    """In trouble when the task was proposed: from the onset on (a reactivation ends it)."""
    if label.trajectory not in TROUBLED or not _after_onset(task, label):
        return False
    if label.trajectory == "dormant_reactivated" and label.event_date is not None:
        return task.proposed <= label.event_date
    return True


def task_verdict(task: WorkedTask, label: Label | None) -> bool | None:
    """Was a worked task right? None when the labels cannot say (offers; a credit review of a
    merchant inflating its turnover, which the credit task ignores too).

    A churn-type task (reactivation, retention, win-back) is right on a merchant leaving or
    gone (the dormancy and churn positives) proposed on or after its onset; a credit review on
    a defaulter proposed on or after the start of its squeeze. Anything else is wrong: a
    seasonal closure called as a departure, a review of a healthy borrower.

    >>> task = WorkedTask("M1", "AM1", "reactivation_call", date(2026, 3, 2), date(2026, 3, 2))
    >>> task_verdict(task, Label("M1", "dormant", date(2026, 2, 1)))
    True
    >>> task_verdict(task, Label("M1", "seasonal", date(2026, 2, 1)))
    False
    """
    if task.task_type in OFFER_TASKS:
        return None
    if label is None:
        return False
    if task.task_type in CHURN_TASKS:
        return label.trajectory in LEAVING and _after_onset(task, label)
    if label.trajectory in IGNORED["credit"]:
        return None
    return label.trajectory in POSITIVES["credit"] and _after_onset(task, label)


def outreach_scores(
    tasks: Sequence[WorkedTask],
    labels: Sequence[Label],
    window: tuple[date, date],
    managers: int,
) -> dict[str, object]:
    """How the tasks the managers could work did (report key ``outreach``).

    ``precision_at_capacity``: of the judged tasks the queues opened, the share that were
    right. ``tasks_per_manager_week``: tasks opened per manager and 7 days of the window (alert
    fatigue). ``leaving_reached``: merchants leaving or gone with an onset in the window that got
    a right churn-type task; ``defaulters_reviewed_before_default``: defaulters with a right
    credit review opened on or before their first missed repayment. ``offers_to_troubled``:
    offers proposed on or after the onset of a troubled merchant (a leaver, a defaulter, an
    inflated turnover), and for a dormancy that ended in a reactivation, not after it.

    >>> labels = [Label("M1", "dormant", date(2026, 2, 1)), Label("M2", "seasonal")]
    >>> tasks = [WorkedTask("M1", "AM1", "reactivation_call", date(2026, 3, 2), date(2026, 3, 2)),
    ...          WorkedTask("M2", "AM1", "win_back", date(2026, 3, 2), date(2026, 3, 3))]
    >>> scores = outreach_scores(tasks, labels, (date(2026, 1, 1), date(2026, 3, 31)), 1)
    >>> scores["precision_at_capacity"], scores["leaving_reached"]
    (0.5, 1.0)
    """
    by_id = {lab.merchant_id: lab for lab in labels}
    first, last = window
    weeks = ((last - first).days + 1) / 7.0
    kinds: dict[str, dict[str, int]] = {}
    right_churn: set[str] = set()
    reviewed: set[str] = set()
    offers_to_troubled = 0
    for task in tasks:
        label = by_id.get(task.merchant_id)
        verdict = task_verdict(task, label)
        kind = kinds.setdefault(task.task_type, {"opened": 0, "judged": 0, "right": 0})
        kind["opened"] += 1
        if verdict is not None:
            kind["judged"] += 1
            kind["right"] += verdict
        if verdict and task.task_type in CHURN_TASKS:
            right_churn.add(task.merchant_id)
        if verdict and task.task_type in CREDIT_TASKS:
            assert label is not None
            if label.event_date is None or task.opened <= label.event_date:
                reviewed.add(task.merchant_id)
        if task.task_type in OFFER_TASKS and label is not None:
            offers_to_troubled += _troubled(task, label)
    judged = sum(k["judged"] for k in kinds.values())
    right = sum(k["right"] for k in kinds.values())
    leaving = [
        lab.merchant_id
        for lab in labels
        if lab.trajectory in LEAVING and lab.onset_date and first <= lab.onset_date <= last
    ]
    defaulters = [
        lab.merchant_id
        for lab in labels
        if lab.trajectory in POSITIVES["credit"] and lab.event_date and lab.event_date <= last
    ]
    return {
        "precision_at_capacity": right / judged if judged else None,
        "tasks_opened": len(tasks),
        "tasks_judged": judged,
        "tasks_right": right,
        "tasks_per_manager_week": len(tasks) / managers / weeks if managers else None,
        "by_type": {
            t: {**k, "precision": k["right"] / k["judged"] if k["judged"] else None}
            for t, k in sorted(kinds.items())
        },
        "leaving_reached": sum(m in right_churn for m in leaving) / len(leaving)
        if leaving
        else None,
        "defaulters_reviewed_before_default": sum(m in reviewed for m in defaulters)
        / len(defaulters)
        if defaulters
        else None,
        "offers_opened": sum(kinds.get(t, {}).get("opened", 0) for t in OFFER_TASKS),
        "offers_to_troubled": offers_to_troubled,
    }


def limit_changes(
    limits: Mapping[str, Sequence[int]], threshold: float = 0.10
) -> dict[str, object]:
    """Day-to-day changes of each merchant's limit larger than ``threshold`` (relative to the day
    before): their share of the day pairs, and how many were rises and cuts.

    A pair of days without a limit on either day is not counted (a merchant never eligible
    has no limit to hold steady); a change from zero to a positive limit counts as large.

    >>> limit_changes({"M1": [1000, 1050, 1300, 1300], "M2": [0, 0, 500]})
    {'share_over': 0.5, 'day_pairs': 4, 'rises_over': 2, 'cuts_over': 0}
    """
    pairs = rises = cuts = 0
    for series in limits.values():
        for before, after in pairwise(series):
            if before == 0 and after == 0:
                continue
            pairs += 1
            if before == 0 or abs(after - before) / abs(before) > threshold:
                rises += after > before
                cuts += after < before
    return {
        "share_over": (rises + cuts) / pairs if pairs else None,
        "day_pairs": pairs,
        "rises_over": rises,
        "cuts_over": cuts,
    }


@dataclass(frozen=True, slots=True)
class DailySeries:
    """Per-merchant daily columns (merchants x days), e.g. ``pos_approved_count``."""

    merchant_ids: tuple[str, ...]
    start: date
    columns: Mapping[str, npt.NDArray[np.int64]] = field(default_factory=dict)

    @property
    def days(self) -> int:
        return next(iter(self.columns.values())).shape[1] if self.columns else 0

    def column(self, name: str) -> npt.NDArray[np.int64]:
        try:
            return self.columns[name]
        except KeyError:
            known = ", ".join(sorted(self.columns))
            raise KeyError(f"daily series has no column {name!r} (has: {known})") from None


#: A detector under evaluation: daily series in, flags per merchant-day out.
FlagFunction = Callable[[DailySeries], FlagMatrix]


@dataclass(frozen=True, slots=True)
class DetectorRun:
    """A named entry of the report: which task it is judged on and where its flags come from."""

    task: Task
    source: str
    flags: FlagFunction


def _silence(series: DailySeries) -> FlagMatrix:
    return silence_flags(series.column("pos_approved_count"))


def _drop(series: DailySeries) -> FlagMatrix:
    return turnover_drop_flags(series.column("pos_approved_amount_fen"))


def _returned(series: DailySeries) -> FlagMatrix:
    return returned_item_flags(series.column("acct_returned_item_count"))


def default_detectors() -> dict[str, DetectorRun]:
    """Until the real detectors exist, each task is judged on the baseline that fits it."""
    silence = DetectorRun("dormancy", "baseline:days_since_last_txn", _silence)
    drop = DetectorRun("churn", "baseline:turnover_drop", _drop)
    returned = DetectorRun("credit", "baseline:returned_items", _returned)
    return {
        "dormancy": silence,
        "churn": drop,
        "credit": returned,
        "baseline_days_since_last_txn": silence,
        "baseline_turnover_drop": drop,
        "baseline_returned_items": returned,
    }


def evaluate(
    series: DailySeries,
    labels: Sequence[Label],
    detectors: Mapping[str, DetectorRun] | None = None,
    params: EvaluationParams = DEFAULT_PARAMS,
) -> dict[str, dict[str, object]]:
    """Run every detector over the series and score it on its task: the report's detectors."""
    runs = default_detectors() if detectors is None else detectors
    end = series.start + timedelta(days=series.days - 1)
    merchant_days = len(series.merchant_ids) * series.days
    report: dict[str, dict[str, object]] = {}
    for name, run in runs.items():
        flags = np.asarray(run.flags(series), dtype=np.bool_)
        alerts = alert_starts(flags, series.merchant_ids, series.start)
        score = score_alerts(alerts, labels, run.task, end, merchant_days, params)
        report[name] = {"task": run.task, "source": run.source, **score.as_dict()}
    return report
