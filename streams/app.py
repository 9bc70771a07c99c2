"""The Faust application: topics, the merchant state table, the agent and the warehouse sink."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust
from faust.types import EventT, StreamT

from schemas import topics
from schemas.settings import Settings
from streams.processor import BatchProcessor
from streams.sink import RowWriter, WarehouseSink

log = logging.getLogger(__name__)

#: Name of the table holding each merchant's open days (its changelog topic derives from it).
MERCHANT_STATE_TABLE = "merchant-days"


@dataclass
class Monitor:
    """The wired application, kept together so that tests and the CLI can reach its parts."""

    app: faust.App
    sink: WarehouseSink
    processor: BatchProcessor


def faust_config(settings: Settings) -> dict[str, Any]:
    """Faust settings derived from ours (one place, so tests and production agree)."""
    store = "memory://" if settings.table_store == "memory" else "rocksdb://"
    return {
        "broker": settings.broker_url,
        "store": store,
        "datadir": str(settings.data_dir / "faust"),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "consumer_auto_offset_reset": "earliest",
        "broker_rebalance_timeout": settings.consumer_rebalance_timeout_s,
        "broker_session_timeout": settings.consumer_session_timeout_s,
        "broker_heartbeat_interval": settings.consumer_heartbeat_interval_s,
        "broker_commit_interval": settings.commit_interval_s,
        "web_enabled": False,
        "producer_linger": 0.005,
        "stream_buffer_maxsize": 16_384,
    }


def create_monitor(settings: Settings, writer: RowWriter) -> Monitor:
    """Build the Faust app wired to ``writer`` (a warehouse)."""
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(settings.app_id, **faust_config(settings))
    source = app.topic(
        topics.POS_TRANSACTIONS,
        topics.ACCOUNT_TRANSACTIONS,
        key_type=bytes,
        value_type=bytes,
    )
    dead_letters = app.topic(topics.DEAD_LETTERS, key_type=bytes, value_type=bytes)
    table = app.Table(
        MERCHANT_STATE_TABLE,
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        help="Each merchant's open business days: exact daily sales and cash-flow totals.",
    )
    sink = WarehouseSink(writer, max_buffer_rows=settings.sink_max_buffer_rows)
    processor = BatchProcessor(
        table=table,
        sink=sink,
        dead_letters=dead_letters,
        business_timezone=settings.business_timezone,
        retention_days=settings.open_days_kept,
    )

    @app.agent(source, name="merchant-days")
    async def track_merchant_days(stream: StreamT[Any]) -> None:
        events: list[EventT[Any]]
        async for events in stream.take_events(settings.batch_max_events, within=0.2):
            try:
                await processor.process(events)
            except Exception:
                # Faust acknowledges a taken batch even when its processing raises, and would
                # commit it on the way down: exit at once instead, so the batch is read again
                # after a restart rather than lost.
                log.critical(
                    "unexpected error in the pipeline; exiting without commit", exc_info=True
                )
                logging.shutdown()
                os._exit(70)

    @app.timer(interval=timedelta(seconds=settings.sink_flush_interval_s))
    async def flush_warehouse() -> None:
        await sink.flush()

    async def flush_on_shutdown(sender: Any, **_: Any) -> None:
        written = await sink.flush()
        log.info("final warehouse flush wrote %d rows", written)

    app.on_before_shutdown.connect(flush_on_shutdown)
    return Monitor(app=app, sink=sink, processor=processor)
