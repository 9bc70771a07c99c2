"""Payloads of the input topics: POS and account transactions, profiles, loan events, outcomes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import (
    AmountFen,
    CardToken,
    Identifier,
    InputModel,
    NonNegativeFen,
    PlausibleDate,
    SignedFen,
    UtcDatetime,
)


class PosKind(StrEnum):
    """What happened at the terminal."""

    APPROVED = "approved"
    DECLINED = "declined"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    REVERSAL = "reversal"


class CardType(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"
    PREPAID = "prepaid"
    UNKNOWN = "unknown"


class Channel(StrEnum):
    CHIP = "chip"
    CONTACTLESS = "contactless"
    MAGSTRIPE = "magstripe"
    QR = "qr"
    ECOMMERCE = "ecommerce"
    MANUAL = "manual"


class PosTransaction(InputModel):
    """One POS acquiring transaction (`pos.transactions.v1`, key: merchant_id)."""

    txn_id: Identifier
    merchant_id: Identifier
    terminal_id: Identifier
    event_time: UtcDatetime
    amount_fen: AmountFen = Field(description="Amount in fen (1/100 CNY), an exact integer.")
    currency: Literal["CNY"] = "CNY"
    kind: PosKind
    card_token: CardToken = Field(description="Tokenised card identifier; never a card number.")
    card_type: CardType = CardType.UNKNOWN
    channel: Channel
    mcc: Annotated[str, Field(pattern=r"^\d{4}$", description="ISO 18245 merchant category code.")]


class Direction(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"


class AccountCategory(StrEnum):
    """Booking category of a business-account transaction."""

    POS_SETTLEMENT = "pos_settlement"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_OWN_OTHER_BANK = "transfer_own_other_bank"
    PAYROLL = "payroll"
    TAX = "tax"
    UTILITY = "utility"
    LOAN_REPAYMENT_US = "loan_repayment_us"
    LOAN_REPAYMENT_OTHER = "loan_repayment_other"
    CASH_WITHDRAWAL = "cash_withdrawal"
    RETURNED_ITEM = "returned_item"
    FEE = "fee"
    OTHER = "other"


#: Categories that can only be money coming in, or only money going out.
CREDIT_ONLY = frozenset({AccountCategory.POS_SETTLEMENT, AccountCategory.TRANSFER_IN})
DEBIT_ONLY = frozenset(
    {
        AccountCategory.TRANSFER_OUT,
        AccountCategory.TRANSFER_OWN_OTHER_BANK,
        AccountCategory.PAYROLL,
        AccountCategory.TAX,
        AccountCategory.UTILITY,
        AccountCategory.LOAN_REPAYMENT_US,
        AccountCategory.LOAN_REPAYMENT_OTHER,
        AccountCategory.CASH_WITHDRAWAL,
        AccountCategory.FEE,
    }
)

BankCode = Annotated[str, Field(pattern=r"^[0-9A-Z]{3,12}$")]


class AccountTransaction(InputModel):
    """One booking on the merchant's business current account (`account.transactions.v1`)."""

    txn_id: Identifier
    account_id: Identifier
    merchant_id: Identifier
    event_time: UtcDatetime
    direction: Direction
    amount_fen: AmountFen
    balance_after_fen: SignedFen = Field(description="Balance after booking; negative = overdraft.")
    category: AccountCategory
    counterparty_bank_code: BankCode | None = None

    @model_validator(mode="after")
    def _direction_fits_category(self) -> AccountTransaction:
        if self.category in CREDIT_ONLY and self.direction is not Direction.CREDIT:
            msg = f"category {self.category.value} must be a credit"
            raise ValueError(msg)
        if self.category in DEBIT_ONLY and self.direction is not Direction.DEBIT:
            msg = f"category {self.category.value} must be a debit"
            raise ValueError(msg)
        return self


class Industry(StrEnum):
    WHOLESALE_RETAIL = "wholesale_retail"  # 批发零售
    MANUFACTURING = "manufacturing"  # 生产加工
    CATERING = "catering"  # 餐饮服务
    OTHER_SERVICES = "other_services"  # 其他服务
    AGRICULTURE = "agriculture"  # 涉农


class MerchantFlag(StrEnum):
    KEY_ACCOUNT = "key_account"
    DO_NOT_CONTACT = "do_not_contact"
    ACCOUNT_CLOSED = "account_closed"
    UNDER_INVESTIGATION = "under_investigation"


class MerchantProfile(InputModel):
    """Reference data for one merchant (`merchant.profiles.v1`, compacted, key: merchant_id)."""

    merchant_id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)]
    industry: Industry
    region: Identifier
    grid_id: Identifier
    account_manager_id: Identifier
    onboarding_date: PlausibleDate
    pos_loan_facility_fen: NonNegativeFen = 0
    pos_loan_outstanding_fen: NonNegativeFen = 0
    flags: frozenset[MerchantFlag] = frozenset()
    updated_at: UtcDatetime

    @model_validator(mode="after")
    def _outstanding_within_facility(self) -> MerchantProfile:
        if self.pos_loan_outstanding_fen > self.pos_loan_facility_fen:
            msg = "pos_loan_outstanding_fen exceeds pos_loan_facility_fen"
            raise ValueError(msg)
        return self


class LoanEventKind(StrEnum):
    DISBURSED = "disbursed"
    REPAYMENT_DUE = "repayment_due"
    REPAID = "repaid"
    OVERDUE = "overdue"


class LoanEvent(InputModel):
    """One event of a POS-loan (`loan.events.v1`, key: merchant_id)."""

    event_id: Identifier
    loan_id: Identifier
    merchant_id: Identifier
    event_time: UtcDatetime
    kind: LoanEventKind
    amount_fen: NonNegativeFen = 0
    due_date: PlausibleDate | None = None
    days_past_due: Annotated[int, Field(ge=0, le=3650)] = 0

    @model_validator(mode="after")
    def _dpd_only_when_overdue(self) -> LoanEvent:
        if self.kind is LoanEventKind.OVERDUE and self.days_past_due < 1:
            raise ValueError("an overdue event needs days_past_due >= 1")
        if self.kind is not LoanEventKind.OVERDUE and self.days_past_due != 0:
            raise ValueError("days_past_due is only allowed on overdue events")
        if self.kind is LoanEventKind.DISBURSED and self.amount_fen == 0:
            raise ValueError("a disbursement needs a positive amount_fen")
        return self


class OutcomeKind(StrEnum):
    REACHED = "reached"
    NO_ANSWER = "no_answer"
    WON_BACK = "won_back"
    OFFER_ACCEPTED = "offer_accepted"
    DECLINED = "declined"
    NOT_REACHABLE = "not_reachable"


class OutreachOutcome(InputModel):
    """What came of an outreach task (`outreach.outcomes.v1`, key: merchant_id)."""

    outcome_id: Identifier
    task_id: Identifier
    merchant_id: Identifier
    manager_id: Identifier
    event_time: UtcDatetime
    outcome: OutcomeKind
    note: Annotated[str, Field(max_length=1000)] = ""
