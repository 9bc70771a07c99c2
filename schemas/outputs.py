"""Payloads of the output topics: alerts, outreach tasks, POS-loan limits and dead letters."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from schemas.common import Identifier, NonNegativeFen, OutputModel, PlausibleDate, UtcDatetime

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class AlertType(StrEnum):
    DORMANCY = "dormancy"
    CHURN = "churn"
    CREDIT = "credit"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class ReasonCode(OutputModel):
    """One contributing feature: the merchant's value against its own baseline."""

    feature: Annotated[str, Field(min_length=1, max_length=64)]
    value: float = Field(allow_inf_nan=False)
    baseline: float | None = Field(default=None, allow_inf_nan=False)
    contribution: float = Field(default=0.0, allow_inf_nan=False)


class Alert(OutputModel):
    """One version of an alert's lifecycle (`merchant.alerts.v1`, key: merchant_id)."""

    alert_id: Identifier
    merchant_id: Identifier
    alert_type: AlertType
    severity: Severity
    status: AlertStatus
    version: Annotated[int, Field(ge=1)]
    score: Probability
    decided_by: Annotated[str, Field(min_length=1, max_length=64)]
    model_version: Annotated[str, Field(max_length=64)] = ""
    as_of_date: PlausibleDate
    opened_at: UtcDatetime
    updated_at: UtcDatetime
    reasons: tuple[ReasonCode, ...] = ()
    exposure_fen: NonNegativeFen = 0


class TaskType(StrEnum):
    REACTIVATION_CALL = "reactivation_call"
    RETENTION_VISIT = "retention_visit"
    WIN_BACK = "win_back"
    LIMIT_INCREASE_OFFER = "limit_increase_offer"
    POS_LOAN_PREAPPROVAL = "pos_loan_preapproval"
    REFINANCE_OFFER = "refinance_offer"
    CREDIT_REVIEW = "credit_review"


class TaskStatus(StrEnum):
    QUEUED = "queued"
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class PriorityExplanation(OutputModel):
    value_at_stake_fen: NonNegativeFen
    urgency: Probability
    likelihood_of_success: Probability


class OutreachTask(OutputModel):
    """A task for an account manager (`outreach.tasks.v1`, key: merchant_id)."""

    task_id: Identifier
    merchant_id: Identifier
    manager_id: Identifier
    task_type: TaskType
    status: TaskStatus
    priority: Probability
    explanation: PriorityExplanation
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    suggested_action: Annotated[str, Field(min_length=1, max_length=500)]
    opened_date: PlausibleDate | None = None  # the business day it reached the manager
    due_date: PlausibleDate | None = None  # set when the task opens; None while queued
    created_at: UtcDatetime
    updated_at: UtcDatetime
    source_alert_id: Identifier | None = None


class PosLoanLimit(OutputModel):
    """A merchant's current POS-loan limit (`pos-loan.limits.v1`, compacted, key: merchant_id)."""

    merchant_id: Identifier
    version: Annotated[int, Field(ge=1)]
    as_of: UtcDatetime
    eligible: bool
    limit_fen: NonNegativeFen
    previous_limit_fen: NonNegativeFen = 0
    cap_fen: NonNegativeFen
    turnover_based_fen: NonNegativeFen
    repayment_based_fen: NonNegativeFen
    stability_haircut: Probability
    risk_factor: Probability
    outstanding_fen: NonNegativeFen
    reasons: tuple[Annotated[str, Field(min_length=1, max_length=200)], ...] = ()


class DeadLetter(OutputModel):
    """A record that could not be processed, with the reason (`monitor.deadletter.v1`)."""

    source_topic: Annotated[str, Field(min_length=1, max_length=249)]
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]
    key: Annotated[str, Field(max_length=256)] = ""
    reason: Annotated[str, Field(min_length=1, max_length=64)]
    error: Annotated[str, Field(max_length=4000)]
    payload: Annotated[str, Field(max_length=4000)] = Field(
        default="", description="The start of the raw payload (truncated), for diagnosis."
    )
    received_at: UtcDatetime
