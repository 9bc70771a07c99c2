"""Row models of the warehouse tables (one model per table, field order = column order)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from schemas.common import (
    Identifier,
    NonNegativeFen,
    OutputModel,
    PlausibleDate,
    SignedFen,
    UtcDatetime,
)

Count = Annotated[int, Field(ge=0)]


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


#: Table name -> row model, for every warehouse table with a row model.
WAREHOUSE_ROWS: dict[str, type[BaseModel]] = {
    "merchant_daily": MerchantDailyRow,
    "dead_letters": DeadLetterRow,
}
