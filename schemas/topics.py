"""The topic catalogue: versioned names, payload models, keys and cleanup policies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from schemas.inputs import (
    AccountTransaction,
    LoanEvent,
    MerchantProfile,
    OutreachOutcome,
    PosTransaction,
)
from schemas.outputs import Alert, DeadLetter, OutreachTask, PosLoanLimit

POS_TRANSACTIONS = "pos.transactions.v1"
ACCOUNT_TRANSACTIONS = "account.transactions.v1"
MERCHANT_PROFILES = "merchant.profiles.v1"
LOAN_EVENTS = "loan.events.v1"
OUTREACH_OUTCOMES = "outreach.outcomes.v1"
MERCHANT_ALERTS = "merchant.alerts.v1"
OUTREACH_TASKS = "outreach.tasks.v1"
POS_LOAN_LIMITS = "pos-loan.limits.v1"
DEAD_LETTERS = "monitor.deadletter.v1"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: every topic is keyed by merchant_id so that a merchant's events co-partition."""

    name: str
    model: type[BaseModel]
    direction: Literal["input", "output"]
    compacted: bool = False
    key_field: str = "merchant_id"


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(POS_TRANSACTIONS, PosTransaction, "input"),
    TopicSpec(ACCOUNT_TRANSACTIONS, AccountTransaction, "input"),
    TopicSpec(MERCHANT_PROFILES, MerchantProfile, "input", compacted=True),
    TopicSpec(LOAN_EVENTS, LoanEvent, "input"),
    TopicSpec(OUTREACH_OUTCOMES, OutreachOutcome, "input"),
    TopicSpec(MERCHANT_ALERTS, Alert, "output"),
    TopicSpec(OUTREACH_TASKS, OutreachTask, "output"),
    TopicSpec(POS_LOAN_LIMITS, PosLoanLimit, "output", compacted=True),
    TopicSpec(DEAD_LETTERS, DeadLetter, "output", key_field="source_topic"),
)

TOPICS_BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in TOPICS}
