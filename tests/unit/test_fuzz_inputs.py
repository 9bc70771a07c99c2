"""Every input topic's boundary under hostile payloads: a model or a reason, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.common import EARLIEST_EVENT_TIME, LATEST_EVENT_TIME, MAX_AMOUNT_FEN
from streams.codec import Rejected
from streams.processor import DECODERS
from tests.fixtures.fuzz import INPUT_TOPICS, hostile_records, valid_payload

REASONS = {"invalid_json", "validation", "key_mismatch", "oversized", "empty"}


@pytest.mark.parametrize("topic", INPUT_TOPICS)
def test_the_valid_base_payloads_pass(topic: str) -> None:

    decoded = DECODERS[topic].decode(b"MF0001", orjson.dumps(valid_payload(topic, "MF0001", 1)))
    assert not isinstance(decoded, Rejected), decoded


def test_hostile_records_are_refused_with_a_reason() -> None:
    refused = 0
    for topic, key, value, damage in hostile_records(2_000, seed=5):
        decoded = DECODERS[topic].decode(key, value)
        if isinstance(decoded, Rejected):
            refused += 1
            assert decoded.reason in REASONS, (damage, decoded)
            assert decoded.error
        else:  # what passes must be sane (e.g. a missing optional field)
            amount = getattr(decoded, "amount_fen", 0)
            assert 0 <= amount <= MAX_AMOUNT_FEN, damage
            when = getattr(decoded, "event_time", None) or getattr(decoded, "updated_at", None)
            assert when is None or EARLIEST_EVENT_TIME <= when < LATEST_EVENT_TIME
            assert when is None or when.tzinfo is not None
    assert refused > 1_500  # nearly every mutation breaks the contract


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(INPUT_TOPICS), value=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(topic: str, value: bytes) -> None:
    decoded = DECODERS[topic].decode(b"MF0001", value)
    assert isinstance(decoded, Rejected) or decoded is not None


@settings(max_examples=300, deadline=None)
@given(
    topic=st.sampled_from(INPUT_TOPICS),
    field=st.text(max_size=20),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=50),
        st.lists(st.integers(), max_size=3),
    ),
)
def test_any_field_set_to_any_json_value_never_raises(
    topic: str, field: str, value: object
) -> None:

    doc = valid_payload(topic, "MF0001", 1, datetime(2026, 3, 2, tzinfo=UTC))
    doc[field] = value
    try:
        raw = orjson.dumps(doc)
    except TypeError:  # NaN and friends are not JSON: the producer could not send them either
        return
    decoded = DECODERS[topic].decode(b"MF0001", raw)
    if isinstance(decoded, Rejected):
        assert decoded.reason in REASONS
