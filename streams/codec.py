"""Decoding raw topic records into validated contracts, and dead letters for those that fail."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from schemas.outputs import DeadLetter

M = TypeVar("M", bound=BaseModel)

#: Records larger than this are refused before parsing (a payload is a few hundred bytes).
MAX_RECORD_BYTES = 64 * 1024
_SNIPPET = 512
# Any run of 12-19 digits may be a card number: masked before a payload is kept anywhere.
_DIGIT_RUN = re.compile(r"\d{12,19}")


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a record was refused: a short machine reason and a readable error."""

    reason: str
    error: str


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where a record came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None


class Decoder(Generic[M]):
    """Validates the JSON value of one topic's records against its model.

    The record key must equal the payload's merchant id: a mismatch would put the merchant's
    events on two partitions and split its state, so such records are refused.
    """

    def __init__(self, model: type[M], key_field: str = "merchant_id") -> None:
        self.model = model
        self.key_field = key_field

    def decode(self, key: bytes | None, value: bytes | None) -> M | Rejected:
        if value is None:
            return Rejected("empty", "record has no value (tombstone?)")
        if len(value) > MAX_RECORD_BYTES:
            return Rejected("oversized", f"record of {len(value)} bytes > {MAX_RECORD_BYTES}")
        try:
            event = self.model.model_validate_json(value)
        except ValidationError as exc:
            kinds = {err["type"] for err in exc.errors()}
            reason = "invalid_json" if "json_invalid" in kinds else "validation"
            return Rejected(reason, _summarise(exc))
        if key is not None:
            expected = getattr(event, self.key_field)
            if key != expected.encode():
                return Rejected(
                    "key_mismatch",
                    f"record key {key[:64]!r} differs from {self.key_field} {expected!r}",
                )
        return event


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:10]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)[:4000]


def dead_letter(ref: RecordRef, value: bytes | None, rejected: Rejected) -> DeadLetter:
    """The dead letter for a refused record.

    The payload is cut to a short snippet, and digit runs that could be card numbers are masked.
    """
    snippet = (value or b"")[:_SNIPPET].decode("utf-8", errors="replace")
    snippet = _DIGIT_RUN.sub(lambda m: "#" * len(m.group()), snippet)
    key = (ref.key or b"")[:256].decode("utf-8", errors="replace")
    return DeadLetter(
        source_topic=ref.topic,
        partition=ref.partition,
        offset=ref.offset,
        key=key,
        reason=rejected.reason,
        error=rejected.error[:4000] or rejected.reason,
        payload=snippet,
        received_at=datetime.now(UTC),
    )


def encode(model: BaseModel) -> bytes:
    """JSON bytes of an output payload (datetimes in ISO 8601 with offset)."""
    return orjson.dumps(model.model_dump(mode="json"))
