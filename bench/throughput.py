"""Throughput on one pre-published backlog: baselines and the real worker, each a child process."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import stop_child
from schemas import topics
from schemas.settings import Settings
from streams.broker import LOCAL_FETCH_MAX_WAIT_MS, LocalBroker, create_topics
from streams.migrations import migrate
from streams.runner import WorkerProcess, consumer_lag, wait_until_consumed
from streams.sim import Scenario, simulate
from streams.sim.publish import publish
from streams.warehouse import open_warehouse

log = logging.getLogger(__name__)

#: The input topics the worker consumes; every measurement reads exactly these.
INPUT_TOPICS = [topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS]
KINDS = ("raw_consumer", "faust_noop", "faust_naive_table", "pipeline")
POLL_S = 0.2


@dataclass
class Sample:
    """One timed run: the headline interval and what the child or the watcher saw inside it."""

    kind: str
    events: int
    seconds: float
    startup_s: float | None = None
    processing_s: float | None = None

    @property
    def eps(self) -> float:
        return self.events / self.seconds


@dataclass
class Backlog:
    partitions: int
    merchants: int
    days: int
    published: dict[str, int] = field(default_factory=dict)
    end_offsets: int = 0

    @property
    def events(self) -> int:
        return sum(self.published.get(t, 0) for t in INPUT_TOPICS)


def _timed_until_consumed(
    began: float, bootstrap: list[str], group: str, alive: Callable[[], None], timeout_s: float
) -> tuple[float, float | None]:
    """Seconds since ``began`` until the group committed everything, and until its first commit."""
    first: list[float] = []

    def progress(done: int, total: int) -> None:
        if done > 0 and not first:
            first.append(time.perf_counter() - began)

    wait_until_consumed(
        bootstrap, group, INPUT_TOPICS, timeout_s, on_progress=progress, alive=alive, poll_s=POLL_S
    )
    return time.perf_counter() - began, (first[0] if first else None)


def run_baseline(
    kind: str, broker: LocalBroker, backlog: Backlog, workdir: Path, timeout_s: float
) -> Sample:
    group = f"bench-{kind.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    run_dir = workdir / group
    run_dir.mkdir(parents=True)
    stats = run_dir / "stats.json"
    command = [
        sys.executable,
        "-m",
        "bench.children",
        kind,
        "--bootstrap",
        broker.bootstrap_servers[0],
        "--group",
        group,
        "--topics",
        *INPUT_TOPICS,
        "--partitions",
        str(backlog.partitions),
        "--expected",
        str(backlog.events),
        "--stats",
        str(stats),
        "--workdir",
        str(run_dir),
    ]
    with (run_dir / "child.log").open("ab") as out:
        began = time.perf_counter()
        child = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
            command, stdout=out, stderr=subprocess.STDOUT
        )

    def alive() -> None:
        if child.poll() not in (None, 0):
            raise RuntimeError(f"{kind} child exited with status {child.returncode}")

    try:
        seconds, _ = _timed_until_consumed(began, broker.bootstrap_servers, group, alive, timeout_s)
    finally:
        stop_child(child)
    inner = json.loads(stats.read_text()) if stats.exists() else {}
    return Sample(kind, backlog.events, seconds, inner.get("startup_s"), inner.get("processing_s"))


def run_pipeline(broker: LocalBroker, backlog: Backlog, workdir: Path, timeout_s: float) -> Sample:
    app_id = f"bench-pipeline-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        broker_url=broker.url,
        data_dir=workdir / app_id,
        partitions=backlog.partitions,
        app_id=app_id,
        consumer_rebalance_timeout_s=3.0,
        consumer_session_timeout_s=6.0,
        consumer_heartbeat_interval_s=1.0,
        commit_interval_s=0.5,
        web_enabled=False,  # throughput of the pipeline; the API is measured on its own
        broker_probe_end_offsets=True,  # the local tansu reports end offsets short
        consumer_fetch_max_wait_ms=LOCAL_FETCH_MAX_WAIT_MS,  # as every baseline's consumer
    )
    with open_warehouse(settings) as warehouse:
        migrate(warehouse)
    worker = WorkerProcess(settings, workdir / app_id / "worker.log")
    began = time.perf_counter()
    worker.start()
    try:
        seconds, first_commit = _timed_until_consumed(
            began, broker.bootstrap_servers, app_id, worker.check_alive, timeout_s
        )
    finally:
        status = worker.stop()
    if status not in (0, None):
        log.warning("pipeline worker exited with status %s", status)
    processing = None if first_commit is None else seconds - first_commit
    return Sample("pipeline", backlog.events, seconds, first_commit, processing)


def measure(
    runs: int,
    merchants: int,
    days: int,
    partitions: int,
    workdir: Path,
    seed: int = 7,
    timeout_s: float = 600.0,
) -> tuple[Backlog, list[Sample]]:
    """Publish the backlog once on a fresh broker, then run every kind ``runs`` times, interleaved
    (each run with a fresh consumer group / app id, so each reads the whole backlog)."""
    scenario = Scenario.default().resized(merchants=merchants, days=days)
    simulation = simulate(scenario, seed)
    backlog = Backlog(partitions, merchants, days)
    samples: list[Sample] = []
    with LocalBroker(log_path=workdir / "broker.log") as broker:
        create_topics(broker.bootstrap_servers, partitions)
        backlog.published = publish(simulation, broker.bootstrap_servers, progress=False)
        # tansu's end offsets run slightly below the record count (its offsets are not dense),
        # so events are counted as published records; every consumer reads all of them.
        _, backlog.end_offsets = consumer_lag(broker.bootstrap_servers, "bench-none", INPUT_TOPICS)
        log.info("backlog: %d input events (%s)", backlog.events, backlog.published)
        for i in range(runs):
            for kind in KINDS:
                if kind == "pipeline":
                    sample = run_pipeline(broker, backlog, workdir, timeout_s)
                else:
                    sample = run_baseline(kind, broker, backlog, workdir, timeout_s)
                log.info(
                    "run %d %s: %.0f events/s (%.1f s)", i + 1, kind, sample.eps, sample.seconds
                )
                samples.append(sample)
    return backlog, samples
