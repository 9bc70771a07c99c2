"""Decoding records at the boundary: every bad record becomes a clear, safe dead letter."""

from __future__ import annotations

import orjson
import pytest

from schemas.inputs import PosTransaction
from streams.codec import MAX_RECORD_BYTES, Decoder, RecordRef, Rejected, dead_letter
from tests.unit.test_schemas import POS

DECODER = Decoder(PosTransaction)


def test_valid_record_decodes() -> None:
    decoded = DECODER.decode(b"M0001", orjson.dumps(POS))
    assert isinstance(decoded, PosTransaction)
    assert decoded.amount_fen == 12_345


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"M0001", b"{nope", "invalid_json"),
        (b"M0001", b"", "invalid_json"),
        (b"M0001", None, "empty"),
        (b"M0001", orjson.dumps({**POS, "amount_fen": -1}), "validation"),
        (b"M0001", orjson.dumps({k: v for k, v in POS.items() if k != "kind"}), "validation"),
        (b"M0001", orjson.dumps([1, 2, 3]), "validation"),
        (b"M0002", orjson.dumps(POS), "key_mismatch"),
        (b"M0001", b"{" + b" " * MAX_RECORD_BYTES + b"}", "oversized"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(
    key: bytes, value: bytes | None, reason: str
) -> None:
    decoded = DECODER.decode(key, value)
    assert isinstance(decoded, Rejected)
    assert decoded.reason == reason
    assert decoded.error


def test_dead_letter_masks_card_numbers_and_truncates() -> None:
    value = orjson.dumps({**POS, "card_token": "4111111111111111", "note": "x" * 10_000})
    rejected = DECODER.decode(b"M0001", value)
    assert isinstance(rejected, Rejected)
    letter = dead_letter(RecordRef("pos.transactions.v1", 2, 41, b"M0001"), value, rejected)
    assert "4111111111111111" not in letter.payload
    assert "4111111111111111" not in letter.error
    assert "################" in letter.payload
    assert len(letter.payload) <= 512
    assert (letter.partition, letter.offset, letter.reason) == (2, 41, "validation")
