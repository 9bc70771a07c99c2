"""Helpers shared by the broker-backed benchmarks: worker settings, percentiles, reading topics."""

from __future__ import annotations

import logging
import math
import shutil
import signal
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

from detectors.features import FeatureParams
from schemas.settings import Settings
from streams.broker import LOCAL_FETCH_MAX_WAIT_MS
from streams.migrations import migrate
from streams.sim import Scenario, Simulation, simulate
from streams.sim.payloads import Message
from streams.warehouse import open_warehouse


def worker_settings(
    broker_url: str, data_dir: Path, app_id: str, partitions: int, **overrides: Any
) -> Settings:
    """A worker's settings as every benchmark runs it: short group timeouts (a join takes about
    3 s instead of 60), commits every 0.5 s, the local broker's fetch wait, the API off unless
    an override turns it on."""
    values: dict[str, Any] = {
        "broker_url": broker_url,
        "data_dir": data_dir,
        "partitions": partitions,
        "app_id": app_id,
        "consumer_rebalance_timeout_s": 3.0,
        "consumer_session_timeout_s": 6.0,
        "consumer_heartbeat_interval_s": 1.0,
        "commit_interval_s": 0.5,
        "consumer_fetch_max_wait_ms": LOCAL_FETCH_MAX_WAIT_MS,
        "web_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)


def migrated(settings: Settings) -> Settings:
    """Create the worker's embedded warehouse (before the worker opens it)."""
    with open_warehouse(settings) as warehouse:
        migrate(warehouse)
    return settings


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile: the smallest value with at least ``q`` of the values at or
    below it (p99 of 40 values is the 40th, the maximum)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """p50, p99, min, max and count of durations given in seconds, in milliseconds."""
    if not seconds:
        return {"n": 0, "p50": None, "p99": None, "min": None, "max": None}
    return {
        "n": len(seconds),
        "min": round(min(seconds) * 1000, 1),
        "p50": round(quantile(seconds, 0.50) * 1000, 1),
        "p99": round(quantile(seconds, 0.99) * 1000, 1),
        "max": round(max(seconds) * 1000, 1),
    }


def median_of(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def read_topics(bootstrap: list[str], names: Sequence[str], idle_ms: int = 2000) -> list[Any]:
    """Every record of the topics, from the beginning (stops after ``idle_ms`` without one)."""
    consumer = KafkaConsumer(
        *names,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=idle_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def stop_child(child: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM, wait, then SIGKILL: stop one child process we started."""
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def simulation_for(
    merchants: int, head_days: int, tail_messages: int, seed: int = 7
) -> tuple[Simulation, list[Message], list[Message]]:
    """A default-scenario population with ``head_days`` of history and at least ``tail_messages``
    messages after them: (simulation, head messages, the next ``tail_messages`` messages).

    Events per day vary (the Spring Festival dip of February 2026 is in the default window), so
    the number of days is grown until the tail is long enough.
    """
    calendar = FeatureParams().calendar
    days = head_days + math.ceil(tail_messages / (merchants * 8.0)) + 2
    while True:
        simulation = simulate(Scenario.default().resized(merchants=merchants, days=days), seed)
        first = calendar.day_of(simulation.window_start_utc)
        messages = list(simulation.messages())
        head = [m for m in messages if calendar.day_of(m[3]) < first + head_days]
        tail = messages[len(head) : len(head) + tail_messages]
        if len(tail) == tail_messages:
            return simulation, head, tail
        missing = tail_messages - len(tail)
        days += math.ceil(missing / (merchants * 2.0)) + 1


def standalone(log: logging.Logger, workdir: Path) -> Path:
    """Set-up of a benchmark run from its own command line: quiet logging but for ``log``, and
    ``workdir`` emptied and created. Returns its absolute path."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    workdir = workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    return workdir
