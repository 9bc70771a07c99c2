"""Arrow schemas of the simulator's topic files and vectorised builders of their columns."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from schemas import topics

TIMESTAMP = pa.timestamp("ms", tz="UTC")

POS_SCHEMA = pa.schema(
    [
        ("txn_id", pa.string()),
        ("merchant_id", pa.string()),
        ("terminal_id", pa.string()),
        ("event_time", TIMESTAMP),
        ("amount_fen", pa.int64()),
        ("currency", pa.string()),
        ("kind", pa.string()),
        ("card_token", pa.string()),
        ("card_type", pa.string()),
        ("channel", pa.string()),
        ("mcc", pa.string()),
    ]
)
ACCOUNT_SCHEMA = pa.schema(
    [
        ("txn_id", pa.string()),
        ("account_id", pa.string()),
        ("merchant_id", pa.string()),
        ("event_time", TIMESTAMP),
        ("direction", pa.string()),
        ("amount_fen", pa.int64()),
        ("balance_after_fen", pa.int64()),
        ("category", pa.string()),
        ("counterparty_bank_code", pa.string()),
    ]
)
PROFILE_SCHEMA = pa.schema(
    [
        ("merchant_id", pa.string()),
        ("name", pa.string()),
        ("industry", pa.string()),
        ("region", pa.string()),
        ("grid_id", pa.string()),
        ("account_manager_id", pa.string()),
        ("onboarding_date", pa.date32()),
        ("pos_loan_facility_fen", pa.int64()),
        ("pos_loan_outstanding_fen", pa.int64()),
        ("flags", pa.list_(pa.string())),
        ("updated_at", TIMESTAMP),
    ]
)
LOAN_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("loan_id", pa.string()),
        ("merchant_id", pa.string()),
        ("event_time", TIMESTAMP),
        ("kind", pa.string()),
        ("amount_fen", pa.int64()),
        ("due_date", pa.date32()),
        ("days_past_due", pa.int64()),
    ]
)

#: The simulator's topics in a fixed order (ties in event time are broken by this order).
SCHEMAS: dict[str, pa.Schema] = {
    topics.MERCHANT_PROFILES: PROFILE_SCHEMA,
    topics.LOAN_EVENTS: LOAN_SCHEMA,
    topics.ACCOUNT_TRANSACTIONS: ACCOUNT_SCHEMA,
    topics.POS_TRANSACTIONS: POS_SCHEMA,
}
#: Column holding each topic's event time.
TIME_COLUMN: dict[str, str] = {name: "event_time" for name in SCHEMAS} | {
    topics.MERCHANT_PROFILES: "updated_at"
}


def numbered(prefix: str, numbers: npt.NDArray[np.integer], width: int) -> pa.Array:
    """Strings ``prefix`` + zero-padded ``numbers``: ids built in C, not in a Python loop."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, type=pa.int64()), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def pick(values: pa.Array | Sequence[str], index: npt.NDArray[np.integer]) -> pa.Array:
    """``values[index]`` as an Arrow string array."""
    array = values if isinstance(values, pa.Array) else pa.array(list(values), type=pa.string())
    return array.take(pa.array(index, type=pa.int64()))


def timestamps(epoch_seconds: npt.NDArray[np.integer]) -> pa.Array:
    return pa.array(np.asarray(epoch_seconds, dtype=np.int64) * 1000, type=TIMESTAMP)


def empty(topic: str) -> pa.Table:
    return SCHEMAS[topic].empty_table()
