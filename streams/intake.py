"""Batch intake: records of chosen topics go from Faust's fetcher to a consumer in whole fetches,
without Faust's per-event streams. The worker takes the two transaction topics this way
(``streams/app.py``); docs/worker.md has the measurements, docs/reliability.md the crash runs.

Faust hands every record to a stream one at a time: a task pair per record to wait on flow
control, an ``Event`` with a decoded key and value, a queue, the stream's iterator with its
context variable and sensors, and an acknowledgement through the event. For the two transaction
topics that machinery cost about as much CPU as all our processing. ``BatchIntake`` keeps
Faust's consumer (group membership, fetching, offsets, commits, rebalances and tables) and
replaces only the hand-over: the consumer's drain loop puts each fetch's records of the intake
topics on a bounded queue as one list, and the processor acknowledges records on the consumer
itself (``Consumer.ack``), which is what ``Event.ack`` ends in. Records of every other topic
still go to their agents record by record.

Semantics kept from the stream path (``faust.streams.Stream._c_aiter``):

- a record is tracked as unacknowledged (``Consumer.track_message``) when it is handed over, so
  offsets commit only up to the oldest unacknowledged record and a rebalance waits for it;
- records fetched under an earlier consumer generation, or while flow control is suspended (a
  rebalance), are skipped unacknowledged: their partition's next owner reads them;
- unlike the streams' buffers, the queue is NOT cleared when flow resumes. Faust resumes flow
  several times while a worker starts (table recovery) and clears every managed buffer each
  time (``FlowControlEvent.resume``), also after its seek to the committed offsets: records
  fetched after that seek and cleared by the resume that follows would never be handed over,
  although their read offsets had moved on, and the commit would stall behind them. (Found by
  reading Faust's code while looking for a chaos failure that turned out to have another cause;
  not seen to happen.) Instead, records handed over once in a generation are not handed over
  again (a seek back reads them again), by offset per partition;
- a full queue blocks the drain loop: back-pressure instead of unbounded buffering;
- a stopping worker does not wait for records it has not acknowledged (the patch of
  ``Consumer.wait_empty`` in ``streams/durability.py``, which covers every noack stream).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.types import TP, AppT, Message
from mode.utils.queues import FlowControlQueue

#: Attribute of the app naming its intake (the patched drain loop looks for it).
_ATTR = "_merchant_monitor_intake"


class BatchIntake:
    """Whole fetches of ``topic_names`` for one consumer of the records (see the module doc)."""

    def __init__(self, app: AppT, topic_names: Iterable[str], max_batches: int = 8) -> None:
        self.app = app
        self.topic_names = frozenset(topic_names)
        # Not cleared when flow resumes (see the module doc): stale records are filtered out
        # by generation and offset when they are taken instead.
        self._queue: FlowControlQueue[list[Message]] = FlowControlQueue(
            maxsize=max_batches, flow_control=app.flow_control, clear_on_resume=False
        )
        #: (topic, partition) -> last offset handed over in ``_generation``.
        self._handed: dict[tuple[str, int], int] = {}
        self._generation: int | None = None
        setattr(app, _ATTR, self)
        _install()

    async def put(self, records: list[Message]) -> None:
        await self.app.flow_control.acquire()
        await self._queue.put(records)

    async def batches(self, max_records: int) -> AsyncIterator[list[Message]]:
        """Lists of at most about ``max_records`` current records, tracked as unacknowledged."""
        queue = self._queue
        app = self.app
        while True:
            records = await queue.get()
            while queue.qsize() and len(records) < max_records:
                records = records + queue.get_nowait()
            consumer = app.consumer
            generation = app.consumer_generation_id
            if not app.flow_control.is_active():
                continue  # a rebalance is under way: the partitions' next owners read them
            if generation != self._generation:
                self._generation, self._handed = generation, {}
            current = self._new(records, generation)
            if not current:
                continue
            track = consumer.track_message
            for record in current:
                record.tracked = True
                track(record)
            yield current

    def _new(self, records: list[Message], generation: int) -> list[Message]:
        """Records of this generation not handed over before in it (a seek back, such as
        Faust's seek to the committed offsets at the end of recovery, reads some again)."""
        handed = self._handed
        current = []
        for record in records:
            if record.generation_id != generation:
                continue
            key = (record.topic, record.partition)
            if record.offset <= handed.get(key, -1):
                continue
            handed[key] = record.offset
            current.append(record)
        return current

    def waiting(self) -> bool:
        """Whether fetched records wait to be handed over."""
        return bool(self._queue.qsize())

    def ack(self, records: Iterable[Message]) -> None:
        """Acknowledge records handed over by :meth:`batches` (their offsets may commit)."""
        ack = self.app.consumer.ack
        for record in records:
            ack(record)


_ORIGINAL_DRAIN = Consumer._drain_messages


async def _drain_messages(self: Consumer, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
    """``Consumer._drain_messages`` with whole fetches of the intake topics handed over at once.

    The same loop as Faust's (faust-streaming 0.15), record for record, except that records of
    the intake's topics are collected and put on the intake's queue, in fetch order, before the
    next record of another topic and at the end of each fetch.
    """
    intake: BatchIntake | None = getattr(self.app, _ATTR, None)
    if intake is None:
        await _ORIGINAL_DRAIN(self, fetcher)
        return
    names = intake.topic_names
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = cast(AsyncIterator[tuple[TP, Message]], getmany(timeout=1.0))
            await self.sleep(0)
            if self.should_stop:
                continue
            batch: list[Message] = []
            async for tp, message in ait:
                offset = message.offset
                r_offset = get_read_offset(tp)
                if r_offset is not None and offset < r_offset:
                    continue  # already read (Faust drops these too)
                gap = offset - (r_offset or 0)
                if gap > 1 and r_offset and acks_enabled_for(message.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                if message.topic in names:
                    batch.append(message)
                else:
                    if batch:
                        await self.wait_first(intake.put(batch), self.suspend_flow.wait())
                        batch = []
                    await self.wait_first(callback(message), self.suspend_flow.wait())
                set_read_offset(tp, offset)
            if batch:
                await self.wait_first(intake.put(batch), self.suspend_flow.wait())
            unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


def _install() -> None:
    # Apps without an intake (tests, the benchmark baselines) run Faust's own code unchanged.
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
