"""Shared field types: identifiers, money in fen, UTC event times, and the model bases."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

#: Money is an exact integer number of fen (分, 1/100 CNY). Never a float: sums stay exact.
FEN_PER_CNY = 100

#: The largest amount a single transaction or balance may carry: 10 billion CNY, in fen.
MAX_AMOUNT_FEN = 10_000_000_000 * FEN_PER_CNY

#: Event times outside this range are rejected at the boundary (typos, epoch zero, year 9999).
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"

#: An identifier: 1 to 64 letters, digits and ``_ . : -``, starting with a letter or digit.
Identifier = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=64)]

#: A positive amount in fen.
AmountFen = Annotated[int, Field(gt=0, le=MAX_AMOUNT_FEN)]
#: A non-negative amount in fen (facilities, outstanding balances).
NonNegativeFen = Annotated[int, Field(ge=0, le=MAX_AMOUNT_FEN)]
#: A signed amount in fen (balances may be overdrawn).
SignedFen = Annotated[int, Field(ge=-MAX_AMOUNT_FEN, le=MAX_AMOUNT_FEN)]


def _to_utc(value: datetime) -> datetime:
    if not EARLIEST_EVENT_TIME <= value < LATEST_EVENT_TIME:
        msg = f"event time {value.isoformat()} is outside [2000-01-01, 2100-01-01)"
        raise ValueError(msg)
    return value.astimezone(UTC)


#: A timezone-aware instant, normalised to UTC. Naive times are rejected.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def _plausible_date(value: date) -> date:
    if not EARLIEST_EVENT_TIME.date() <= value < LATEST_EVENT_TIME.date():
        msg = f"date {value.isoformat()} is outside [2000-01-01, 2100-01-01)"
        raise ValueError(msg)
    return value


#: A calendar date between 2000 and 2100.
PlausibleDate = Annotated[date, AfterValidator(_plausible_date)]

_PAN_LIKE = re.compile(r"^\d{12,19}$")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _not_a_card_number(value: str) -> str:
    # A token that is 12-19 digits and passes the Luhn check is very likely a real card
    # number (PAN): refuse it so that no card number ever enters a topic, a table or a log.
    if _PAN_LIKE.match(value) and _luhn_ok(value):
        msg = "card_token looks like a card number (PAN); send the tokenised value"
        raise ValueError(msg)
    return value


#: An opaque card token from the tokenisation service: 8 to 64 URL-safe characters.
CardToken = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_\-]{8,64}$"),
    AfterValidator(_not_a_card_number),
]


class InputModel(BaseModel):
    """Base of every payload we consume.

    Unknown fields are ignored on purpose (tolerant reader): producers may add optional fields
    within a topic version without breaking the workers. Known fields are validated strictly.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


class OutputModel(BaseModel):
    """Base of every payload and row we produce: unknown fields are a programming error."""

    model_config = ConfigDict(extra="forbid", frozen=True)
