"""Streaming feature engine: per-merchant rolling sales and cash-flow features in event time.

The worker and the backtest call ``step`` (or ``step_pos`` / ``step_account`` on plain values)
per event and ``close_through`` per merchant when the partition's ``PartitionClock`` says days
are final; each closed day yields a ``DaySnapshot`` (warehouse row fields and features).
"""

from __future__ import annotations

from detectors.features.clock import PartitionClock
from detectors.features.close import (
    DailyTotals,
    DaySnapshot,
    close_day,
    close_through,
    day_totals,
    days_to_close,
)
from detectors.features.codec import (
    FORMAT_VERSION,
    decode_ids,
    decode_state,
    encode_ids,
    encode_state,
)
from detectors.features.codes import (
    POS_KIND_CODES,
    account_code,
    card_hash,
    lender_id,
    pos_txn_hash,
)
from detectors.features.compute import feature_names
from detectors.features.errors import (
    CloseOrderError,
    FeatureError,
    FeatureParamsError,
    StateDecodeError,
)
from detectors.features.params import BusinessCalendar, FeatureParams
from detectors.features.state import MerchantState
from detectors.features.step import (
    StepResult,
    StepStatus,
    forget_id,
    step,
    step_account,
    step_pos,
)

__all__ = [
    "FORMAT_VERSION",
    "POS_KIND_CODES",
    "BusinessCalendar",
    "CloseOrderError",
    "DailyTotals",
    "DaySnapshot",
    "FeatureError",
    "FeatureParams",
    "FeatureParamsError",
    "MerchantState",
    "PartitionClock",
    "StateDecodeError",
    "StepResult",
    "StepStatus",
    "account_code",
    "card_hash",
    "close_day",
    "close_through",
    "day_totals",
    "days_to_close",
    "decode_ids",
    "decode_state",
    "encode_ids",
    "encode_state",
    "feature_names",
    "forget_id",
    "lender_id",
    "pos_txn_hash",
    "step",
    "step_account",
    "step_pos",
]
