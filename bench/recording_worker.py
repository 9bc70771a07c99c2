"""`python -m bench.recording_worker FILE`: the worker, noting when alert rows reach the warehouse.

The same process as `merchant-monitor worker` (settings from MONITOR_*, `create_monitor`, its
garbage-collector tuning, the embedded warehouse), except that the warehouse handed to the sink
is wrapped: after each insert returns, one JSON line goes to FILE with the wall-clock time and
the keys of the rows written, for ``alerts`` (merchant id, as-of date, alert id, version) and
for the closed-day rows of ``merchant_daily`` (odd versions: merchant id, day). An insert has
returned when its rows are readable in the warehouse, so that instant is "the alert row is in
the warehouse". A diagnostic line also notes when each business day first closed on each
partition (the processor's snapshot handler, before the detectors run). Used by
bench/latency.py; the embedded warehouse admits one process, so it cannot be watched from
outside.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

#: Pseudo-table of the diagnostic lines: when a business day first closed on a partition.
CLOSED = "_day_closed"


class RecordingWriter:
    """A RowWriter that delegates to the warehouse and notes what each insert made readable."""

    def __init__(self, warehouse: Any, path: Path) -> None:
        self.warehouse = warehouse
        self._out = path.open("ab")
        self._lock = threading.Lock()
        self._closed: set[tuple[int, int]] = set()

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        written = int(self.warehouse.insert(table, rows))
        now = time.time()
        keys: list[list[Any]] = []
        if table == "alerts":
            keys = [
                [r["merchant_id"], str(r["as_of_date"]), r["alert_id"], r["version"]] for r in rows
            ]
        elif table == "merchant_daily":
            keys = [[r["merchant_id"], str(r["day"])] for r in rows if r["version"] % 2 == 1]
        if keys:
            self._write({"t": now, "table": table, "keys": keys})
        return written

    def on_snapshots(self, partition: int, snapshots: Sequence[Any]) -> None:
        """Note the first time each business day closed on each partition (a diagnostic)."""
        fresh = []
        for snap in snapshots:
            if (partition, snap.day) not in self._closed:
                self._closed.add((partition, snap.day))
                fresh.append([partition, snap.day])
        if fresh:
            self._write({"t": time.time(), "table": CLOSED, "keys": fresh})

    def _write(self, doc: dict[str, Any]) -> None:
        line = orjson.dumps(doc) + b"\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()

    def close(self) -> None:
        self._out.close()


def main() -> None:
    import faust

    from streams.app import create_monitor
    from streams.cli import load_settings
    from streams.commands.worker import tune_gc
    from streams.migrations import check_migrated
    from streams.warehouse import open_warehouse

    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warehouse = open_warehouse(settings)
    writer = RecordingWriter(warehouse, Path(sys.argv[1]))
    try:
        check_migrated(warehouse)
        monitor = create_monitor(settings, writer)
        # Runs before the detectors (appended after them would be after): first in the list.
        monitor.processor.snapshot_handlers.insert(0, writer.on_snapshots)
        worker = faust.Worker(monitor.app, loglevel=settings.log_level.lower(), quiet=True)
        tune_gc()  # as `merchant-monitor worker` does
        worker.execute_from_commandline()
    finally:
        writer.close()
        warehouse.close()


if __name__ == "__main__":
    main()
