"""The Faust application: topics, the merchant state table, the agent and the warehouse sink."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust
from faust.types import EventT, StreamT

from detectors.features import FeatureParams
from schemas import topics
from schemas.inputs import LoanEvent, MerchantProfile
from schemas.settings import Settings
from streams.alerting import DetectionStage
from streams.bootstrap import attach_bootstrap
from streams.metrics import PipelineMetrics
from streams.processor import BatchProcessor
from streams.sink import RowWriter, WarehouseSink

log = logging.getLogger(__name__)

#: Name of the table holding each merchant's industry (its detector segment).
SEGMENT_TABLE = "merchant-segment"
#: Name of the table holding each merchant's detector state.
DETECTOR_STATE_TABLE = "detector-state"
#: Name of the table holding each merchant's feature state (its changelog topic derives from it).
MERCHANT_STATE_TABLE = "merchant-state"


@dataclass
class Monitor:
    """The wired application, kept together so that tests and the CLI can reach its parts."""

    app: faust.App
    sink: WarehouseSink
    processor: BatchProcessor
    detection: DetectionStage


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
        "consumer_max_fetch_size": settings.consumer_max_fetch_bytes,
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
        help="Each merchant's partition (2 bytes) and encoded feature state.",
    )
    sink = WarehouseSink(writer, max_buffer_rows=settings.sink_max_buffer_rows)
    processor = BatchProcessor(
        app,
        table,
        sink,
        dead_letters,
        FeatureParams.from_settings(settings),
        max_skew_s=settings.max_input_skew_s,
        align_idle_s=settings.align_idle_s,
        idle_s=settings.idle_close_after_s,
        max_future_s=settings.max_future_s,
        cache_size=settings.state_cache_merchants,
    )

    detection = DetectionStage(
        app.Table(
            DETECTOR_STATE_TABLE,
            default=None,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            help="Each merchant's encoded detector state (dormancy memory, drift, pending labels).",
        ),
        sink,
        app.topic(topics.MERCHANT_ALERTS, key_type=bytes, value_type=bytes),
        settings.data_dir / "models" / "detector-models.bin",
        segments=app.Table(
            SEGMENT_TABLE,
            default=None,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            help="Each merchant's industry, from merchant.profiles.v1.",
        ),
    )
    processor.snapshot_handlers.append(detection.on_snapshots)
    # -- backfill bootstrap (MONITOR_BOOTSTRAP_DIR; streams/bootstrap.py, docs/backfill.md) --
    attach_bootstrap(settings, app, processor, detection)
    # -- end backfill bootstrap --
    metrics = PipelineMetrics(processor, sink)

    @app.agent(source, name="merchant-features")
    async def track_merchant_days(stream: StreamT[Any]) -> None:
        events: list[EventT[Any]]
        # noack_take: the processor acknowledges each event once it is applied (it may hold
        # events back to align the two inputs in event time); offsets commit only up to the
        # oldest unacknowledged event, so nothing held is lost in a crash.
        async for events in stream.noack_take(settings.batch_max_events, within=0.2):
            try:
                await processor.process(stream, events)
            except Exception:
                # An unexpected error would leave events unacknowledged and the commit stuck
                # behind them while the agent restarts: exit instead, so a restart re-reads.
                log.critical(
                    "unexpected error in the pipeline; exiting without commit", exc_info=True
                )
                logging.shutdown()
                os._exit(70)

    reference = app.topic(
        topics.MERCHANT_PROFILES, topics.LOAN_EVENTS, key_type=bytes, value_type=bytes
    )
    calendar = processor.params.calendar

    @app.agent(reference, name="merchant-reference")
    async def track_reference_data(stream: StreamT[Any]) -> None:
        # Low volume: one event at a time, in Faust's own event context (acked as it goes).
        async for event in stream.events():
            try:
                decoded = processor.decode_reference(event)
                if isinstance(decoded, MerchantProfile):
                    detection.on_profile(decoded)
                elif isinstance(decoded, LoanEvent):
                    detection.on_loan_event(decoded, calendar.day_of(decoded.event_time))
                elif decoded is not None:
                    await processor.dead_letter(event, decoded)
            except Exception:
                log.critical("unexpected error on reference data; exiting", exc_info=True)
                logging.shutdown()
                os._exit(70)

    @app.timer(interval=timedelta(seconds=settings.sink_flush_interval_s))
    async def flush_warehouse() -> None:
        await processor.tick()
        await detection.publish()
        metrics.sample()
        await sink.flush()

    @app.timer(interval=timedelta(minutes=5))
    async def save_models() -> None:
        await asyncio.to_thread(detection.save_models)

    async def forget_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        processor.forget({tp.partition for tp in revoked if tp.topic == topics.POS_TRANSACTIONS})

    app.on_partitions_revoked.connect(forget_revoked)

    async def flush_on_shutdown(sender: Any, **_: Any) -> None:
        await detection.publish()
        detection.save_models()
        metrics.sample()  # a last sample, so even a short run leaves its figures
        written = await sink.flush()
        log.info("final warehouse flush wrote %d rows", written)

    app.on_before_shutdown.connect(flush_on_shutdown)
    return Monitor(app=app, sink=sink, processor=processor, detection=detection)
