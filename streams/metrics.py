"""Pipeline metrics sampled by the worker: consumer lag, throughput, sink buffer, dead letters."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from typing import Any

from schemas.dashboard_rows import PipelineMetric
from schemas.warehouse import PipelineMetricRow
from streams.processor import BatchProcessor
from streams.sink import WarehouseSink


class PipelineMetrics:
    """Turns the processor's counters into ``pipeline_metrics`` rows on every call to ``sample``.

    Lag per partition is what the broker last said it holds (log-end offset) minus what the
    worker has read, summed over the input topics.
    """

    def __init__(self, processor: BatchProcessor, sink: WarehouseSink, worker: str = "") -> None:
        self.processor = processor
        self.sink = sink
        self.worker = worker or socket.gethostname()
        self._last_events = 0
        self._last_time = time.monotonic()

    def sample(self) -> list[PipelineMetricRow]:
        now = time.monotonic()
        counters = self.processor.counters
        rate = (counters.events - self._last_events) / max(now - self._last_time, 1e-6)
        self._last_events, self._last_time = counters.events, now
        ts = datetime.now(UTC).replace(microsecond=0)
        rows = [
            self._row(ts, PipelineMetric.EVENTS_PER_S, rate),
            self._row(ts, PipelineMetric.SINK_BUFFER_ROWS, float(self.sink.buffered)),
            self._row(ts, "dead_letters_total", float(sum(counters.dead_letters.values()))),
            self._row(ts, "duplicates_total", float(counters.duplicates)),
            self._row(ts, "days_closed_total", float(counters.days_closed)),
            self._row(ts, "skipped_backfilled_total", float(counters.skipped_backfilled)),
            self._row(ts, "skipped_redelivered_total", float(counters.skipped_redelivered)),
            self._row(ts, "warehouse_write_failures_total", float(self.sink.failed_flushes)),
        ]
        for partition, lag in self.processor.lag_by_partition().items():
            rows.append(self._row(ts, PipelineMetric.CONSUMER_LAG, float(lag), partition))
        for row in rows:
            key = (row.metric, row.worker, row.partition, row.ts)
            data: dict[str, Any] = row.model_dump()
            self.sink.add("pipeline_metrics", key, data)
        return rows

    def _row(
        self, ts: datetime, metric: str, value: float, partition: int = -1
    ) -> PipelineMetricRow:
        return PipelineMetricRow(
            ts=ts, worker=self.worker, metric=str(metric), partition=partition, value=value
        )
