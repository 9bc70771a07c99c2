"""The warehouse sink: latest row per key, nothing dropped when the warehouse fails."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from streams.errors import WarehouseError
from streams.sink import WarehouseSink


class FlakyWriter:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[tuple[str, dict[str, Any]]] = []

    def insert(self, table: str, rows: list[Mapping[str, Any]]) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise WarehouseError("warehouse unavailable")
        self.written += [(table, dict(r)) for r in rows]
        return len(rows)


def test_latest_row_per_key_wins() -> None:
    writer = FlakyWriter(failures=0)
    sink = WarehouseSink(writer, max_buffer_rows=100)
    sink.add("t", "a", {"v": 1})
    sink.add("t", "a", {"v": 2})
    sink.add("t", "b", {"v": 3})
    assert asyncio.run(sink.flush()) == 2
    assert sorted(r["v"] for _, r in writer.written) == [2, 3]
    assert sink.buffered == 0


def test_failed_flush_retries_and_loses_nothing() -> None:
    writer = FlakyWriter(failures=3)
    sink = WarehouseSink(writer, max_buffer_rows=100, retry_initial_s=0.001, retry_max_s=0.002)
    for i in range(10):
        sink.add("t", i, {"v": i})
    assert asyncio.run(sink.flush()) == 10
    assert sink.failed_flushes == 3
    assert sorted(r["v"] for _, r in writer.written) == list(range(10))


def test_maybe_flush_applies_back_pressure_at_the_bound() -> None:
    writer = FlakyWriter(failures=0)
    sink = WarehouseSink(writer, max_buffer_rows=3)

    async def scenario() -> None:
        sink.add("t", 1, {"v": 1})
        sink.add("t", 2, {"v": 2})
        await sink.maybe_flush()
        assert writer.written == []
        sink.add("t", 3, {"v": 3})
        await sink.maybe_flush()
        assert len(writer.written) == 3

    asyncio.run(scenario())


def test_tables_named_first_are_written_first() -> None:
    writer = FlakyWriter(failures=0)
    sink = WarehouseSink(writer, max_buffer_rows=100, first=("alerts", "limits"))
    for table in ("daily", "limits", "scores", "alerts"):
        sink.add(table, 1, {"v": table})
    assert asyncio.run(sink.flush()) == 4
    assert [table for table, _ in writer.written] == ["alerts", "limits", "daily", "scores"]
