"""Row models of the warehouse tables (one model per table, field order = column order)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from schemas.common import (
    Identifier,
    NonNegativeFen,
    OutputModel,
    PlausibleDate,
    SignedFen,
    UtcDatetime,
)
from schemas.dashboard_rows import DASHBOARD_ROWS
from schemas.outputs import (
    Alert,
    AlertStatus,
    AlertType,
    OutreachTask,
    PosLoanLimit,
    Probability,
    Severity,
    TaskStatus,
    TaskType,
)

Count = Annotated[int, Field(ge=0)]
#: A row version: grows with every update of the same key (ReplacingMergeTree keeps the latest).
Version = Annotated[int, Field(ge=1, le=2**63 - 1)]


def _json_array(value: str) -> str:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON: {exc}"
        raise ValueError(msg) from exc
    if not isinstance(parsed, list):
        msg = "must be a JSON array"
        raise ValueError(msg)
    return value


#: A JSON array, stored as text (nested objects that the warehouse only displays).
JsonArray = Annotated[str, AfterValidator(_json_array)]


def _dump_json(value: Any) -> str:
    # Compact and in field order so that the same alert always renders to the same text.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class MerchantDailyRow(OutputModel):
    """One merchant-day of sales and cash flow (table ``merchant_daily``).

    Amounts are exact integers in fen. ``version`` grows with every update of the same
    merchant-day, so the ReplacingMergeTree keeps the latest one and a replay never double counts.
    """

    merchant_id: Identifier
    day: PlausibleDate
    pos_approved_count: Count = 0
    pos_approved_amount_fen: NonNegativeFen = 0
    pos_declined_count: Count = 0
    pos_refund_count: Count = 0
    pos_refund_amount_fen: NonNegativeFen = 0
    pos_chargeback_count: Count = 0
    pos_chargeback_amount_fen: NonNegativeFen = 0
    pos_reversal_count: Count = 0
    acct_credit_count: Count = 0
    acct_credit_amount_fen: NonNegativeFen = 0
    acct_debit_count: Count = 0
    acct_debit_amount_fen: NonNegativeFen = 0
    acct_settlement_amount_fen: NonNegativeFen = 0
    acct_end_balance_fen: SignedFen = 0
    version: Annotated[int, Field(ge=1)]


class DeadLetterRow(OutputModel):
    """One dead-lettered record (table ``dead_letters``)."""

    source_topic: str
    partition: Count
    offset: Count
    key: str
    reason: str
    error: str
    payload: str
    received_at: UtcDatetime


class AlertRow(OutputModel):
    """One version of an alert (table ``alerts``): the reason codes as a JSON array of objects.

    Every version is kept (the version is part of the sorting key); re-sending the same version
    replaces it, so a replay never duplicates an alert.
    """

    alert_id: Identifier
    merchant_id: Identifier
    alert_type: AlertType
    severity: Severity
    status: AlertStatus
    version: Version
    score: Probability
    decided_by: Annotated[str, Field(min_length=1, max_length=64)]
    model_version: Annotated[str, Field(max_length=64)] = ""
    as_of_date: PlausibleDate
    opened_at: UtcDatetime
    updated_at: UtcDatetime
    reasons_json: JsonArray = "[]"
    exposure_fen: NonNegativeFen = 0

    @classmethod
    def from_alert(cls, alert: Alert) -> AlertRow:
        """The row of one alert version, reasons rendered as compact JSON."""
        return cls(
            **alert.model_dump(exclude={"reasons"}),
            reasons_json=_dump_json([reason.model_dump(mode="json") for reason in alert.reasons]),
        )


class OutreachTaskRow(OutputModel):
    """The latest state of an outreach task (table ``outreach_tasks``), explanation flattened.

    The table keeps the row with the greatest ``updated_at`` per ``task_id``.
    """

    task_id: Identifier
    merchant_id: Identifier
    manager_id: Identifier
    task_type: TaskType
    status: TaskStatus
    priority: Probability
    value_at_stake_fen: NonNegativeFen
    urgency: Probability
    likelihood_of_success: Probability
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    suggested_action: Annotated[str, Field(min_length=1, max_length=500)]
    opened_date: PlausibleDate | None = None  # the business day it reached the manager
    due_date: PlausibleDate | None = None  # set when the task opens; None while queued
    created_at: UtcDatetime
    updated_at: UtcDatetime
    source_alert_id: Identifier | None = None

    @classmethod
    def from_task(cls, task: OutreachTask) -> OutreachTaskRow:
        """The row of a task, with ``explanation`` spread into its three columns."""
        return cls(**task.model_dump(exclude={"explanation"}), **task.explanation.model_dump())


class PosLoanLimitRow(OutputModel):
    """One version of a merchant's POS-loan limit (table ``pos_loan_limits``), kept for audit."""

    merchant_id: Identifier
    version: Version
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

    @classmethod
    def from_limit(cls, limit: PosLoanLimit) -> PosLoanLimitRow:
        """The row of one limit version (the fields map one to one)."""
        return cls(**limit.model_dump())


class PipelineMetricRow(OutputModel):
    """One sample of a pipeline metric (table ``pipeline_metrics``): lag, throughput, dead letters.

    ``partition`` is -1 for a metric of the whole worker. A sample re-sent with the same
    (metric, worker, partition, ts) replaces the earlier one.
    """

    ts: UtcDatetime
    worker: Annotated[str, Field(min_length=1, max_length=128)]
    metric: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    partition: Annotated[int, Field(ge=-1, le=2**31 - 1)] = -1
    value: float = Field(allow_inf_nan=False)


#: Table name -> row model, for every warehouse table with a row model.
WAREHOUSE_ROWS: dict[str, type[BaseModel]] = {
    "merchant_daily": MerchantDailyRow,
    "dead_letters": DeadLetterRow,
    "alerts": AlertRow,
    "outreach_tasks": OutreachTaskRow,
    "pos_loan_limits": PosLoanLimitRow,
    "pipeline_metrics": PipelineMetricRow,
    **DASHBOARD_ROWS,
}
