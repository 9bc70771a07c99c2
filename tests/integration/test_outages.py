"""Outages mid-stream: the warehouse down for 60 s, the broker frozen, the broker restarted;
nothing lost or doubled."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from schemas import topics
from schemas.settings import Settings
from streams.broker import LocalBroker
from streams.runner import WorkerProcess, consumer_lag, wait_until_consumed
from streams.sink import OUTAGE_DRILL_FILE
from streams.verify import verify
from streams.warehouse import open_warehouse
from tests.fixtures.worker import worker_settings
from tests.integration.test_pipeline import _events

pytestmark = pytest.mark.integration
SOURCES = [topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS]


def _settings(broker: LocalBroker, data_dir: Path, app_id: str) -> Settings:
    # a small sink buffer, so the warehouse outage reaches back-pressure
    return worker_settings(broker, data_dir, app_id, sink_max_buffer_rows=200)


def _send(broker: LocalBroker, events: list[tuple[str, dict[str, object]]]) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)
    for topic, doc in events:
        producer.send(topic, key=str(doc["merchant_id"]).encode(), value=orjson.dumps(doc))
    producer.flush()
    producer.close()


def _consumed(broker: LocalBroker, settings: Settings, worker: WorkerProcess) -> None:
    """Wait until the worker has committed every record of the transaction topics."""
    wait_until_consumed(
        broker.bootstrap_servers,
        settings.app_id,
        SOURCES,
        timeout_s=300,
        alive=worker.check_alive,
        poll_s=0.5,
    )


def _finish_and_verify(broker: LocalBroker, settings: Settings, worker: WorkerProcess) -> Any:
    """Let the worker finish, stop it, verify exactly; returns the warehouse-failure count."""
    _consumed(broker, settings, worker)
    assert worker.stop() == 0
    with open_warehouse(settings) as warehouse:
        result = verify(broker.bootstrap_servers, warehouse, settings.business_timezone)
        failures = warehouse.query(
            "SELECT max(value) AS n FROM pipeline_metrics "
            "WHERE metric = 'warehouse_write_failures_total'"
        )
    assert result.ok, "\n".join(result.lines())
    assert result.counted > 0
    return failures[0]["n"]


def test_a_60_second_warehouse_outage_loses_and_doubles_nothing(
    fresh_broker: LocalBroker, tmp_path: Path
) -> None:
    events = _events(seed=31, merchants=40, days=16)
    half = len(events) // 2
    settings = _settings(fresh_broker, tmp_path, "outage-warehouse")
    switch = tmp_path / OUTAGE_DRILL_FILE
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        _send(fresh_broker, events[:half])
        switch.parent.mkdir(parents=True, exist_ok=True)
        switch.touch()  # the warehouse goes down mid-stream
        _send(fresh_broker, events[half:])
        time.sleep(60)
        worker.check_alive()
        # back-pressure: with a small buffer the worker stops consuming instead of dropping
        behind, _ = consumer_lag(fresh_broker.bootstrap_servers, settings.app_id, SOURCES)
        assert behind > 0
        switch.unlink()  # back up
        failures = _finish_and_verify(fresh_broker, settings, worker)
    finally:
        worker.stop()
    assert failures > 0, "the sink saw the outage and retried"


def test_a_frozen_broker_is_survived_without_help(
    fresh_broker: LocalBroker, tmp_path: Path
) -> None:
    events = _events(seed=32, merchants=40, days=16)
    third = len(events) // 3
    settings = _settings(fresh_broker, tmp_path, "outage-broker")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        _send(fresh_broker, events[:third])
        time.sleep(3)
        fresh_broker.pause()  # hangs every connection, as a partition or a stalled broker does
        time.sleep(20)
        fresh_broker.resume()
        worker.check_alive()
        _send(fresh_broker, events[third:])
        _finish_and_verify(fresh_broker, settings, worker)
    finally:
        fresh_broker.resume()
        worker.stop()


def test_a_restarted_broker_is_survived_without_help(
    durable_broker: LocalBroker, tmp_path: Path
) -> None:
    """The broker process stops mid-stream and comes back 15 s later with its topics (object
    storage); the worker, never touched, reconnects and finishes exactly."""
    events = _events(seed=33, merchants=40, days=16)
    third = len(events) // 3
    settings = _settings(durable_broker, tmp_path, "outage-broker-restart")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        _send(durable_broker, events[:third])
        _consumed(durable_broker, settings, worker)
        _send(durable_broker, events[third : 2 * third])
        durable_broker.stop()  # mid-stream: the worker has records it has not committed
        time.sleep(15)
        durable_broker.start()
        worker.check_alive()
        _send(durable_broker, events[2 * third :])
        _finish_and_verify(durable_broker, settings, worker)
    finally:
        worker.stop()
