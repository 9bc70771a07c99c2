"""The Faust application: topics, the merchant state table, the agent and the warehouse sink."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import faust
from faust.sensors import Monitor as FaustMonitor
from faust.types import EventT, StreamT

from detectors.actions import ActionParams
from detectors.features import FeatureParams
from schemas import topics
from schemas.inputs import LoanEvent, MerchantProfile, OutreachOutcome
from schemas.settings import Settings
from streams.actions import SUCCESS_MODEL_FILE, ActionStage, ManagerDesk, SuccessHolder
from streams.alerting import DetectionStage
from streams.api import ApiRoutes, register_api, web_config
from streams.bootstrap import attach_bootstrap
from streams.codec import encode
from streams.compat import (
    FAUST_FETCH_MAX_WAIT_MS,
    install_end_offset_probe,
    install_fetch_max_wait,
)
from streams.durability import StagedWrites, install_stop_without_waiting
from streams.errors import StreamsError
from streams.intake import BatchIntake
from streams.metrics import PipelineMetrics
from streams.outbound import DeliveryFailures, DirectTopic
from streams.processor import INPUT_TOPICS, BatchProcessor
from streams.sink import RowWriter, WarehouseSink

log = logging.getLogger(__name__)

#: Name of the table holding each merchant's industry (its detector segment).
SEGMENT_TABLE = "merchant-segment"
#: Name of the table holding each merchant's detector state.
DETECTOR_STATE_TABLE = "detector-state"
#: Name of the table holding each merchant's feature state (its changelog topic derives from it).
MERCHANT_STATE_TABLE = "merchant-state"
#: Each merchant's remembered transaction ids (de-duplication set of its open days).
MERCHANT_IDS_TABLE = "merchant-txn-ids"
#: Each merchant's action state (profile facts, limit state, outreach slots).
ACTION_STATE_TABLE = "merchant-actions"
#: Each merchant's current POS-loan limit (the JSON published last), read by the limit API.
LIMIT_TABLE = "pos-loan-limit"
#: Each account manager's task queue (open and queued tasks), keyed by manager id.
MANAGER_QUEUE_TABLE = "manager-queue"
#: Internal topic (suffix after the app id) carrying proposals and outcomes to managers.
TASK_REQUESTS_TOPIC = "task-requests"
#: Producer batch size (bytes; Faust's default is 16 KiB), under its 1 MB request size.
PRODUCER_BATCH_BYTES = 512 * 1024
#: Shortest time between two early publications of closed days' outputs (live traffic).
EARLY_OUTPUT_GAP_S = 0.2


class QuietMonitor(FaustMonitor):
    """Faust's statistics sensor without its per-event and per-record bookkeeping.

    Nothing reads those statistics (Faust's statistics pages are off; our own metrics come from
    the processor's counters), and they cost a few microseconds on every event, acknowledgement,
    table access and changelog record.
    """

    def on_message_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_set(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_initiated(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_completed(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Monitor:
    """The wired application, kept together so that tests and the CLI can reach its parts."""

    app: faust.App
    sink: WarehouseSink
    processor: BatchProcessor
    detection: DetectionStage
    actions: ActionStage
    desk: ManagerDesk


def _tp(item: Any) -> tuple[str, int]:
    """(topic, partition) of an event, a record, or a (stream, event) pair."""
    if isinstance(item, tuple):
        item = item[1]
    message = getattr(item, "message", item)
    return message.topic, message.partition


def exit_without_commit(reason: str, *, exc_info: bool = False) -> NoReturn:
    """Leave at once with status 70, acknowledging and committing nothing more: a restart reads
    the unacknowledged events again instead of losing them."""
    log.critical("%s; exiting without commit", reason, exc_info=exc_info)
    logging.shutdown()
    os._exit(70)


def state_write_due(since_s: float, interval_s: float, flush_s: float, *, quiet: bool) -> bool:
    """Whether a flush tick ``since_s`` after the last state write writes the states again:
    when the input went quiet (no new events since the last tick), or when ``interval_s`` has
    passed, give or take half a tick (the timer's ticks are not exact).

    >>> [state_write_due(s, 6.0, 1.0, quiet=False) for s in (1.0, 5.0, 5.6, 6.2)]
    [False, False, True, True]
    >>> state_write_due(1.0, 6.0, 1.0, quiet=True)
    True
    """
    return quiet or since_s >= interval_s - flush_s / 2


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
        "producer_linger": 0.005,
        # Faust's 16 KiB batches made a flush of a few thousand records (limits, changelogs)
        # take seconds: one batch in flight per partition, each a round trip to the broker.
        "producer_max_batch_size": PRODUCER_BATCH_BYTES,
        "consumer_max_fetch_size": settings.consumer_max_fetch_bytes,
        "stream_buffer_maxsize": 16_384,
        **web_config(settings.web_enabled, settings.web_bind, settings.web_host, settings.web_port),
    }


def create_monitor(settings: Settings, writer: RowWriter) -> Monitor:
    """Build the Faust app wired to ``writer`` (a warehouse)."""
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    if settings.broker_probe_end_offsets:
        install_end_offset_probe(settings.bootstrap_servers)
    if settings.consumer_fetch_max_wait_ms != FAUST_FETCH_MAX_WAIT_MS:
        install_fetch_max_wait(settings.consumer_fetch_max_wait_ms)
    app = faust.App(settings.app_id, monitor=QuietMonitor(), **faust_config(settings))
    # Every table write waits for the outputs it implies (streams/durability.py).
    staged = StagedWrites()
    install_stop_without_waiting()
    source = app.topic(
        topics.POS_TRANSACTIONS,
        topics.ACCOUNT_TRANSACTIONS,
        key_type=bytes,
        value_type=bytes,
    )
    dead_letters = app.topic(topics.DEAD_LETTERS, key_type=bytes, value_type=bytes)
    # Dead letters, alerts, limits, requests and tasks go straight to the producer, in order
    # and without a yield per record (streams/outbound.py).
    failures = DeliveryFailures()

    def table(name: str, help_text: str) -> Any:
        """A changelog-backed table of bytes, co-partitioned with the inputs, writes staged."""
        return staged.wrap(
            app.Table(
                name,
                default=None,
                partitions=settings.partitions,
                key_type=bytes,
                value_type=bytes,
                help=help_text,
            )
        )

    states = table(
        MERCHANT_STATE_TABLE,
        "Each merchant's partition, marks (offsets its state holds) and feature state.",
    )
    # Alert rows first: the risk desk's dashboards and alert rules read them.
    sink = WarehouseSink(writer, max_buffer_rows=settings.sink_max_buffer_rows, first=("alerts",))
    processor = BatchProcessor(
        app,
        states,
        table(MERCHANT_IDS_TABLE, "Each merchant's transaction ids of its open days (dedup)."),
        sink,
        DirectTopic(dead_letters, failures),
        FeatureParams.from_settings(settings),
        max_skew_s=settings.max_input_skew_s,
        align_idle_s=settings.align_idle_s,
        idle_s=settings.idle_close_after_s,
        max_future_s=settings.max_future_s,
        cache_size=settings.state_cache_merchants,
    )

    detection = DetectionStage(
        table(
            DETECTOR_STATE_TABLE,
            "Each merchant's detector state (dormancy memory, drift, pending labels).",
        ),
        sink,
        DirectTopic(app.topic(topics.MERCHANT_ALERTS, key_type=bytes, value_type=bytes), failures),
        settings.data_dir / "models" / "detector-models.bin",
        segments=table(SEGMENT_TABLE, "Each merchant's industry, from merchant.profiles.v1."),
    )
    processor.snapshot_handlers.append(detection.on_snapshots)
    metrics = PipelineMetrics(processor, sink)

    action_params = ActionParams.from_settings(settings)
    success = SuccessHolder(
        settings.data_dir / "models" / SUCCESS_MODEL_FILE, action_params.outreach
    )
    requests = app.topic(
        f"{settings.app_id}-{TASK_REQUESTS_TOPIC}",
        internal=True,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
    )
    actions = ActionStage(
        table(ACTION_STATE_TABLE, "Each merchant's profile facts, limit state and task slots."),
        table(LIMIT_TABLE, "Each merchant's current POS-loan limit (published JSON)."),
        DirectTopic(requests, failures),
        DirectTopic(app.topic(topics.POS_LOAN_LIMITS, key_type=bytes, value_type=bytes), failures),
        sink,
        success,
        action_params,
    )
    detection.day_handlers.append(actions.on_day)
    # Backfill bootstrap (MONITOR_BOOTSTRAP_DIR; streams/bootstrap.py, docs/backfill.md).
    attach_bootstrap(settings, app, processor, detection, actions)
    desk = ManagerDesk(
        table(MANAGER_QUEUE_TABLE, "Each account manager's open and queued tasks."),
        DirectTopic(app.topic(topics.OUTREACH_TASKS, key_type=bytes, value_type=bytes), failures),
        sink,
        success,
        action_params,
        partition_of=lambda key: (
            app.producer.key_partition(requests.get_topic_name(), key).partition
        ),
        calendar=processor.params.calendar,
    )

    # The transactions come in whole fetches (streams/intake.py), not through Faust's per-event
    # streams. The processor acknowledges each record (on the consumer) once what it caused is
    # written (it may hold records back to align the two inputs in event time); offsets commit
    # only up to the oldest unacknowledged record, so nothing held is lost in a crash.
    app.topics.add(source)  # subscribed without an agent: the intake takes its records
    intake = BatchIntake(app, INPUT_TOPICS)
    processor.ack = intake.ack

    @app.task
    async def track_merchant_days() -> None:
        async for records in intake.batches(settings.batch_max_events):
            try:
                await processor.process(records)
                await publish_closed_days()
            except Exception:
                # An unexpected error would leave events unacknowledged and the commit stuck
                # behind them: exit instead, so a restart re-reads.
                exit_without_commit("unexpected error in the pipeline", exc_info=True)

    reference = app.topic(
        topics.MERCHANT_PROFILES,
        topics.LOAN_EVENTS,
        topics.OUTREACH_OUTCOMES,
        key_type=bytes,
        value_type=bytes,
    )
    calendar = processor.params.calendar

    # Reference data and task requests are acknowledged, like the transactions, only once the
    # flush after them has written what they caused (streams/durability.py).
    held: list[tuple[StreamT[Any], EventT[Any]]] = []

    @app.agent(reference, name="merchant-reference")
    async def track_reference_data(stream: StreamT[Any]) -> None:
        # Low volume: one event at a time, in Faust's own event context.
        unacked = stream.noack()
        async for event in unacked.events():
            held.append((unacked, event))
            try:
                decoded = processor.decode_reference(event)
                if isinstance(decoded, MerchantProfile):
                    detection.on_profile(decoded)
                    actions.on_profile(decoded)
                elif isinstance(decoded, OutreachOutcome):
                    actions.on_outcome(decoded, calendar.day_of(decoded.event_time))
                elif isinstance(decoded, LoanEvent):
                    detection.on_loan_event(decoded, calendar.day_of(decoded.event_time))
                elif decoded is not None:
                    await processor.dead_letter(event, decoded)
            except Exception:
                exit_without_commit("unexpected error on reference data", exc_info=True)

    @app.agent(requests, name="manager-queues")
    async def track_manager_queues(stream: StreamT[Any]) -> None:
        # Proposals and outcomes keyed by manager: each manager's queue on one partition.
        unacked = stream.noack()
        async for event in unacked.events():
            held.append((unacked, event))
            try:
                rejected = desk.on_request(
                    event.message.key, event.message.value, event.message.partition
                )
                if rejected is not None:
                    await processor.dead_letter(event, rejected)
            except Exception:
                exit_without_commit("unexpected error in the manager queues", exc_info=True)

    durable = asyncio.Lock()
    inflight: list[list[Any]] = []

    async def make_durable() -> int:
        """Publish and write what the events so far caused, then write the state, then
        acknowledge the events (their offsets may commit). The order is the guarantee; see
        streams/durability.py. Returns the warehouse rows written."""
        async with durable:  # the timer and the shutdown: one at a time, in order
            began = time.monotonic()
            done = processor.take_done()
            others = held[:]
            del held[:]
            writes = staged.take()
            inflight[:] = [done, others]  # a revocation meanwhile drops its partitions' events
            await publish_outputs()
            published = time.monotonic()
            written = await sink.flush()
            sunk = time.monotonic()
            await app.producer.flush()
            flushed = time.monotonic()
            if failures:  # an output is missing: the state must not say it was written
                exit_without_commit(failures.describe())
            await staged.commit(writes)
            await processor.acknowledge(done)
            for stream, event in others:
                await stream.ack(event)
            inflight.clear()
            ended = time.monotonic()
            if ended - began > settings.sink_flush_interval_s:
                log.warning(
                    "slow flush: %.2f s (publish %.2f, warehouse %.2f for %d rows, producer "
                    "%.2f, state writes and acknowledgements %.2f)",
                    ended - began,
                    published - began,
                    sunk - published,
                    written,
                    flushed - sunk,
                    ended - flushed,
                )
            return written

    async def publish_outputs() -> None:
        """Publish the buffered alerts, limits and tasks, and sample the pipeline metrics (the
        caller holds ``durable`` and flushes the warehouse sink next)."""
        await detection.publish()
        await actions.publish()
        await desk.publish()
        metrics.sample()

    last_outputs = {"days_closed": 0, "at": 0.0}

    async def publish_closed_days() -> None:
        """Alerts, limits and rows of the days just closed, at once when the worker has caught
        up (nothing left on the broker to read): an alert need not wait for the timer. Outputs
        before state is the safe order (streams/durability.py); the states and the
        acknowledgements still wait for the timer. At most every EARLY_OUTPUT_GAP_S, never
        while reading a backlog, where the timer's larger batches are cheaper, and never by
        waiting for a flush under way (the batches go on meanwhile)."""
        closed, now = processor.counters.days_closed, time.monotonic()
        if (
            durable.locked()  # a flush is under way: it publishes them, or the next batch will
            or closed == last_outputs["days_closed"]
            or now - last_outputs["at"] < EARLY_OUTPUT_GAP_S
            or any(processor.lag_by_partition().values())
        ):
            return
        last_outputs.update(days_closed=closed, at=now)
        async with durable:
            await detection.publish()
            await actions.publish()
            await sink.flush()

    written_states = {"at": time.monotonic(), "events": -1}

    @app.timer(interval=timedelta(seconds=settings.sink_flush_interval_s))
    async def flush_warehouse() -> None:
        """Every flush interval the outputs; every state write interval (or when the input
        went quiet) the states too, with the acknowledgements (docs/worker.md, Timers)."""
        began = time.monotonic()
        events = processor.counters.events
        write_states = state_write_due(
            began - written_states["at"],
            settings.state_write_interval_s,
            settings.sink_flush_interval_s,
            quiet=events == written_states["events"],
        )
        written_states["events"] = events
        await (processor.tick() if write_states else processor.release())
        if time.monotonic() - began > settings.sink_flush_interval_s:
            log.warning("slow timer tick: %.2f s", time.monotonic() - began)
        desk.roll()
        if write_states:
            written_states["at"] = began
            await make_durable()
            return
        async with durable:
            await publish_outputs()
            written = await sink.flush()
        if time.monotonic() - began > settings.sink_flush_interval_s:
            log.warning(
                "slow output flush: %.2f s (%d warehouse rows)", time.monotonic() - began, written
            )

    @app.timer(interval=timedelta(minutes=5))
    async def save_models() -> None:
        await asyncio.to_thread(detection.save_models)
        await asyncio.to_thread(success.save)

    async def forget_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        partitions = {tp.partition for tp in revoked if tp.topic == topics.POS_TRANSACTIONS}
        queues = {tp.partition for tp in revoked if tp.topic == requests.get_topic_name()}
        async with processor.lock:  # not in the middle of a batch of those partitions
            processor.forget(partitions)
            staged.forget(partitions, queues_table=MANAGER_QUEUE_TABLE, queue_partitions=queues)
        # Their events are not acknowledged now: the partitions' next owner reads them again.
        gone = {(tp.topic, tp.partition) for tp in revoked}
        held[:] = [h for h in held if _tp(h) not in gone]
        for events in inflight:
            events[:] = [e for e in events if _tp(e) not in gone]

    app.on_partitions_revoked.connect(forget_revoked)

    async def flush_on_shutdown(sender: Any, **_: Any) -> None:
        # Changed feature states go with the detector states of the days they closed.
        await processor.write_states()
        written = await make_durable()  # its metrics sample: even a short run leaves figures
        detection.save_models()
        success.save()
        log.info("final warehouse flush wrote %d rows", written)

    app.on_before_shutdown.connect(flush_on_shutdown)

    if settings.web_enabled:
        if settings.api_token is None:
            raise StreamsError(
                "MONITOR_API_TOKEN must be set while the HTTP API is on "
                "(or turn the API off with MONITOR_WEB_ENABLED=false)"
            )

        async def send_outcome(outcome: OutreachOutcome) -> None:
            await outcomes.send(key=outcome.merchant_id.encode(), value=encode(outcome))

        outcomes = app.topic(topics.OUTREACH_OUTCOMES, key_type=bytes, value_type=bytes)
        register_api(
            app,
            settings.api_token,
            ApiRoutes(
                LIMIT_TABLE, MANAGER_QUEUE_TABLE, actions.limit_of, desk.tasks_of, send_outcome
            ),
        )
    return Monitor(
        app=app, sink=sink, processor=processor, detection=detection, actions=actions, desk=desk
    )
