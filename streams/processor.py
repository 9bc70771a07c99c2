"""Turns a batch of raw Faust events into state updates, warehouse rows and dead letters."""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import faust
from faust.streams import _current_event  # Faust keeps "the event being processed" here
from faust.types import EventT

from detectors.daily import LateEventError, MerchantDays, daily_row, decode_days, encode_days
from schemas import topics
from schemas.inputs import AccountTransaction, PosTransaction
from streams.codec import Decoder, RecordRef, Rejected, dead_letter, encode
from streams.sink import WarehouseSink

log = logging.getLogger(__name__)

Item = tuple[EventT[Any], PosTransaction | AccountTransaction]

DECODERS: dict[str, Decoder[Any]] = {
    topics.POS_TRANSACTIONS: Decoder(PosTransaction),
    topics.ACCOUNT_TRANSACTIONS: Decoder(AccountTransaction),
}


@dataclass
class Counters:
    """What the worker has seen since it started (exported to pipeline metrics)."""

    events: int = 0
    applied: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)


class BatchProcessor:
    """Applies a batch of events, merchant by merchant, with one table write per merchant."""

    def __init__(
        self,
        table: faust.Table,
        sink: WarehouseSink,
        dead_letters: faust.TopicT,
        business_timezone: str,
        retention_days: int,
    ) -> None:
        self.table = table
        self.sink = sink
        self.dead_letters = dead_letters
        self.zone = ZoneInfo(business_timezone)
        self.retention_days = retention_days
        self.counters = Counters()

    async def process(self, events: Sequence[EventT[Any]]) -> None:
        by_merchant: dict[bytes, list[Item]] = {}
        for event in events:
            message = event.message
            decoded = DECODERS[message.topic].decode(message.key, message.value)
            if isinstance(decoded, Rejected):
                await self._dead_letter(event, decoded)
                continue
            by_merchant.setdefault(decoded.merchant_id.encode(), []).append((event, decoded))
        self.counters.events += len(events)
        for key, items in by_merchant.items():
            await self._apply(key, items)
        await self.sink.maybe_flush()

    async def _apply(self, key: bytes, items: list[Item]) -> None:
        try:
            state, touched, late = self._step(key, items)
        except Exception as exc:
            # A bug must not stop the pipeline or lose the events: this merchant's events of
            # the batch go to the dead-letter topic (for replay after a fix), its state is
            # left as it was, and every other merchant goes on.
            log.exception("processing merchant %r failed; dead-lettering its batch", key)
            for event, _ in items:
                await self._dead_letter(event, Rejected("internal_error", repr(exc)))
            return
        for event, error in late:
            await self._dead_letter(event, Rejected("late", error))
        self.counters.applied += len(items) - len(late)
        # The table writes its changelog to the partition of "the current event"; within a
        # batch we set it to this merchant's last event, so state stays on the source partition.
        _current_event.set(weakref.ref(items[-1][0]))
        try:
            self.table[key] = encode_days(state)
        finally:
            _current_event.set(None)
        merchant_id = key.decode()
        for day in touched:
            self.sink.add(
                "merchant_daily", (merchant_id, day), daily_row(merchant_id, day, state.totals(day))
            )

    def _step(
        self, key: bytes, items: list[Item]
    ) -> tuple[MerchantDays, set[date], list[tuple[EventT[Any], str]]]:
        """Pure part of a merchant's update: new state, touched days, refused late events."""
        raw = self.table.get(key)
        state = decode_days(raw) if raw is not None else MerchantDays()
        touched: set[date] = set()
        late: list[tuple[EventT[Any], str]] = []
        for event, decoded in items:
            try:
                touched.add(state.apply(decoded, self.zone, self.retention_days))
            except LateEventError as exc:
                late.append((event, str(exc)))
        return state, touched, late

    async def _dead_letter(self, event: EventT[Any], rejected: Rejected) -> None:
        message = event.message
        ref = RecordRef(message.topic, message.partition, message.offset, message.key)
        letter = dead_letter(ref, message.value, rejected)
        self.counters.dead_letters[rejected.reason] += 1
        await self.dead_letters.send(key=message.topic.encode(), value=encode(letter))
        self.sink.add(
            "dead_letters",
            (letter.source_topic, letter.partition, letter.offset),
            letter.model_dump(),
        )
