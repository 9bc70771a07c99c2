"""Outreach policy (客户经理任务): which tasks to propose, how to rank them, each manager's queue.

The merchant side, pure: ``propose`` turns a closed merchant-day into task proposals, at most one
per merchant and type within the cooldown and never while one is open (``TaskSlots``). The
manager side (each manager's queue, capacity, expiry) is ``detectors.manager_queue``. Outcomes
teach ``SuccessModel`` how likely each kind of task is to succeed.

Priority, in [0, 1], is ``weight_value * value_score + weight_urgency * urgency +
weight_likelihood * likelihood_of_success`` with ``value_score = 1 - exp(-value_at_stake_fen /
high_value_monthly_fen)``. Value at stake per type:

* reactivation call, retention visit, win-back: monthly turnover (the larger of the last 30 days
  and the merchant's baseline, so a dormant merchant is valued by what it used to bring);
* limit increase: the increase offered (limit minus current facility);
* POS-loan pre-approval, refinance: the limit offered;
* credit review: the exposure (the facility; the monthly turnover when there is no loan).

Urgency is ``0.7 * signal + 0.3 / due_working_days``: the signal is the dormancy level or the churn
score (whichever is higher) for churn-type tasks, the credit score for reviews, and a fixed level
per offer (offers have no deadline in the data; a refinance ranks above the others because the
merchant is borrowing elsewhere now).

Examples
--------
>>> params = OutreachParams()
>>> signals = MerchantSignals(
...     merchant_id="M1", day=20_500, manager_id="AM7", do_not_contact=False,
...     monthly_turnover_fen=8_000_000, dormancy_state="active", churn_score=0.7,
...     churn_alert_opened="M1:churn:20260216", dormancy_alert_opened=None,
...     credit_alert_opened=None, credit_score=0.1, lifecycle_stage="decline",
...     has_pos_loan=False, limit_eligible=False, limit_fen=0, facility_fen=0,
...     other_lender_repayments_30d=0)
>>> slots, model = TaskSlots(), SuccessModel.from_params(params)
>>> [p] = propose(slots, signals, model, params)
>>> p.task_id, p.due_working_days, round(p.priority, 3)
('M1:retention_visit:20260216', 2, 0.618)
>>> propose(slots, signals, model, params)  # one open already: nothing more
[]
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from detectors.base import DetectorError, DetectorParamsError, StateDecodeError, clip
from detectors.dormancy import DormancyState
from detectors.features.params import BusinessCalendar
from detectors.monitoring import ModelHealth
from detectors.online import OnlineClassifier
from schemas.common import ID_PATTERN, MAX_AMOUNT_FEN
from schemas.dashboard_rows import LifecycleStage
from schemas.inputs import OutcomeKind
from schemas.outputs import PriorityExplanation, TaskStatus, TaskType

#: Task types in a fixed order: the byte layout of ``TaskSlots`` and the model's one-hot inputs.
TASK_TYPES: tuple[TaskType, ...] = (
    TaskType.REACTIVATION_CALL,
    TaskType.RETENTION_VISIT,
    TaskType.WIN_BACK,
    TaskType.LIMIT_INCREASE_OFFER,
    TaskType.POS_LOAN_PREAPPROVAL,
    TaskType.REFINANCE_OFFER,
    TaskType.CREDIT_REVIEW,
)
_INDEX = {t: i for i, t in enumerate(TASK_TYPES)}
CHURN_TYPES = frozenset({TaskType.REACTIVATION_CALL, TaskType.RETENTION_VISIT, TaskType.WIN_BACK})
OFFER_TYPES = frozenset(
    {TaskType.LIMIT_INCREASE_OFFER, TaskType.POS_LOAN_PREAPPROVAL, TaskType.REFINANCE_OFFER}
)
#: Types that contact the merchant: never proposed for a do-not-contact merchant.
CONTACT_TYPES = frozenset(TASK_TYPES) - {TaskType.CREDIT_REVIEW}

#: What the success model learns from (the proposal's ``features``), besides the task type.
FEATURES: tuple[str, ...] = (
    "value_score",
    "urgency",
    "churn_score",
    "credit_score",
    "dormancy_level",
    "log_turnover_cny",
    "high_value",
    "has_pos_loan",
    "other_lender_repayments_30d",
    "due_working_days",
    "from_alert",
)
MODEL_INPUTS: tuple[str, ...] = tuple(f"type_{t.value}" for t in TASK_TYPES) + FEATURES

_DORMANCY_LEVEL = {
    DormancyState.ACTIVE: 0.0,
    DormancyState.QUIET: 0.35,
    DormancyState.DORMANT: 0.7,
    DormancyState.LOST: 1.0,
}
_OFFER_URGENCY = {
    TaskType.LIMIT_INCREASE_OFFER: 0.3,
    TaskType.POS_LOAN_PREAPPROVAL: 0.2,
    TaskType.REFINANCE_OFFER: 0.4,
}
_ID = re.compile(ID_PATTERN)
_MAX_TEXT = 500

SLOTS_FORMAT = 1
_SLOTS = struct.Struct("<B" + "iB" * len(TASK_TYPES))


@dataclass(frozen=True)
class OutreachParams:
    """Settings of the outreach policy (each field is a ``MONITOR_`` setting).

    ``min_labels``: from this many outcomes (and at least one success) the River model's
    likelihood is blended with the per-type Beta posterior, with weight ``n / (n + min_labels)``
    (a half at ``min_labels``, rising towards 1). ``churn_risk_score``: the churn score from which
    a merchant in the decline stage gets a retention visit without a churn alert. The three
    weights must sum to 1, so that the priority stays in [0, 1]. ``task_expiry_days``: an open
    task with no outcome this many days after it opened is cancelled as expired, and the
    merchant's slot for its type frees this many days after the proposal (so a task nobody
    answered does not block that type for the merchant forever).
    """

    manager_capacity_per_day: int = 8
    cooldown_days: int = 30
    high_value_monthly_fen: int = 5_000_000
    due_working_days_high_value_churn: int = 2
    due_working_days_dormant: int = 5
    due_working_days_default: int = 10
    success_prior: float = 0.3
    prior_strength: float = 10.0
    min_labels: int = 30
    weight_value: float = 0.4
    weight_urgency: float = 0.35
    weight_likelihood: float = 0.25
    churn_risk_score: float = 0.5
    task_expiry_days: int = 30

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.task_expiry_days <= 3660:
            problems.append("task_expiry_days must be within [1, 3660]")
        if self.manager_capacity_per_day < 1:
            problems.append("manager_capacity_per_day must be >= 1")
        if self.cooldown_days < 1:
            problems.append("cooldown_days must be >= 1")
        if self.high_value_monthly_fen < 1:
            problems.append("high_value_monthly_fen must be >= 1")
        dues = (
            self.due_working_days_high_value_churn,
            self.due_working_days_dormant,
            self.due_working_days_default,
        )
        if not all(1 <= d <= 250 for d in dues):
            problems.append("due_working_days_* must be within [1, 250]")
        if not 0.0 < self.success_prior < 1.0:
            problems.append("success_prior must be within (0, 1)")
        if not self.prior_strength > 0.0:
            problems.append("prior_strength must be > 0")
        if self.min_labels < 1:
            problems.append("min_labels must be >= 1")
        weights = (self.weight_value, self.weight_urgency, self.weight_likelihood)
        if min(weights) < 0.0 or abs(sum(weights) - 1.0) > 1e-6:
            problems.append(f"weights must be >= 0 and sum to 1, got {weights}")
        if not 0.0 <= self.churn_risk_score <= 1.0:
            problems.append("churn_risk_score must be within [0, 1]")
        if problems:
            raise DetectorParamsError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class MerchantSignals:
    """What the detectors say about one closed merchant-day, as plain values.

    ``dormancy_state`` takes a ``DormancyState`` or its lowercased name; ``lifecycle_stage`` a
    ``LifecycleStage`` or its value. ``baseline_monthly_turnover_fen`` (optional) is the usual
    monthly turnover before any decline (slow baseline x 30): it values a merchant whose last
    30 days are silent.
    """

    merchant_id: str
    day: int
    manager_id: str | None
    do_not_contact: bool
    monthly_turnover_fen: int
    dormancy_state: str | DormancyState
    churn_score: float
    churn_alert_opened: str | None
    dormancy_alert_opened: str | None
    credit_alert_opened: str | None
    credit_score: float
    lifecycle_stage: str
    has_pos_loan: bool
    limit_eligible: bool
    limit_fen: int
    facility_fen: int
    other_lender_repayments_30d: int
    reasons: tuple[str, ...] = ()
    baseline_monthly_turnover_fen: int = 0


def _unit(value: float) -> float:
    """A score limited to [0, 1]; NaN or infinite reads as 0."""
    return clip(value) if math.isfinite(value) else 0.0


def _dormancy(value: str | DormancyState) -> DormancyState:
    if isinstance(value, DormancyState):
        return value
    try:
        return DormancyState[str(value).upper()]
    except KeyError as exc:
        names = ", ".join(s.label for s in DormancyState)
        raise DetectorError(f"unknown dormancy state {value!r}; expected one of {names}") from exc


def _stage(value: str) -> LifecycleStage:
    try:
        return LifecycleStage(value)
    except ValueError as exc:
        raise DetectorError(f"unknown lifecycle stage {value!r}") from exc


def task_id_for(merchant_id: str, task_type: TaskType, day: int) -> str:
    """Deterministic task id ``merchant:type:yyyymmdd``; a digest stands in for a long merchant id.

    >>> task_id_for("M1", TaskType.WIN_BACK, 20_500)
    'M1:win_back:20260216'
    >>> len(task_id_for("M" * 64, TaskType.POS_LOAN_PREAPPROVAL, 20_500))
    64
    """
    suffix = f":{task_type.value}:{BusinessCalendar.date_of_day(day):%Y%m%d}"
    if len(merchant_id) + len(suffix) <= 64 and _ID.match(merchant_id):
        return merchant_id + suffix
    digest = hashlib.blake2b(merchant_id.encode(), digest_size=6).hexdigest()
    safe = re.sub(r"[^A-Za-z0-9_.:\-]", "-", merchant_id)[: 64 - len(suffix) - len(digest) - 1]
    head = f"{safe}.{digest}" if safe[:1].isalnum() else f"m.{digest}"
    return head + suffix


def task_type_of(task_id: str) -> TaskType | None:
    """The task type named in a task id (for closing the merchant's slot on an outcome).

    >>> task_type_of("M1:win_back:20260216"), task_type_of("nonsense")
    (<TaskType.WIN_BACK: 'win_back'>, None)
    """
    parts = task_id.rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        return TaskType(parts[1])
    except ValueError:
        return None


def due_date(opened_day: int, working_days: int) -> date:
    """The date ``working_days`` working days (Mon-Fri) after the business day a task opens.

    Public holidays and make-up working days (调休) are not modelled.

    >>> due_date(20_504, 2).isoformat()  # Friday 2026-02-20 + 2 working days
    '2026-02-24'
    """
    current = BusinessCalendar.date_of_day(opened_day)
    left = working_days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def is_success(task_type: TaskType, outcome: OutcomeKind) -> bool:
    """Whether an outcome counts as success for a task type.

    Win-back: won back. Offers: offer accepted. Reactivation, retention and credit review: the
    merchant was reached (won back and offer accepted imply reached). Everything else fails.

    >>> is_success(TaskType.WIN_BACK, OutcomeKind.REACHED)
    False
    >>> is_success(TaskType.RETENTION_VISIT, OutcomeKind.REACHED)
    True
    """
    if task_type is TaskType.WIN_BACK:
        return outcome is OutcomeKind.WON_BACK
    if task_type in OFFER_TYPES:
        return outcome is OutcomeKind.OFFER_ACCEPTED
    return outcome in (OutcomeKind.REACHED, OutcomeKind.WON_BACK, OutcomeKind.OFFER_ACCEPTED)


class SuccessModel:
    """Likelihood that a task of a type succeeds: Beta-Bernoulli per type, then a River model.

    Until ``min_labels`` outcomes (at least one a success) have been learned the likelihood is
    the posterior mean of the type's Beta(prior x strength, (1 - prior) x strength). From then
    on it is blended with a River logistic regression on the task type (one-hot) and the
    proposal's features, with weight ``n / (n + min_labels)`` on the regression.

    Parameters
    ----------
    success_prior, prior_strength
        Prior likelihood of success and its weight in pseudo-outcomes.
    min_labels
        Outcomes before the regression is used.
    learning_rate, l2
        SGD step and L2 penalty of the regression.

    Examples
    --------
    >>> model = SuccessModel(success_prior=0.3, prior_strength=10.0)
    >>> model.likelihood(TaskType.WIN_BACK, {})
    0.3
    >>> for _ in range(10):
    ...     model.learn_one(TaskType.WIN_BACK, {}, OutcomeKind.WON_BACK)
    >>> model.likelihood(TaskType.WIN_BACK, {}), model.n_labels
    (0.65, 10)
    >>> model.clone().n_labels
    0
    """

    def __init__(
        self,
        success_prior: float = 0.3,
        prior_strength: float = 10.0,
        min_labels: int = 30,
        learning_rate: float = 0.03,
        l2: float = 1e-4,
    ) -> None:
        if not 0.0 < success_prior < 1.0 or not prior_strength > 0.0 or min_labels < 1:
            msg = "need 0 < success_prior < 1, prior_strength > 0 and min_labels >= 1"
            raise DetectorParamsError(msg)
        self.success_prior = success_prior
        self.prior_strength = prior_strength
        self.min_labels = min_labels
        self.learning_rate = learning_rate
        self.l2 = l2
        self._counts: dict[TaskType, list[int]] = {t: [0, 0] for t in TASK_TYPES}
        self._model = OnlineClassifier(
            "outreach_success",
            MODEL_INPUTS,
            learning_rate=learning_rate,
            l2=l2,
            min_labels=min_labels,
            min_positives=1,
        )

    @classmethod
    def from_params(cls, params: OutreachParams) -> SuccessModel:
        """A fresh model with the prior and warm-up of the outreach settings."""
        return cls(params.success_prior, params.prior_strength, params.min_labels)

    def _get_params(self) -> dict[str, Any]:
        return {
            "success_prior": self.success_prior,
            "prior_strength": self.prior_strength,
            "min_labels": self.min_labels,
            "learning_rate": self.learning_rate,
            "l2": self.l2,
        }

    def clone(self) -> SuccessModel:
        """A fresh, untrained copy with the same hyperparameters."""
        return type(self)(**self._get_params())

    @property
    def n_labels(self) -> int:
        """Outcomes learned so far."""
        return self._model.labels_seen

    @property
    def is_warm(self) -> bool:
        """Whether the River model takes part in the likelihood."""
        return self._model.is_warm

    @property
    def version(self) -> str:
        return self._model.version

    @property
    def health(self) -> ModelHealth:
        """Progressive validation of the River model (rows for ``model_metrics``)."""
        return self._model.health

    def prior_likelihood(self, task_type: TaskType) -> float:
        """The Beta posterior mean of the type's success rate."""
        wins, losses = self._counts[task_type]
        alpha = self.success_prior * self.prior_strength + wins
        return alpha / (self.prior_strength + wins + losses)

    @staticmethod
    def _x(task_type: TaskType, features: Mapping[str, float]) -> dict[str, float]:
        x = {k: v for k, v in features.items() if not k.startswith("type_")}
        x.update({f"type_{t.value}": float(t is task_type) for t in TASK_TYPES})
        return x

    def likelihood(self, task_type: TaskType, features: Mapping[str, float]) -> float:
        """Likelihood of success of a task of ``task_type`` with these proposal features."""
        beta = self.prior_likelihood(task_type)
        if not self._model.is_warm:
            return beta
        n = self._model.labels_seen
        weight = n / (n + self.min_labels)
        learned = self._model.score_one(self._x(task_type, features))
        return _unit((1.0 - weight) * beta + weight * learned)

    def score_one(self, task_type: TaskType, features: Mapping[str, float]) -> float:
        """Same as ``likelihood`` (River's name)."""
        return self.likelihood(task_type, features)

    def learn_one(
        self, task_type: TaskType, features: Mapping[str, float], outcome: OutcomeKind
    ) -> None:
        """Learn one outcome of a task (the features are the proposal's)."""
        success = is_success(task_type, outcome)
        self._counts[task_type][0 if success else 1] += 1
        self._model.learn_one(self._x(task_type, features), success)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"SuccessModel({args})"


@dataclass(slots=True)
class TaskSlots:
    """Per merchant, for each task type: the last day one was proposed (-1 never) and whether
    it is still open (proposed, no outcome yet). 36 bytes encoded.

    >>> s = TaskSlots()
    >>> s.mark(TaskType.WIN_BACK, 20_500)
    >>> s.is_open(TaskType.WIN_BACK), TaskSlots.decode(s.encode()) == s
    (True, True)
    """

    last_days: list[int] = field(default_factory=lambda: [-1] * len(TASK_TYPES))
    opened: list[bool] = field(default_factory=lambda: [False] * len(TASK_TYPES))

    def is_open(self, task_type: TaskType) -> bool:
        return self.opened[_INDEX[task_type]]

    def last_proposed_day(self, task_type: TaskType) -> int:
        return self.last_days[_INDEX[task_type]]

    def available(
        self, task_type: TaskType, day: int, cooldown_days: int, expiry_days: int | None = None
    ) -> bool:
        """Not open, and none proposed in the ``cooldown_days`` days before ``day``. With
        ``expiry_days``, a task proposed that long ago no longer counts as open."""
        i = _INDEX[task_type]
        last = self.last_days[i]
        still_open = self.opened[i] and (expiry_days is None or day - last < expiry_days)
        return not still_open and (last < 0 or day - last >= cooldown_days)

    def mark(self, task_type: TaskType, day: int) -> None:
        """A task of this type was proposed on ``day``."""
        i = _INDEX[task_type]
        self.last_days[i] = day
        self.opened[i] = True

    def close(self, task_type: TaskType) -> None:
        """An outcome closed the open task of this type (the cooldown still runs)."""
        self.opened[_INDEX[task_type]] = False

    def encode(self) -> bytes:
        values: list[int] = [SLOTS_FORMAT]
        for last, is_open in zip(self.last_days, self.opened, strict=True):
            values += [last, int(is_open)]
        return _SLOTS.pack(*values)

    @classmethod
    def decode(cls, data: bytes) -> TaskSlots:
        if len(data) != _SLOTS.size or data[:1] != bytes([SLOTS_FORMAT]):
            raise StateDecodeError(f"not task slots of format {SLOTS_FORMAT} ({len(data)} bytes)")
        values = _SLOTS.unpack(data)[1:]
        flags = values[1::2]
        if any(f not in (0, 1) for f in flags):
            raise StateDecodeError("task slots: open flags must be 0 or 1")
        return cls(list(values[0::2]), [bool(f) for f in flags])


@dataclass(frozen=True, slots=True)
class TaskProposal:
    """A proposed task, from the merchant side to the manager side (keyed by ``manager_id``)."""

    task_id: str
    merchant_id: str
    manager_id: str
    task_type: TaskType
    day: int
    value_at_stake_fen: int
    urgency: float
    likelihood_of_success: float
    priority: float
    due_working_days: int
    reason: str
    suggested_action: str
    source_alert_id: str | None
    features: dict[str, float]

    @property
    def explanation(self) -> PriorityExplanation:
        return PriorityExplanation(
            value_at_stake_fen=self.value_at_stake_fen,
            urgency=self.urgency,
            likelihood_of_success=self.likelihood_of_success,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (the task type as its value)."""
        return {
            "task_id": self.task_id,
            "merchant_id": self.merchant_id,
            "manager_id": self.manager_id,
            "task_type": self.task_type.value,
            "day": self.day,
            "value_at_stake_fen": self.value_at_stake_fen,
            "urgency": self.urgency,
            "likelihood_of_success": self.likelihood_of_success,
            "priority": self.priority,
            "due_working_days": self.due_working_days,
            "reason": self.reason,
            "suggested_action": self.suggested_action,
            "source_alert_id": self.source_alert_id,
            "features": dict(self.features),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskProposal:
        """The inverse of ``to_dict``; ``StateDecodeError`` on anything else."""
        try:
            features = data["features"]
            if not isinstance(features, Mapping):
                raise TypeError("features must be an object")
            alert = data["source_alert_id"]
            return cls(
                task_id=typed_field(data, "task_id", str),
                merchant_id=typed_field(data, "merchant_id", str),
                manager_id=typed_field(data, "manager_id", str),
                task_type=TaskType(data["task_type"]),
                day=typed_field(data, "day", int),
                value_at_stake_fen=typed_field(data, "value_at_stake_fen", int),
                urgency=_number(data["urgency"]),
                likelihood_of_success=_number(data["likelihood_of_success"]),
                priority=_number(data["priority"]),
                due_working_days=typed_field(data, "due_working_days", int),
                reason=typed_field(data, "reason", str),
                suggested_action=typed_field(data, "suggested_action", str),
                source_alert_id=None
                if alert is None
                else typed_field(data, "source_alert_id", str),
                features={str(k): _number(v) for k, v in features.items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateDecodeError(f"not a task proposal: {exc}") from exc


def typed_field(data: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{name} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """One state of one task; streams adds created_at / updated_at to make an ``OutreachTask``.

    ``due_date`` is set once the task opens (counted from the day it opens); a queued task has
    none yet (``due_date(proposal.day, proposal.due_working_days)`` is the earliest it can be).
    """

    proposal: TaskProposal
    status: TaskStatus
    opened_day: int | None = None
    due_date: date | None = None
    closed_day: int | None = None
    outcome: OutcomeKind | None = None

    @property
    def task_id(self) -> str:
        return self.proposal.task_id


# --- the merchant side ---------------------------------------------------------------------


def _churn_task(
    s: MerchantSignals, state: DormancyState, stage: LifecycleStage, params: OutreachParams
) -> tuple[TaskType, str | None] | None:
    """At most one churn-type task per merchant-day, the most specific first."""
    if state is DormancyState.LOST:
        return TaskType.WIN_BACK, s.dormancy_alert_opened or s.churn_alert_opened
    if state is DormancyState.DORMANT or s.dormancy_alert_opened is not None:
        return TaskType.REACTIVATION_CALL, s.dormancy_alert_opened
    if stage is LifecycleStage.CHURN:
        return TaskType.WIN_BACK, s.churn_alert_opened
    risky_decline = stage is LifecycleStage.DECLINE and _unit(s.churn_score) >= (
        params.churn_risk_score
    )
    if s.churn_alert_opened is not None or risky_decline:
        return TaskType.RETENTION_VISIT, s.churn_alert_opened
    return None


def _offers(s: MerchantSignals, stage: LifecycleStage) -> list[TaskType]:
    out = []
    if (
        stage is LifecycleStage.GROWTH
        and s.has_pos_loan
        and s.limit_eligible
        and s.limit_fen > s.facility_fen
    ):
        out.append(TaskType.LIMIT_INCREASE_OFFER)
    if s.limit_eligible and s.limit_fen > 0 and s.other_lender_repayments_30d > 0:
        out.append(TaskType.REFINANCE_OFFER)
    if s.limit_eligible and s.limit_fen > 0 and not s.has_pos_loan:
        out.append(TaskType.POS_LOAN_PREAPPROVAL)
    return out


def _turnover(s: MerchantSignals) -> int:
    return max(s.monthly_turnover_fen, s.baseline_monthly_turnover_fen, 0)


def _value_at_stake(task_type: TaskType, s: MerchantSignals) -> int:
    if task_type in CHURN_TYPES:
        value = _turnover(s)
    elif task_type is TaskType.LIMIT_INCREASE_OFFER:
        value = s.limit_fen - s.facility_fen
    elif task_type in OFFER_TYPES:
        value = s.limit_fen
    else:
        value = s.facility_fen if s.facility_fen > 0 else _turnover(s)
    return min(max(value, 0), MAX_AMOUNT_FEN)


def _due_working_days(
    task_type: TaskType, s: MerchantSignals, state: DormancyState, params: OutreachParams
) -> int:
    if task_type in CHURN_TYPES:
        if _turnover(s) >= params.high_value_monthly_fen:
            return params.due_working_days_high_value_churn
        if task_type is TaskType.REACTIVATION_CALL or state >= DormancyState.DORMANT:
            return params.due_working_days_dormant
    return params.due_working_days_default


def _urgency(task_type: TaskType, s: MerchantSignals, state: DormancyState, due: int) -> float:
    if task_type in CHURN_TYPES:
        signal = max(_DORMANCY_LEVEL[state], _unit(s.churn_score))
    elif task_type is TaskType.CREDIT_REVIEW:
        signal = _unit(s.credit_score)
    else:
        signal = _OFFER_URGENCY[task_type]
    return _unit(0.7 * signal + 0.3 / due)


def _cny(fen: int) -> str:
    return f"CNY {fen // 100:,}"


def _texts(task_type: TaskType, s: MerchantSignals, state: DormancyState) -> tuple[str, str]:
    """The reason (why this merchant, now) and the suggested action."""
    turnover = _cny(_turnover(s))
    headroom = _cny(max(s.limit_fen - s.facility_fen, 0))
    texts = {
        TaskType.REACTIVATION_CALL: (
            f"Dormant (休眠): silent beyond its own rhythm, state {state.label}; "
            f"usual monthly turnover {turnover}",
            "Call: ask why the terminal is silent, check it works, re-verify after 3 silent "
            "months (休眠激活).",
        ),
        TaskType.RETENTION_VISIT: (
            f"Churn risk (流失预警) {_unit(s.churn_score):.2f}; monthly turnover {turnover}",
            "Visit: find the cause of the decline (other acquirer, settlement moved, trade "
            "trouble) and offer help (客户挽留).",
        ),
        TaskType.WIN_BACK: (
            f"Churned or going (流失), state {state.label}; usual monthly turnover {turnover}",
            "Win-back contact: offer terms by value and price sensitivity; confirm whether the "
            "terminal stays (流失挽回).",
        ),
        TaskType.LIMIT_INCREASE_OFFER: (
            f"Growth stage (提升): eligible limit {_cny(s.limit_fen)} is {headroom} above the "
            f"current facility {_cny(s.facility_fen)}",
            f"Offer a POS-loan limit increase to {_cny(s.limit_fen)} (提额).",
        ),
        TaskType.POS_LOAN_PREAPPROVAL: (
            f"Eligible for a POS loan of {_cny(s.limit_fen)} and has none (存量无贷户挖潜)",
            f"Offer a pre-approved POS loan up to {_cny(s.limit_fen)}.",
        ),
        TaskType.REFINANCE_OFFER: (
            f"{s.other_lender_repayments_30d} repayment(s) to another lender in 30 days (他行贷款)"
            f"; eligible up to {_cny(s.limit_fen)}. Compliance reviews the offer first "
            "(借新还旧 rule: no new loan to repay an old one)",
            "After compliance review, offer to move the other bank's loan here (挖转); check "
            "for multiple borrowing (多头借贷).",
        ),
        TaskType.CREDIT_REVIEW: (
            f"Credit deterioration (贷后预警) {_unit(s.credit_score):.2f}; exposure "
            f"{_cny(s.facility_fen)}",
            "Review cash flow and the loan file; decide on a 关注 review (transaction signals "
            "alone never reclassify a loan).",
        ),
    }
    reason, action = texts[task_type]
    if s.reasons:
        reason = f"{reason}; " + "; ".join(s.reasons[:3])
    return reason[:_MAX_TEXT], action[:_MAX_TEXT]


def _proposal(
    task_type: TaskType,
    alert_id: str | None,
    s: MerchantSignals,
    manager_id: str,
    state: DormancyState,
    success: SuccessModel,
    params: OutreachParams,
) -> TaskProposal:
    value = _value_at_stake(task_type, s)
    due = _due_working_days(task_type, s, state, params)
    urgency = _urgency(task_type, s, state, due)
    value_score = 1.0 - math.exp(-value / params.high_value_monthly_fen)
    features = {
        "value_score": round(value_score, 6),
        "urgency": round(urgency, 6),
        "churn_score": round(_unit(s.churn_score), 6),
        "credit_score": round(_unit(s.credit_score), 6),
        "dormancy_level": _DORMANCY_LEVEL[state],
        "log_turnover_cny": round(math.log1p(_turnover(s) / 100), 6),
        "high_value": float(_turnover(s) >= params.high_value_monthly_fen),
        "has_pos_loan": float(s.has_pos_loan),
        "other_lender_repayments_30d": float(min(max(s.other_lender_repayments_30d, 0), 30)),
        "due_working_days": float(due),
        "from_alert": float(alert_id is not None),
    }
    likelihood = _unit(success.likelihood(task_type, features))
    priority = (
        params.weight_value * value_score
        + params.weight_urgency * urgency
        + params.weight_likelihood * likelihood
    )
    reason, action = _texts(task_type, s, state)
    return TaskProposal(
        task_id=task_id_for(s.merchant_id, task_type, s.day),
        merchant_id=s.merchant_id,
        manager_id=manager_id,
        task_type=task_type,
        day=s.day,
        value_at_stake_fen=value,
        urgency=round(urgency, 6),
        likelihood_of_success=round(likelihood, 6),
        priority=round(_unit(priority), 6),
        due_working_days=due,
        reason=reason,
        suggested_action=action,
        source_alert_id=alert_id,
        features=features,
    )


def propose(
    slots: TaskSlots, signals: MerchantSignals, success: SuccessModel, params: OutreachParams
) -> list[TaskProposal]:
    """The tasks one closed merchant-day calls for; marks them proposed in ``slots``.

    Churn-type (one per day, the most specific): lost -> win-back; dormant or a dormancy alert
    opened -> reactivation call; lifecycle churn -> win-back; a churn alert opened or decline
    with churn score >= ``churn_risk_score`` -> retention visit. If that type is cooling down or
    open, no other churn-type task stands in. Offers: limit increase (growth, has a loan,
    eligible limit above facility); refinance (eligible, repays another lender; supersedes the
    pre-approval that day); pre-approval (eligible, limit > 0, no loan). Credit review: a credit
    alert opened, also for do-not-contact merchants (internal); every other type contacts the
    merchant and is never proposed for them. No manager: nothing, slots untouched.
    """
    manager_id = signals.manager_id
    if manager_id is None:
        return []
    state = _dormancy(signals.dormancy_state)
    stage = _stage(signals.lifecycle_stage)
    day, cooldown = signals.day, params.cooldown_days
    wanted: list[tuple[TaskType, str | None]] = []
    if not signals.do_not_contact:
        churn = _churn_task(signals, state, stage, params)
        if churn is not None:
            wanted.append(churn)
        offers = _offers(signals, stage)
        if TaskType.REFINANCE_OFFER in offers and slots.available(
            TaskType.REFINANCE_OFFER, day, cooldown, params.task_expiry_days
        ):
            offers = [t for t in offers if t is not TaskType.POS_LOAN_PREAPPROVAL]
        wanted += [(t, None) for t in offers]
    if signals.credit_alert_opened is not None:
        wanted.append((TaskType.CREDIT_REVIEW, signals.credit_alert_opened))
    out = []
    for task_type, alert_id in wanted:
        if not slots.available(task_type, day, cooldown, params.task_expiry_days):
            continue
        out.append(_proposal(task_type, alert_id, signals, manager_id, state, success, params))
        slots.mark(task_type, day)
    return out
