"""Buffered, idempotent warehouse writes: `add` per key, `flush` in batches, back-pressure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from streams.errors import WarehouseError

log = logging.getLogger(__name__)


class RowWriter(Protocol):
    def insert(self, table: str, rows: list[Mapping[str, Any]]) -> int: ...


#: Relative to the data directory: while this file exists, the worker's warehouse is "down".
OUTAGE_DRILL_FILE = Path("drills") / "warehouse-down"


class OutageDrill:
    """Wraps a writer: while the file ``switch`` exists, every insert fails as if the warehouse
    were down. Operators (and the outage test) use it to rehearse a warehouse outage on a live
    worker: rows must wait in the sink, consumption must slow to a stop when the buffer is
    full, and everything must arrive once the file is gone (docs/reliability.md)."""

    def __init__(self, writer: RowWriter, switch: Path) -> None:
        self.writer = writer
        self.switch = switch

    def insert(self, table: str, rows: list[Mapping[str, Any]]) -> int:
        if self.switch.exists():
            raise WarehouseError(f"outage drill: {self.switch} exists")
        return self.writer.insert(table, rows)


class WarehouseSink:
    """Buffers rows per table and key (the latest row for a key wins) and writes them in batches.

    ``flush`` never drops rows: when the warehouse refuses a batch, the rows go back into the
    buffer (unless a newer row for the same key arrived meanwhile) and the flush retries with
    back-off, which blocks the agent that awaits it: back-pressure instead of loss.

    A flush writes the tables named in ``first`` before the others, in that order. It first
    calls each of ``before_flush`` (synchronous: nothing runs in between), so a producer may
    add rows it derives once per flush instead of once per change.
    """

    def __init__(
        self,
        writer: RowWriter,
        max_buffer_rows: int,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        first: Sequence[str] = (),
    ) -> None:
        self._writer = writer
        self._first = {table: i for i, table in enumerate(first)}
        self.before_flush: list[Callable[[], None]] = []
        self._max_buffer_rows = max_buffer_rows
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._buffers: dict[str, dict[Hashable, Mapping[str, Any]]] = {}
        self._lock = asyncio.Lock()
        self.rows_written = 0
        self.failed_flushes = 0

    @property
    def buffered(self) -> int:
        return sum(len(rows) for rows in self._buffers.values())

    def add(self, table: str, key: Hashable, row: Mapping[str, Any]) -> None:
        """Buffer a row; a later row with the same key replaces it before it is written."""
        self._buffers.setdefault(table, {})[key] = row

    async def maybe_flush(self) -> None:
        """Flush when the buffer is full; the caller waits, which slows consumption."""
        if self.buffered >= self._max_buffer_rows:
            await self.flush()

    async def flush(self) -> int:
        """Write every buffered row; retries until written. Returns the rows written."""
        async with self._lock:
            for hook in self.before_flush:
                hook()
            written = 0
            first, last = self._first, len(self._first)
            for table in sorted(self._buffers, key=lambda t: first.get(t, last)):
                pending = self._buffers.pop(table)
                if pending:
                    written += await self._write(table, pending)
            self.rows_written += written
            return written

    async def _write(self, table: str, pending: dict[Hashable, Mapping[str, Any]]) -> int:
        delay = self._retry_initial_s
        while True:
            try:
                return await asyncio.to_thread(self._writer.insert, table, list(pending.values()))
            except WarehouseError as exc:
                self.failed_flushes += 1
                log.warning(
                    "warehouse write of %d rows to %s failed (%s); retrying in %.1f s",
                    len(pending),
                    table,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
                # Rows added for the same keys while we waited are newer: keep those.
                newer = self._buffers.pop(table, {})
                pending.update(newer)
