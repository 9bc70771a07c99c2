"""Turns batches of raw Faust events into feature state, warehouse rows and dead letters."""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import weakref
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from types import SimpleNamespace
from typing import Any

import faust
from faust.streams import _current_event  # Faust keeps "the event being processed" here
from faust.types import TP, EventT, Message

from detectors.features import (
    BusinessCalendar,
    DaySnapshot,
    FeatureParams,
    MerchantState,
    PartitionClock,
    StepStatus,
    close_through,
    day_totals,
    decode_ids,
    decode_state,
    encode_ids,
    encode_state,
    forget_id,
    step,
)
from schemas import topics
from schemas.inputs import (
    AccountTransaction,
    LoanEvent,
    MerchantProfile,
    OutreachOutcome,
    PosTransaction,
)
from streams.alignment import PartitionAlignment
from streams.codec import Decoder, RecordRef, Rejected, dead_letter, encode
from streams.sink import WarehouseSink

log = logging.getLogger(__name__)

INPUT_TOPICS = (topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS)
DECODERS: dict[str, Decoder[Any]] = {
    topics.POS_TRANSACTIONS: Decoder(PosTransaction),
    topics.ACCOUNT_TRANSACTIONS: Decoder(AccountTransaction),
    topics.MERCHANT_PROFILES: Decoder(MerchantProfile),
    topics.LOAN_EVENTS: Decoder(LoanEvent),
    topics.OUTREACH_OUTCOMES: Decoder(OutreachOutcome),
}
Item = tuple[Message, PosTransaction | AccountTransaction]
Acker = Callable[[list[Message]], None]
SnapshotHandler = Callable[[int, list[DaySnapshot]], None]
_event_s = itemgetter(0)
#: Merchants applied or closed between two yields to the event loop: a partition's day close
#: runs the detectors for every merchant (about 0.1-0.2 ms each), and the limit API and
#: Faust's own tasks answer on the same loop. ``lock`` keeps the processor's other work out.
YIELD_EVERY = 32
#: Records decoded between two yields to the event loop.
DECODE_YIELD_EVERY = 500
#: Head of a merchant-state table value: the partition, then per input topic (in
#: ``INPUT_TOPICS`` order) the offset through which every event of this merchant on that input
#: is in the state (-1: none recorded). The encoded feature state follows.
_VALUE_HEAD = struct.Struct(">Hqq")
Marks = tuple[int, int]
NO_MARKS: Marks = (-1, -1)


def state_value(partition: int, state: bytes, marks: Marks = NO_MARKS) -> bytes:
    """A merchant-state table value (``_VALUE_HEAD``, then the encoded state)."""
    return _VALUE_HEAD.pack(partition, *marks) + state


def split_state_value(value: bytes) -> tuple[int, Marks, bytes]:
    """Partition, marks and encoded state of a merchant-state table value."""
    partition, pos, account = _VALUE_HEAD.unpack_from(value)
    return partition, (pos, account), value[_VALUE_HEAD.size :]


#: Head of a merchant-txn-ids table value: the marks of the state it was written with.
_IDS_HEAD = struct.Struct(">qq")


def ids_value(marks: Marks, ids: bytes) -> bytes:
    """A merchant-txn-ids table value (``_IDS_HEAD``, then ``encode_ids``)."""
    return _IDS_HEAD.pack(*marks) + ids


def split_ids_value(value: bytes) -> tuple[Marks, bytes]:
    """Marks and encoded ids of a merchant-txn-ids table value."""
    pos, account = _IDS_HEAD.unpack_from(value)
    return (pos, account), value[_IDS_HEAD.size :]


@dataclass
class Counters:
    """What the worker has seen since it started (exported to pipeline metrics)."""

    events: int = 0
    applied: int = 0
    duplicates: int = 0
    days_closed: int = 0
    #: Source events of days a bootstrap covers (``skip_before_s``): counted by the backfill.
    skipped_backfilled: int = 0
    #: Re-delivered events that their merchant's written state already holds (its marks).
    skipped_redelivered: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)


def daily_row(snapshot_merchant: str, day: int, totals: Any, closed: bool) -> dict[str, Any]:
    """A ``merchant_daily`` row; the version orders updates, and a closed day's row wins."""
    return {
        "merchant_id": snapshot_merchant,
        "day": BusinessCalendar.date_of_day(day),
        **totals._asdict(),
        "version": totals.event_count * 2 + (1 if closed else 0),
    }


def _ids_mark(state: MerchantState) -> tuple[int, int]:
    """Changes whenever the remembered ids do: an admitted id is appended last, and ids are
    only ever dropped (oldest first, or by day at a close), which shortens the set."""
    seen = state.seen
    return len(seen), next(reversed(seen)) if seen else -1


class BatchProcessor:
    """Applies batches merchant by merchant and closes business days per partition.

    The table value of a merchant (``state_value``) starts with its partition number, so that
    after a restart every merchant of a partition can be found and its silent days closed, and
    with its *marks*: per input, the offset through which every event of this merchant is in
    the state. A re-delivered event at or below its merchant's mark is skipped: the marks are
    written in the same record as the state they describe, so a crash anywhere, even between
    two records of one flush, cannot separate them (docs/reliability.md). The encoded feature
    state follows. The state's remembered transaction ids (the de-duplication set of its open
    days, the largest part of a busy merchant's state) go to a table of their own, ``ids``,
    written only when they changed. Decoded states are cached (bounded) between batches.
    """

    def __init__(
        self,
        app: faust.App,
        table: faust.Table,
        ids: faust.Table,
        sink: WarehouseSink,
        dead_letters: faust.TopicT,
        params: FeatureParams,
        *,
        max_skew_s: int,
        align_idle_s: float,
        idle_s: float,
        max_future_s: float,
        cache_size: int,
        max_pending: int = 1_000_000,
        wall_clock: Callable[[], float] = time.time,
        ack: Acker | None = None,
    ) -> None:
        self.app = app
        self.table = table
        self.ids = ids
        self.sink = sink
        sink.before_flush.append(self._buffer_open_days)
        self.dead_letters = dead_letters
        self.params = params
        self.max_skew_s = max_skew_s
        self.align_idle_s = align_idle_s
        self.idle_s = idle_s
        self.max_future_s = max_future_s
        self.cache_size = cache_size
        self.max_pending = max_pending
        self.wall_clock = wall_clock
        self.counters = Counters()
        self.snapshot_handlers: list[SnapshotHandler] = []
        #: Set by a bootstrap (streams/bootstrap.py): events before this instant are skipped.
        self.skip_before_s: float | None = None
        self._cache: dict[bytes, MerchantState] = {}
        #: Cached merchant -> its marks (``state_value``) as of the cached state.
        self._marks: dict[bytes, Marks] = {}
        #: Cached merchant -> the marks of its ids record, where they are ahead of its state's
        #: (a crash landed the ids of a flush but not the state): see ``_load``.
        self._ids_ahead: dict[bytes, Marks] = {}
        #: Cached merchant -> the fingerprint of its ids as last written (``_ids_mark``).
        self._ids_written: dict[bytes, tuple[int, int] | None] = {}
        self._members: dict[int, set[bytes]] = {}
        self._indexed: set[int] = set()
        self._clocks: dict[int, PartitionClock] = {}
        self._align: dict[int, PartitionAlignment] = {}
        self._pending: dict[int, list[tuple[float, int, Message, Any]]] = {}
        #: partition -> merchant -> events applied since its state was last written (unacked).
        self._dirty: dict[int, dict[bytes, list[Item]]] = {}
        #: partition -> merchant -> open days changed since the sink's last flush (their rows
        #: are built once per flush, not once per batch: ``_buffer_open_days``).
        self._open_days: dict[int, dict[bytes, set[int]]] = {}
        self._seq = 0
        #: Acknowledges records on the consumer (``Consumer.ack``, set by streams/app.py).
        self.ack = ack
        #: Events done (state written, or refused) whose rows may still wait in the sink: they
        #: are acknowledged only after the flush that writes them (``take_done`` and
        #: ``acknowledge``), so a crash before the warehouse has their rows re-delivers them.
        self._to_ack: list[Message] = []
        #: partition -> (merchant, input index) -> offsets held, not applied yet, in the order
        #: they were handed over: a merchant's marks stay below the first.
        self._open: dict[int, dict[tuple[bytes, int], dict[int, None]]] = {}
        #: (input index, partition) -> highest offset handed over and placed (held or done).
        self._handed: dict[tuple[int, int], int] = {}
        #: Held by a batch, a timer tick, a state write and a revocation (``forget``) for their
        #: whole length: a batch awaits (a dead letter's send) in the middle of applying the
        #: events it released, and a tick or a revocation in between would apply newer events
        #: or close days under it, or drop its partition's bookkeeping while it goes on.
        self.lock = asyncio.Lock()

    # -- per batch -------------------------------------------------------------------------

    async def process(self, events: Sequence[Message]) -> None:
        """Validate a batch of records, hold back what runs ahead, apply and acknowledge the
        rest."""
        async with self.lock:
            await self._process(events)
        await self.sink.maybe_flush()  # may wait out a warehouse outage: not under the lock

    async def _process(self, events: Sequence[Message]) -> None:
        wall = self.wall_clock()
        horizon = wall + self.max_future_s
        skip_before = self.skip_before_s
        partitions: set[int] = set()
        handed, opened = self._handed, self._open
        for n, message in enumerate(events, 1):
            if not n % DECODE_YIELD_EVERY:
                await asyncio.sleep(0)  # a whole fetch must not hold the event loop (the API)
            input_tp = (_INPUT_INDEX[message.topic], message.partition)
            decoded = DECODERS[message.topic].decode(message.key, message.value)
            if isinstance(decoded, Rejected):
                await self._dead_letter(message, decoded)
                self._to_ack.append(message)
                _hand(handed, input_tp, message.offset)
                continue
            event_s = decoded.event_time.timestamp()
            if event_s > horizon:
                error = f"event time {decoded.event_time.isoformat()} is in the future"
                await self._dead_letter(message, Rejected("future", error))
                self._to_ack.append(message)
                _hand(handed, input_tp, message.offset)
                continue
            self._alignment(message.partition).observe(
                message.topic, int(event_s), message.offset, wall
            )
            if skip_before is not None and event_s < skip_before:
                # Its business day is one the bootstrap's backfill counted (docs/backfill.md):
                # applying it again would count it twice. It still moves the watermark.
                self.counters.skipped_backfilled += 1
                self._to_ack.append(message)
                _hand(handed, input_tp, message.offset)
                continue
            self._seq += 1
            self._pending.setdefault(message.partition, []).append(
                (event_s, self._seq, message, decoded)
            )
            held = opened.setdefault(message.partition, {})
            held.setdefault((message.key, input_tp[0]), {})[message.offset] = None
            _hand(handed, input_tp, message.offset)
            partitions.add(message.partition)
        self.counters.events += len(events)
        for partition in partitions:
            await self._release(partition, wall)

    def take_done(self) -> list[Message]:
        """Events done so far; acknowledge them once the flush after this call succeeded."""
        done, self._to_ack = self._to_ack, []
        return done

    async def acknowledge(self, events: list[Message]) -> None:
        """Acknowledge events whose rows, alerts, tasks and limits are written."""
        if self.ack is not None and events:
            self.ack(events)

    async def release(self) -> None:
        """Timer work: release held events and close days of partitions that went idle."""
        async with self.lock:
            await self._release_all()

    async def tick(self) -> None:
        """``release``, then write every changed state (the events behind them are acknowledged
        after the flush that follows)."""
        async with self.lock:
            await self._release_all()
            await self._write_states()

    async def _release_all(self) -> None:
        wall = self.wall_clock()
        for partition in list(self._align):
            await self._release(partition, wall)

    async def write_states(self) -> None:
        """Write every changed state; the events behind them are acknowledged after the flush.

        The flush that follows (``streams/app.py``) makes these writes durable together with
        the detector and action states of the days they closed, so a restart never sees a
        day's detector update without the feature state that closed it.
        """
        async with self.lock:
            await self._write_states()

    async def _write_states(self) -> None:
        for partition in list(self._dirty):
            await self._flush(partition)

    async def _release(self, partition: int, wall: float) -> None:
        """Apply, in event-time order, the held events that no busy input can precede."""
        align = self._alignment(partition)
        waiting = {topic: self._waiting(topic, partition) for topic in INPUT_TOPICS}
        watermark = align.watermark_s(wall, waiting)
        pending = self._pending.get(partition, [])
        # Inputs may disagree by up to max_skew_s (well inside the lateness); beyond that an
        # event waits, unacknowledged, so a crash re-delivers it instead of losing it.
        bound = None if watermark is None else watermark + self.max_skew_s
        if align.all_idle(wall, waiting):
            bound = float("inf")
        # Sorting is cheap here: the held events are sorted runs (what was held back last time,
        # and each input's new records in log order); the seq number breaks ties.
        pending.sort()
        n = max(len(pending) - self.max_pending, 0)
        if bound is not None:
            n = max(n, bisect_right(pending, bound, key=_event_s))
        ready = pending[:n]
        del pending[:n]
        if ready:
            clock = self._clock(partition)
            if clock.max_event_s < 0:
                # The first observation tells the clock where the partition's history starts:
                # the earliest event, not the watermark after a (possibly large) first batch,
                # so that every day from there on closes for silent merchants too.
                clock.observe_epoch_seconds(int(ready[0][0]))
            by_merchant: dict[bytes, list[Item]] = {}
            for _, _, event, decoded in ready:
                by_merchant.setdefault(event.key, []).append((event, decoded))
            for n, (key, items) in enumerate(by_merchant.items(), 1):
                await self._apply(key, items)
                if not n % YIELD_EVERY:
                    await asyncio.sleep(0)
        await self._advance(partition, wall, watermark)

    # -- merchants ---------------------------------------------------------------------------

    async def _apply(self, key: bytes, items: list[Item]) -> None:
        partition = items[-1][0].partition
        opened = self._open.get(partition, {})
        for event, _ in items:  # whatever happens below, none of them stays held
            held = (key, _INPUT_INDEX[event.topic])
            offsets = opened.get(held)
            if offsets is not None:
                offsets.pop(event.offset, None)
                if not offsets:
                    del opened[held]
        emitted_through = -1  # days the detectors have: a revert keeps them closed
        try:
            state = self._load(key)
            if state is not None:
                emitted_through = state.closed_through
            marks = self._marks.get(key, NO_MARKS)
            ahead = self._ids_ahead.get(key)
            touched: set[int] = set()
            closed: list[DaySnapshot] = []
            kept: list[Item] = []  # applied or duplicate: acknowledged once the state is written
            late: list[tuple[Message, str]] = []  # unchanged state: acknowledged at once
            skipped: list[Message] = []  # the written state holds them: acknowledged at once
            for event, decoded in items:
                if event.offset <= marks[_INPUT_INDEX[event.topic]]:
                    # Re-delivered after a crash, and already in this merchant's state: its
                    # day may have closed since, and its id been forgotten.
                    skipped.append(event)
                    continue
                if ahead is not None and state is not None:
                    _forget_own_id(state, event, decoded, marks, ahead)
                state, result = step(state, decoded, self.params)
                if result.status is StepStatus.APPLIED:
                    touched.add(result.day)
                elif result.status is StepStatus.DUPLICATE:
                    self.counters.duplicates += 1
                else:
                    late.append((event, f"{result.reason}: {decoded.event_time.isoformat()}"))
                    continue
                kept.append((event, decoded))
                closed.extend(result.closed)
        except Exception as exc:
            # A bug must not stop the pipeline nor lose events: this merchant's events of the
            # batch are dead-lettered for replay after a fix, and its state goes back to what
            # it was before the batch.
            log.exception("processing merchant %r failed; dead-lettering its batch", key)
            await self._revert(key, partition, emitted_through)
            for event, _ in items:
                await self._dead_letter(event, Rejected("internal_error", repr(exc)))
                self._to_ack.append(event)
            return
        self.counters.skipped_redelivered += len(skipped)
        self._to_ack.extend(skipped)
        if state is None or len(skipped) == len(items):
            return  # nothing changed
        self._members.setdefault(partition, set()).add(key)
        await self._keep(key, state, partition, kept)
        self.counters.applied += len(items) - len(late) - len(skipped)
        if touched:
            self._open_days.setdefault(partition, {}).setdefault(key, set()).update(touched)
        if closed:
            self._emit(partition, closed)
        for event, reason in late:
            await self._dead_letter(event, Rejected("late", reason))
            self._to_ack.append(event)

    def _buffer_open_days(self) -> None:
        """The ``merchant_daily`` rows of the open days changed since the last flush, from the
        merchants' current states (a day closed since has its closed row already)."""
        open_days, self._open_days = self._open_days, {}
        for merchants in open_days.values():
            for key, days in merchants.items():
                state = self._load(key)
                if state is None:
                    continue
                merchant_id = state.merchant_id
                for day in days:
                    if day > state.closed_through:
                        row = daily_row(merchant_id, day, day_totals(state, day), closed=False)
                        self.sink.add("merchant_daily", (merchant_id, day), row)

    def _load(self, key: bytes) -> MerchantState | None:
        state = self._cache.get(key)
        if state is None:
            raw = self.table.get(key)
            if raw is not None:
                _, self._marks[key], encoded = split_state_value(raw)
                state = decode_state(encoded)
                ids = self.ids.get(key)
                if ids is not None:
                    ids_marks, ids = split_ids_value(ids)
                    decode_ids(ids, state)
                    if any(i > s for i, s in zip(ids_marks, self._marks[key], strict=True)):
                        # The ids are of a later flush than the state: they hold the ids of
                        # events the state does not, which will be re-delivered.
                        self._ids_ahead[key] = ids_marks
                # Without a row of its own (a bootstrap seeds the ids inside the state), the
                # ids are written at the next flush.
                self._ids_written[key] = _ids_mark(state) if ids is not None else None
        return state

    async def _keep(
        self, key: bytes, state: MerchantState, partition: int, items: Sequence[Item] = ()
    ) -> None:
        """Cache a changed state; it is written to the table, and the events that changed it
        are acknowledged, at the next timer tick or shutdown (``write_states``) or on eviction."""
        if key not in self._cache and len(self._cache) >= self.cache_size:
            oldest = next(iter(self._cache))
            owner = next((p for p, dirty in self._dirty.items() if oldest in dirty), None)
            if owner is not None:
                await self._flush(owner)
            self._cache.pop(oldest, None)
            self._ids_written.pop(oldest, None)
            self._marks.pop(oldest, None)
            self._ids_ahead.pop(oldest, None)
        self._cache[key] = state
        self._dirty.setdefault(partition, {}).setdefault(key, []).extend(items)

    async def _flush(self, partition: int) -> None:
        """Write the partition's changed states, then acknowledge the events behind them.

        One write per merchant and flush instead of one per batch: every write is an encoded
        state and a changelog record. Unacknowledged events are re-read after a crash, and the
        table holds the state before them, so nothing is lost or counted twice.
        """
        dirty = self._dirty.pop(partition, None)
        if not dirty:
            return
        written = self._ids_written
        opened = self._open.get(partition, {})
        handed = [self._handed.get((i, partition), -1) for i in range(len(INPUT_TOPICS))]
        with in_partition(partition):
            for n, key in enumerate(dirty, 1):
                if not n % YIELD_EVERY:
                    await asyncio.sleep(0)
                state = self._cache[key]
                marks = self._marks[key] = self._marks_of(key, opened, handed)
                self.table[key] = state_value(partition, encode_state(state, ids=False), marks)
                ahead = self._ids_ahead.get(key)
                if ahead is not None:
                    if all(m >= a for m, a in zip(marks, ahead, strict=True)):
                        del self._ids_ahead[key]
                    else:  # events the ids record covers are still to be applied again
                        marks = (max(marks[0], ahead[0]), max(marks[1], ahead[1]))
                mark = _ids_mark(state)
                if written.get(key) != mark:
                    self.ids[key] = ids_value(marks, encode_ids(state))
                    written[key] = mark
        for items in dirty.values():
            for event, _ in items:
                self._to_ack.append(event)

    def _marks_of(
        self, key: bytes, opened: dict[tuple[bytes, int], dict[int, None]], handed: list[int]
    ) -> Marks:
        """Per input, the offset through which every event of ``key`` handed over is applied
        or refused: just below its first held event, or else the last offset handed over.
        Never lower than before (a re-delivered event below the old mark is skipped)."""
        old = self._marks.get(key, NO_MARKS)
        marks = []
        for i, last in enumerate(handed):
            held = opened.get((key, i))
            through = next(iter(held)) - 1 if held else last
            marks.append(max(through, old[i]))
        return marks[0], marks[1]

    async def _revert(self, key: bytes, partition: int, emitted_through: int) -> None:
        """After a failed batch: the merchant's state as written, plus the events applied since
        (unacknowledged yet) and the days closed since; if those fail again too, the events are
        dead-lettered as well."""
        self._cache.pop(key, None)
        self._ids_written.pop(key, None)
        self._marks.pop(key, None)
        self._ids_ahead.pop(key, None)
        dirty = self._dirty.get(partition, {})
        if key not in dirty:
            return
        applied = dirty.pop(key)
        try:
            state = self._load(key)
            marks, ahead = self._marks.get(key, NO_MARKS), self._ids_ahead.get(key)
            for event, decoded in applied:
                if ahead is not None and state is not None:
                    _forget_own_id(state, event, decoded, marks, ahead)
                state, _ = step(state, decoded, self.params)
            if state is not None and state.closed_through < emitted_through:
                # Closed since the state was written: the detectors have those days.
                state, _ = close_through(state, emitted_through, self.params)
        except Exception as exc:
            log.exception("re-applying merchant %r failed; dead-lettering its events", key)
            for event, _ in applied:
                await self._dead_letter(event, Rejected("internal_error", repr(exc)))
                self._to_ack.append(event)
            return
        if state is not None:
            await self._keep(key, state, partition, applied)

    # -- business days -------------------------------------------------------------------------

    async def _advance(self, partition: int, wall: float, watermark: int | None) -> None:
        align = self._alignment(partition)
        clock = self._clock(partition)
        if watermark is not None:
            last_wall = max(
                (p.last_wall_s for p in align.inputs.values() if p.last_wall_s is not None),
                default=None,
            )
            clock.observe_epoch_seconds(watermark, last_wall)
        days = clock.closable_days(wall)
        if len(days) == 0:
            return
        self._index(partition)
        through = clock.closed_through_day
        n = 0
        for key in list(self._members.get(partition, ())):
            state = self._load(key)
            if state is None or state.closed_through >= through:
                continue
            state, snapshots = close_through(state, through, self.params)
            await self._keep(key, state, partition)
            self._emit(partition, snapshots)
            n += 1
            if not n % YIELD_EVERY:
                await asyncio.sleep(0)

    def _clock(self, partition: int) -> PartitionClock:
        clock = self._clocks.get(partition)
        if clock is None:
            clock = self._clocks[partition] = PartitionClock(self.params, self.idle_s)
        return clock

    def _emit(self, partition: int, snapshots: list[DaySnapshot]) -> None:
        if not snapshots:
            return
        self.counters.days_closed += len(snapshots)
        for snap in snapshots:
            row = daily_row(snap.merchant_id, snap.day, snap.totals, closed=True)
            self.sink.add("merchant_daily", (snap.merchant_id, snap.day), row)
        for handler in self.snapshot_handlers:
            handler(partition, snapshots)

    def _index(self, partition: int) -> None:
        """After a (re)assignment, find every merchant of the partition once, from the table."""
        if partition in self._indexed:
            return
        members = self._members.setdefault(partition, set())
        prefix = partition.to_bytes(2, "big")
        for key, value in self.table.items():
            if value is not None and value[:2] == prefix:
                members.add(key)
        self._indexed.add(partition)

    def forget(self, partitions: set[int]) -> None:
        """Drop what is kept for partitions this worker no longer owns (with ``lock`` held)."""
        for partition in partitions:
            for key in self._members.pop(partition, set()):
                self._cache.pop(key, None)
                self._ids_written.pop(key, None)
                self._marks.pop(key, None)
                self._ids_ahead.pop(key, None)
            self._indexed.discard(partition)
            self._clocks.pop(partition, None)
            self._align.pop(partition, None)
            # Held events of a revoked partition are unacknowledged: its new owner reads them,
            # and so are applied events whose state was not written yet (dropped with it).
            self._pending.pop(partition, None)
            self._dirty.pop(partition, None)
            self._open_days.pop(partition, None)
            self._open.pop(partition, None)
            for input_tp in [tp for tp in self._handed if tp[1] == partition]:
                del self._handed[input_tp]
        # Done events of a revoked partition whose state write is dropped (streams/durability.py
        # forgets it too) must not be acknowledged: the new owner processes them again.
        self._to_ack = [
            done
            for done in self._to_ack
            if getattr(done, "message", done).partition not in partitions
        ]

    # -- consumption ---------------------------------------------------------------------------

    def _alignment(self, partition: int) -> PartitionAlignment:
        align = self._align.get(partition)
        if align is None:
            align = self._align[partition] = PartitionAlignment(
                INPUT_TOPICS, self.max_skew_s, self.align_idle_s, self.wall_clock()
            )
        return align

    def lag_by_partition(self) -> dict[int, int]:
        """Records the broker holds beyond what was read, per partition, over both inputs."""
        lag: dict[int, int] = {}
        for partition in self._align:
            for topic in INPUT_TOPICS:
                waiting = self._waiting(topic, partition)
                if waiting is not None:
                    lag[partition] = lag.get(partition, 0) + waiting
        return lag

    def decode_reference(self, event: EventT[Any]) -> Any:
        """A profile or loan event, a Rejected to dead-letter, or None for a tombstone.

        A compacted profile topic deletes a merchant with a null value: nothing to validate.
        """
        message = event.message
        if message.value is None and message.topic == topics.MERCHANT_PROFILES:
            return None
        decoded = DECODERS[message.topic].decode(message.key, message.value)
        if isinstance(decoded, Rejected):
            return decoded
        when = decoded.updated_at if isinstance(decoded, MerchantProfile) else decoded.event_time
        if when.timestamp() > self.wall_clock() + self.max_future_s:
            return Rejected("future", f"time {when.isoformat()} is in the future")
        return decoded

    def _waiting(self, topic: str, partition: int) -> int | None:
        """Records of an input the broker holds beyond the consumer's position, as of the last
        fetch; None if unknown.

        The position is the furthest of what this process was handed and Faust's read offset
        (the last offset read, or the committed offset the partition was sought to when it was
        assigned). What was handed over alone is not enough: after a restart, an input with
        nothing left to read hands over nothing, and its log-end offset would say forever that
        records wait, holding the other input of the partition back (found by `make chaos`).
        Right after a seek the read offset is the next offset to read, so one record may wait
        uncounted until the next fetch hands it over.
        """
        tp = TP(topic, partition)
        try:
            consumer = self.app.consumer
            highwater = consumer.highwater(tp)
            read = consumer._read_offset.get(tp)  # Faust's own bookkeeping, as streams/intake.py
        except Exception:
            return None
        if not isinstance(highwater, int) or highwater < 0:
            return None
        align = self._align.get(partition)
        position = align.inputs[topic].next_offset if align is not None else 0
        if isinstance(read, int):
            position = max(position, read + 1)
        return max(highwater - position, 0)

    async def dead_letter(self, event: EventT[Any], rejected: Rejected) -> None:
        """Send a refused record to the dead-letter topic and table, with the reason."""
        await self._dead_letter(event.message, rejected)

    async def _dead_letter(self, message: Message, rejected: Rejected) -> None:
        ref = RecordRef(message.topic, message.partition, message.offset, message.key)
        letter = dead_letter(ref, message.value, rejected)
        self.counters.dead_letters[rejected.reason] += 1
        await self.dead_letters.send(key=message.topic.encode(), value=encode(letter))
        self.sink.add(
            "dead_letters",
            (letter.source_topic, letter.partition, letter.offset),
            letter.model_dump(),
        )


_INPUT_INDEX = {topic: i for i, topic in enumerate(INPUT_TOPICS)}


def _forget_own_id(
    state: MerchantState, event: Message, decoded: Any, marks: Marks, ahead: Marks
) -> None:
    """Before a re-delivered event the state does not hold but its ids record does (their
    marks say so) is applied again: drop its id, which that event itself left there."""
    i = _INPUT_INDEX[event.topic]
    if marks[i] < event.offset <= ahead[i]:
        forget_id(state, decoded)


def _hand(handed: dict[tuple[int, int], int], input_tp: tuple[int, int], offset: int) -> None:
    if offset > handed.get(input_tp, -1):
        handed[input_tp] = offset


class _PartitionRef:
    """Stands in for "the current event" so a table write lands on a given partition."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(topic=topics.POS_TRANSACTIONS, partition=partition)


@contextmanager
def in_partition(partition: int) -> Iterator[None]:
    # Faust writes a table key's changelog (and RocksDB shard) to the partition of the event
    # being processed. We write from batches and timers, so we name the partition explicitly:
    # a merchant's state stays on its source partition, which keeps tables co-partitioned.
    ref = _PartitionRef(partition)
    token = _current_event.set(weakref.ref(ref))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)
