"""Actions per closed merchant-day: the POS-loan limit and the outreach proposals (pure).

The third step after the features and the detectors: ``on_day_closed`` takes what the
detectors decided about one merchant-day and returns the merchant's new action state, the limit
decision when the limit changed (to publish) and the outreach proposals (for the merchant's
account manager). The worker and any offline run call the same function.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from detectors.alerts import ALERT_TYPES, SlotStatus
from detectors.base import DetectorParamsError, StateDecodeError, feature
from detectors.dormancy import DormancyState
from detectors.features.close import DaySnapshot
from detectors.features.params import BusinessCalendar
from detectors.limits import LimitDecision, LimitInputs, LimitParams, LimitState, apply, decide
from detectors.limits import observe_day as observe_turnover
from detectors.outreach import (
    MerchantSignals,
    OutreachParams,
    SuccessModel,
    TaskProposal,
    TaskSlots,
    propose,
    task_type_of,
)
from detectors.pipeline import DayScores
from detectors.state import DetectorState
from schemas.inputs import MerchantFlag, MerchantProfile
from schemas.outputs import Alert, AlertType
from schemas.settings import Settings

#: Format byte of ``ActionState.encode``.
ACTION_STATE_FORMAT = 1
_HEAD = struct.Struct("<BBqqiH")  # format, flags, facility, outstanding, onboarding day, id len
_PART = struct.Struct("<H")
_DO_NOT_CONTACT = 1
_ACCOUNT_CLOSED = 2
_UNDER_INVESTIGATION = 4
_CREDIT = ALERT_TYPES.index(AlertType.CREDIT)
_SEVERITY_HIGH = 2
#: Days per month in the history-length arithmetic.
_MONTH_DAYS = 30.44


@dataclass(slots=True)
class MerchantFacts:
    """What the profiles topic says about a merchant that the actions need."""

    manager_id: str = ""
    do_not_contact: bool = False
    account_closed: bool = False
    under_investigation: bool = False
    facility_fen: int = 0
    outstanding_fen: int = 0
    onboarding_day: int = -1

    @property
    def blocked_reason(self) -> str | None:
        if self.account_closed:
            return "account closed"
        if self.under_investigation:
            return "under investigation"
        return None


@dataclass(slots=True)
class ActionState:
    """Per merchant: profile facts, the limit's state and the outreach slots (bounded bytes).

    >>> state = ActionState(MerchantFacts(manager_id="am-01", facility_fen=100))
    >>> ActionState.decode(state.encode()) == state
    True
    """

    facts: MerchantFacts = field(default_factory=MerchantFacts)
    limit: LimitState = field(default_factory=LimitState)
    slots: TaskSlots = field(default_factory=TaskSlots)

    def encode(self) -> bytes:
        f = self.facts
        flags = (
            (_DO_NOT_CONTACT if f.do_not_contact else 0)
            | (_ACCOUNT_CLOSED if f.account_closed else 0)
            | (_UNDER_INVESTIGATION if f.under_investigation else 0)
        )
        manager = f.manager_id.encode()
        limit, slots = self.limit.encode(), self.slots.encode()
        return b"".join(
            (
                _HEAD.pack(
                    ACTION_STATE_FORMAT,
                    flags,
                    f.facility_fen,
                    f.outstanding_fen,
                    f.onboarding_day,
                    len(manager),
                ),
                manager,
                _PART.pack(len(limit)),
                limit,
                slots,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> ActionState:
        if not data or data[0] != ACTION_STATE_FORMAT:
            got = data[0] if data else "empty"
            msg = f"unknown action state format {got} (this build reads {ACTION_STATE_FORMAT})"
            raise StateDecodeError(msg)
        try:
            _, flags, facility, outstanding, onboarding, n = _HEAD.unpack_from(data, 0)
            pos = _HEAD.size
            manager = bytes(data[pos : pos + n]).decode()
            pos += n
            (n_limit,) = _PART.unpack_from(data, pos)
            pos += _PART.size
            limit = LimitState.decode(bytes(data[pos : pos + n_limit]))
            slots = TaskSlots.decode(bytes(data[pos + n_limit :]))
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            raise StateDecodeError(f"corrupt action state: {exc}") from exc
        facts = MerchantFacts(
            manager,
            bool(flags & _DO_NOT_CONTACT),
            bool(flags & _ACCOUNT_CLOSED),
            bool(flags & _UNDER_INVESTIGATION),
            facility,
            outstanding,
            onboarding,
        )
        return cls(facts, limit, slots)


@dataclass(frozen=True)
class ActionParams:
    """The limit and outreach parameters (from settings, once, at the edge)."""

    limits: LimitParams = field(default_factory=LimitParams)
    outreach: OutreachParams = field(default_factory=OutreachParams)

    @classmethod
    def from_settings(cls, settings: Settings) -> ActionParams:
        """Every ``MONITOR_LIMIT_*`` and ``MONITOR_OUTREACH_*`` setting; a value the policies
        refuse raises ``DetectorParamsError`` naming the variables.

        >>> ActionParams.from_settings(Settings()) == ActionParams()
        True
        """
        values = settings.model_dump()
        parts: list[Any] = []
        for prefix, kind in (("limit_", LimitParams), ("outreach_", OutreachParams)):
            names = [f.name for f in fields(kind)]
            try:
                parts.append(kind(**{n: values[prefix + n] for n in names}))
            except DetectorParamsError as exc:
                env = f"MONITOR_{prefix.upper()}*"
                raise DetectorParamsError(f"{env} settings: {exc}") from exc
        return cls(parts[0], parts[1])


@dataclass(frozen=True, slots=True)
class DayActions:
    """What one closed merchant-day asks for: a new limit version (when it changed) and tasks."""

    limit: LimitDecision | None
    proposals: list[TaskProposal]


def on_outcome(state: ActionState | None, task_id: str) -> ActionState:
    """An outcome of one of the merchant's tasks: that type's slot is free again."""
    state = state or ActionState()
    task_type = task_type_of(task_id)
    if task_type is not None:  # an id we did not make frees nothing
        state.slots.close(task_type)
    return state


def on_profile(state: ActionState | None, profile: MerchantProfile) -> ActionState:
    """A profile update from the profiles topic."""
    state = state or ActionState()
    flags = profile.flags
    state.facts = MerchantFacts(
        manager_id=profile.account_manager_id,
        do_not_contact=MerchantFlag.DO_NOT_CONTACT in flags,
        account_closed=MerchantFlag.ACCOUNT_CLOSED in flags,
        under_investigation=MerchantFlag.UNDER_INVESTIGATION in flags,
        facility_fen=profile.pos_loan_facility_fen,
        outstanding_fen=profile.pos_loan_outstanding_fen,
        onboarding_day=(profile.onboarding_date - BusinessCalendar.date_of_day(0)).days,
    )
    return state


def _open_credit_alert(detector: DetectorState) -> int:
    slot = detector.alerts[_CREDIT]
    if slot.status is SlotStatus.NONE:
        return 0
    return 2 if slot.severity >= _SEVERITY_HIGH else 1


def _alert_opened(alerts: Sequence[Alert], kind: AlertType) -> str | None:
    for alert in alerts:
        if alert.alert_type is kind and alert.version == 1:
            return alert.alert_id
    return None


def _reasons(alerts: Sequence[Alert]) -> tuple[str, ...]:
    texts = []
    for alert in alerts:
        for reason in alert.reasons[:3]:
            base = f" (own baseline {reason.baseline:g})" if reason.baseline is not None else ""
            texts.append(f"{alert.alert_type.value}: {reason.feature} = {reason.value:g}{base}")
    return tuple(texts)


def on_day_closed(
    state: ActionState | None,
    snapshot: DaySnapshot,
    scores: DayScores | None,
    alerts: Sequence[Alert],
    detector: DetectorState,
    success: SuccessModel,
    params: ActionParams,
) -> tuple[ActionState, DayActions]:
    """One closed merchant-day: ``(state, day's verdicts) -> (state, limit change, proposals)``.

    ``state`` is mutated and returned. The limit is recomputed every closed day with features
    (so a credit alert opened today cuts it today); ``DayActions.limit`` is set only when the
    limit or its eligibility changed (the caller bumps ``state.limit.version`` and publishes).
    A day closed without features (a backtest's fast path) only feeds the turnover history.
    """
    state = state or ActionState()
    observe_turnover(
        state.limit, snapshot.day, snapshot.totals.pos_approved_amount_fen, params.limits
    )
    if scores is None:
        return state, DayActions(None, [])
    x, facts, day = snapshot.features, state.facts, snapshot.day
    if facts.onboarding_day >= 0:
        history_months = max(day - facts.onboarding_day, 0) / _MONTH_DAYS
    else:  # no profile yet: what we have seen ourselves
        first = state.limit.first_day if state.limit.first_day >= 0 else day
        history_months = (day - first + 1) / _MONTH_DAYS
    outstanding = max(facts.outstanding_fen, detector.loan.exposure_fen)
    inputs = LimitInputs(
        day=day,
        history_months=history_months,
        active_days_30d=int(feature(x, "active_days_30d")),
        refund_ratio_90d=feature(x, "refund_ratio_90d"),
        chargeback_ratio_90d=feature(x, "chargeback_ratio_90d"),
        weekly_cv=feature(x, "amount_cv_weekly_12w"),
        txn_count_30d=int(feature(x, "txn_count_30d")),
        distinct_cards_30d=int(feature(x, "distinct_cards_30d")),
        credit_score=scores.credit_score,
        open_credit_alert=_open_credit_alert(detector),
        dormant=scores.dormancy_state >= DormancyState.DORMANT,
        outstanding_fen=outstanding,
        blocked_reason=facts.blocked_reason,
    )
    decision = decide(state.limit, inputs, params.limits)
    changed = apply(state.limit, decision)
    signals = MerchantSignals(
        merchant_id=snapshot.merchant_id,
        day=day,
        manager_id=facts.manager_id or None,
        do_not_contact=facts.do_not_contact,
        monthly_turnover_fen=int(feature(x, "amount_sum_30d_fen")),
        dormancy_state=scores.dormancy_state.label,
        churn_score=scores.churn_score,
        churn_alert_opened=_alert_opened(alerts, AlertType.CHURN),
        dormancy_alert_opened=_alert_opened(alerts, AlertType.DORMANCY),
        credit_alert_opened=_alert_opened(alerts, AlertType.CREDIT),
        credit_score=scores.credit_score,
        lifecycle_stage=scores.lifecycle_stage.value,
        has_pos_loan=facts.facility_fen > 0 or detector.loan.borrower,
        limit_eligible=decision.eligible,
        limit_fen=decision.limit_fen,
        facility_fen=facts.facility_fen,
        other_lender_repayments_30d=int(feature(x, "other_lender_repay_count_30d")),
        reasons=_reasons(alerts),
        baseline_monthly_turnover_fen=int(detector.drift.slow_fen * _MONTH_DAYS),
    )
    proposals = propose(state.slots, signals, success, params.outreach)
    return state, DayActions(decision if changed else None, proposals)
