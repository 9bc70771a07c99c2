"""State after outputs: table writes are held until what they imply is durable.

A crash may come at any moment. If a merchant's state reached its changelog (or the local
RocksDB store) before the warehouse rows, alerts, limits and tasks that the same events caused,
a restarted worker would restore a state that says "done" for outputs that never arrived: the
re-delivered events look like duplicates and nothing writes the missing rows again.

So every table write of the worker is *staged* here instead of going to the Faust table at once,
and the flush timer's state write (every ``MONITOR_STATE_WRITE_INTERVAL_S``; the ticks in
between publish outputs only) makes them durable in this order (``streams/app.py``):

1. ``take()``: the writes staged so far, with the events behind them taken at the same moment;
2. the outboxes are published and the warehouse sink is flushed (it retries until written);
3. the producer is flushed, so the published records are on the broker (a record it could
   not deliver stops the worker here, before any state says it was written: streams/outbound.py);
4. ``commit(taken)``: the staged writes go to the Faust tables (changelog records);
5. the events are acknowledged, and Faust commits their offsets after flushing the producer
   again, so the changelog records are durable before the offsets.

A crash before step 4 leaves the tables as they were before the events: they are re-delivered
and processed again, and their outputs are written again with the same keys (the warehouse
tables replace rows by key and version; alerts, limits and tasks carry deterministic ids). A
crash after step 4 re-delivers events that the state already holds: duplicates, counted once,
whose outputs are already written.

Reads go through the staged values first, so the stages see their own latest state.

At a rebalance Faust waits, as usual, until every event handed to the worker is acknowledged
(the flush timer does it), so a partition's next owner starts from a consistent point. At a
stop it does not wait (``install_stop_without_waiting``): the timers have stopped by then, and
what is not acknowledged is read again at the next start.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from faust.streams import _current_event
from faust.transport.consumer import Consumer

from streams.processor import in_partition

#: Table writes committed between two yields to the event loop (12-32 µs each, as measured).
COMMIT_YIELD_EVERY = 256
#: (table, key) -> (partition, value)
Writes = dict[tuple[str, bytes], tuple[int, bytes]]


class StagedWrites:
    """The staged writes of every table of one worker, committed together."""

    def __init__(self) -> None:
        self.tables: dict[str, Any] = {}
        #: Staged since the last ``take()``.
        self._pending: Writes = {}
        #: Taken by the flush timer, not committed yet (still read from).
        self._taken: Writes = {}
        self.committed = 0

    def wrap(self, table: Any) -> StagedTable:
        self.tables[table.name] = table
        return StagedTable(table, self)

    def stage(self, table: Any, key: bytes, value: bytes) -> None:
        self._pending[(table.name, key)] = (_current_partition(table.name), value)

    def lookup(self, table: Any, key: bytes) -> tuple[bool, bytes | None]:
        entry = self._pending.get((table.name, key)) or self._taken.get((table.name, key))
        if entry is None:
            return False, None
        return True, entry[1]

    def staged_items(self, table: Any) -> Iterator[tuple[bytes, bytes]]:
        name = table.name
        merged = {k: v for (t, k), (_, v) in self._taken.items() if t == name}
        merged.update({k: v for (t, k), (_, v) in self._pending.items() if t == name})
        return iter(merged.items())

    def take(self) -> Writes:
        """The writes staged so far; they stay readable until ``commit`` of them."""
        taken, self._pending = self._pending, {}
        self._taken.update(taken)
        return taken

    async def commit(self, taken: Writes, yield_every: int = COMMIT_YIELD_EVERY) -> int:
        """Write the taken values to their tables (their changelog records go out now).

        Writes of partitions revoked since ``take`` are skipped. Each write is checked and made
        with no yield in between, so no revocation runs between the check and its write; the
        event loop gets a turn every ``yield_every`` writes (a state write holds thousands, and
        the limit API answers on the same loop), where a revocation may drop the rest.
        """
        written = 0
        for n, (entry, (partition, value)) in enumerate(taken.items(), 1):
            if not n % yield_every:
                await asyncio.sleep(0)
            if self._taken.get(entry) != (partition, value):
                continue  # forgotten since (its partition was revoked)
            del self._taken[entry]
            name, key = entry
            with in_partition(partition):
                self.tables[name][key] = value
            written += 1
        self.committed += written
        return written

    def forget(
        self,
        partitions: set[int],
        queues_table: str = "",
        queue_partitions: frozenset[int] | set[int] = frozenset(),
    ) -> None:
        """Drop staged writes of partitions this worker no longer owns.

        ``partitions`` are those of the merchant-keyed tables (co-partitioned with the inputs);
        the table ``queues_table`` is keyed by manager, on the partitions of its own topic.
        Their events are unacknowledged, so the partitions' new owner processes them again
        from the committed state.
        """
        for writes in (self._pending, self._taken):
            lost = [
                k
                for k, (p, _) in writes.items()
                if p in (queue_partitions if k[0] == queues_table else partitions)
            ]
            for key in lost:
                del writes[key]

    @property
    def staged(self) -> int:
        return len(self._pending) + len(self._taken)


class StagedTable:
    """A Faust table whose writes are staged (``StagedWrites``); everything else is the table's.

    Supports what the stages use: ``get``, ``[]``, ``in``, ``[]=`` and ``items``.
    """

    def __init__(self, table: Any, staged: StagedWrites) -> None:
        self._table = table
        self._staged = staged

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def get(self, key: bytes, default: Any = None) -> Any:
        found, value = self._staged.lookup(self._table, key)
        if found:
            return value
        return self._table.get(key, default)

    def __getitem__(self, key: bytes) -> Any:
        found, value = self._staged.lookup(self._table, key)
        if found:
            return value
        return self._table[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, bytes) and self._staged.lookup(self._table, key)[0]:
            return True
        return key in self._table

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._staged.stage(self._table, key, value)

    def items(self) -> Iterator[tuple[bytes, Any]]:
        staged = dict(self._staged.staged_items(self._table))
        for key, value in self._table.items():
            yield key, staged.pop(key, value)
        yield from staged.items()

    def on_recover(self, callback: Callable[..., Any]) -> Any:
        return self._table.on_recover(callback)


def _current_partition(table_name: str) -> int:
    """The partition a write lands on: that of the event being processed (Faust's rule)."""
    ref = _current_event.get(None)
    event = ref() if isinstance(ref, weakref.ref) else None
    if event is None:
        raise RuntimeError(f"cannot modify table {table_name!r} outside of agent/stream")
    return int(event.message.partition)


_ORIGINAL_WAIT_EMPTY = Consumer.wait_empty


async def _wait_empty_unless_stopping(self: Consumer) -> None:
    """``Consumer.wait_empty``, except that a stopping worker leaves unacknowledged events
    unacknowledged instead of waiting for them forever (nothing acknowledges them any more: the
    flush timer has stopped). Their offsets do not commit; the next start reads them again."""
    if self.app.should_stop:
        unacked = self._unacked_messages
        for message in list(unacked):
            unacked.discard(message)
    await _ORIGINAL_WAIT_EMPTY(self)


def install_stop_without_waiting() -> None:
    """Patch Faust's consumer (idempotent): see ``_wait_empty_unless_stopping``."""
    Consumer.wait_empty = _wait_empty_unless_stopping  # type: ignore[method-assign]
