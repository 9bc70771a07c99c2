"""Topic rows to Kafka messages: JSON payloads in model field order, merged by event time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from streams.sim.arrow import SCHEMAS, TIME_COLUMN

#: (topic, key, value, event_time): what a producer sends, in event-time order.
Message = tuple[str, bytes, bytes, datetime]
#: Rows are merged across topics in blocks of this much event time (bounded memory).
BLOCK_MS = 3_600_000


def _python_column(column: pa.ChunkedArray | pa.Array) -> list[object]:
    kind = column.type
    if pa.types.is_timestamp(kind):
        text = pc.strftime(
            pc.cast(column, pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ"
        )
        return text.to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_date(kind):
        return pc.cast(column, pa.string()).to_pylist()  # type: ignore[no-any-return]
    return column.to_pylist()  # type: ignore[no-any-return]


def encode(table: pa.Table) -> list[bytes]:
    """One JSON document per row: ISO 8601 UTC times, ISO dates, integers for money."""
    names = table.column_names
    columns = [_python_column(table.column(name)) for name in names]
    return [orjson.dumps(dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]


def event_millis(topic: str, table: pa.Table) -> npt.NDArray[np.int64]:
    column = table.column(TIME_COLUMN[topic])
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def merged(tables: Mapping[str, pa.Table]) -> Iterator[Message]:
    """Messages of every topic in event-time order; ties keep topic order, then row order."""
    order = [t for t in SCHEMAS if t in tables]
    times = {t: event_millis(t, tables[t]) for t in order}
    present = [times[t] for t in order if times[t].size]
    if not present:
        return
    cursor = dict.fromkeys(order, 0)
    block = int(min(a[0] for a in present))
    end = int(max(a[-1] for a in present))
    while block <= end:
        block += BLOCK_MS
        parts: list[tuple[int, str, int, int]] = []
        for rank, topic in enumerate(order):
            lo = cursor[topic]
            hi = int(np.searchsorted(times[topic], block, side="left"))
            if hi > lo:
                parts.append((rank, topic, lo, hi))
            cursor[topic] = hi
        if parts:
            yield from _merge_block(tables, times, parts)


def _merge_block(
    tables: Mapping[str, pa.Table],
    times: Mapping[str, npt.NDArray[np.int64]],
    parts: list[tuple[int, str, int, int]],
) -> Iterator[Message]:
    stamps = np.concatenate([times[t][lo:hi] for _, t, lo, hi in parts])
    ranks = np.concatenate([np.full(hi - lo, r) for r, _, lo, hi in parts])
    local = np.concatenate([np.arange(hi - lo) for _, _, lo, hi in parts])
    order = np.lexsort((local, ranks, stamps))
    encoded: dict[int, tuple[str, list[bytes], list[bytes]]] = {}
    for rank, topic, lo, hi in parts:
        rows = tables[topic].slice(lo, hi - lo)
        keys = [k.encode() for k in rows.column("merchant_id").to_pylist()]
        encoded[rank] = (topic, keys, encode(rows))
    for i in order.tolist():
        topic, keys, values = encoded[int(ranks[i])]
        j = int(local[i])
        yield topic, keys[j], values[j], datetime.fromtimestamp(int(stamps[i]) / 1000, UTC)
