"""Latency at fixed publication rates: from the event that made a merchant-day closable to the
moment that day's alert row is in the warehouse.

A run: one broker, one worker (bench/recording_worker.py: the real worker with its warehouse
writes time-stamped), a warm-up backlog (the first ``warm_days`` of a simulated population,
published unpaced and consumed, so the detectors have history and raise alerts), then the next
events of the same population published in event-time order at each fixed rate for ``seconds``
(1,000 events/s, then 5,000 events/s; the worker catches up in between).

Definition (docs/benchmarks.md): a merchant-day D of partition p can close once the partition's
watermark reaches business day D + lateness + 1, and the watermark is the event time reached by
*both* input topics of the partition (docs/worker.md). The event that made D closable is
therefore the later of (first POS event of p at or past that day, first account event of p at
or past that day), in publication order; its publication time is its Kafka timestamp (set by the
producer when `publish` hands it over). The latency of an alert row is the instant the
warehouse insert holding it returned, minus that publication time. Alerts whose trigger was
published inside a rate's publishing window count for that rate.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    migrated,
    read_topics,
    simulation_for,
    standalone,
    stop_child,
    summary_ms,
    worker_settings,
)
from bench.recording_worker import CLOSED
from detectors.features import BusinessCalendar, FeatureParams
from schemas import topics
from schemas.settings import Settings
from streams.broker import LocalBroker, create_topics
from streams.runner import WorkerProcess, settings_env, wait_until_consumed
from streams.sim.payloads import Message
from streams.sim.publish import publish

log = logging.getLogger(__name__)

INPUT_TOPICS = (topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS)
RATES = (1000, 5000)


# -- pure part: when did a day become closable, and how long until its row was written ----------


class Reached:
    """For each input topic-partition, when (publication time) each business day was reached.

    ``add`` takes the records of one topic-partition in offset order; ``first(topic, p, day)``
    is the publication time of the first record at or past ``day`` (None if never).

    >>> r = Reached()
    >>> for ts, day in [(1.0, 10), (2.0, 10), (3.0, 12), (4.0, 11)]:
    ...     r.add("pos", 0, ts, day)
    >>> r.first("pos", 0, 11), r.first("pos", 0, 12), r.first("pos", 0, 13)
    (3.0, 3.0, None)
    """

    def __init__(self) -> None:
        self._days: dict[tuple[str, int], list[int]] = {}
        self._times: dict[tuple[str, int], list[float]] = {}

    def add(self, topic: str, partition: int, ts_s: float, day: int) -> None:
        days = self._days.setdefault((topic, partition), [])
        if not days or day > days[-1]:
            days.append(day)
            self._times.setdefault((topic, partition), []).append(ts_s)

    def first(self, topic: str, partition: int, day: int) -> float | None:
        days = self._days.get((topic, partition), [])
        i = bisect.bisect_left(days, day)
        return self._times[(topic, partition)][i] if i < len(days) else None


def closable_at(
    reached: Reached, partition: int, day: int, lateness_days: int
) -> tuple[float, float] | None:
    """(first, last) publication time at which an input of ``partition`` reached the day that
    closes ``day``; the last one made it closable. None if an input never reached it."""
    times = [reached.first(t, partition, day + lateness_days + 1) for t in INPUT_TOPICS]
    if any(t is None for t in times):
        return None
    present = [t for t in times if t is not None]
    return min(present), max(present)


@dataclass(frozen=True)
class Written:
    """A row that reached the warehouse (or a topic) at ``t``, for merchant-day ``day``."""

    t: float
    merchant_id: str
    day: int
    key: tuple[Any, ...]


def latencies(
    written: Iterable[Written],
    reached: Reached,
    partition_of: Mapping[str, int],
    lateness_days: int,
    window: tuple[float, float],
    from_first: bool = False,
) -> list[float]:
    """Seconds from the trigger (published inside ``window``) to each row's first write."""
    first_write: dict[tuple[Any, ...], Written] = {}
    for w in written:
        if w.key not in first_write or w.t < first_write[w.key].t:
            first_write[w.key] = w
    out = []
    for w in first_write.values():
        partition = partition_of.get(w.merchant_id)
        if partition is None:
            continue
        trigger = closable_at(reached, partition, w.day, lateness_days)
        if trigger is None:
            continue
        at = trigger[0] if from_first else trigger[1]
        if window[0] <= at <= window[1]:
            out.append(w.t - at)
    return out


# -- reading what happened ----------------------------------------------------------------------


def read_inputs(bootstrap: list[str], calendar: BusinessCalendar) -> tuple[Reached, dict[str, int]]:
    """The business days each input topic-partition reached, and each merchant's partition."""
    records = read_topics(bootstrap, INPUT_TOPICS)
    records.sort(key=lambda r: (r.topic, r.partition, r.offset))
    reached = Reached()
    partition_of: dict[str, int] = {}
    for r in records:
        event_time = datetime.fromisoformat(orjson.loads(r.value)["event_time"])
        reached.add(r.topic, r.partition, r.timestamp / 1000.0, calendar.day_of(event_time))
        partition_of[r.key.decode()] = r.partition
    return reached, partition_of


def read_alert_topic(bootstrap: list[str]) -> list[Written]:
    out = []
    for r in read_topics(bootstrap, [topics.MERCHANT_ALERTS]):
        doc = orjson.loads(r.value)
        day = BusinessCalendar.day_of_date(date.fromisoformat(doc["as_of_date"]))
        key = (doc["merchant_id"], doc["alert_id"], doc["version"])
        out.append(Written(r.timestamp / 1000.0, doc["merchant_id"], day, key))
    return out


@dataclass
class Recording:
    """What bench.recording_worker noted: alert rows and closed-day rows with the time their
    insert returned, and when each (partition, business day) first closed."""

    alert_rows: list[Written] = field(default_factory=list)
    day_rows: list[Written] = field(default_factory=list)
    closed: dict[tuple[int, int], float] = field(default_factory=dict)


def read_recording(path: Path) -> Recording:
    out = Recording()
    if not path.exists():
        return out
    for line in path.read_bytes().splitlines():
        doc = orjson.loads(line)
        if doc["table"] == CLOSED:
            for partition, day in doc["keys"]:
                out.closed.setdefault((partition, day), doc["t"])
            continue
        target = out.alert_rows if doc["table"] == "alerts" else out.day_rows
        for key in doc["keys"]:
            day = BusinessCalendar.day_of_date(date.fromisoformat(key[1]))
            target.append(Written(doc["t"], key[0], day, tuple(key)))
    return out


def close_latencies(
    closed: Mapping[tuple[int, int], float],
    reached: Reached,
    lateness_days: int,
    window: tuple[float, float],
) -> list[float]:
    """Seconds from the trigger (published inside ``window``) to the close on its partition."""
    out = []
    for (partition, day), t in closed.items():
        trigger = closable_at(reached, partition, day, lateness_days)
        if trigger is not None and window[0] <= trigger[1] <= window[1]:
            out.append(t - trigger[1])
    return out


# -- running it ------------------------------------------------------------------------------


class RecordingWorkerProcess(WorkerProcess):
    """WorkerProcess running bench.recording_worker (the worker plus insert times)."""

    def __init__(self, settings: Settings, log_path: Path, record_path: Path) -> None:
        super().__init__(settings, log_path)
        self.record_path = record_path

    def start(self) -> RecordingWorkerProcess:
        env = {**os.environ, **settings_env(self.settings)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
                [sys.executable, "-m", "bench.recording_worker", str(self.record_path)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self


@dataclass
class Phase:
    rate_eps: int
    messages: list[Message]
    started: float = 0.0
    ended: float = 0.0
    caught_up_s: float = 0.0
    input_events: int = 0

    @property
    def achieved_eps(self) -> float:
        return self.input_events / max(self.ended - self.started, 1e-9)


@dataclass
class LatencyRun:
    """One run's figures per rate (keys: the rate as a string)."""

    by_rate: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_once(
    merchants: int,
    warm_days: int,
    seconds: float,
    partitions: int,
    flush_s: float,
    workdir: Path,
    rates: tuple[int, ...] = RATES,
    seed: int = 7,
    timeout_s: float = 600.0,
    fetch_wait_ms: int | None = None,
) -> LatencyRun:
    sizes = [int(rate * seconds) for rate in rates]
    _, warm, tail = simulation_for(merchants, warm_days, sum(sizes), seed)
    chunks = [tail[sum(sizes[:i]) : sum(sizes[: i + 1])] for i in range(len(sizes))]
    app_id = f"bench-latency-{uuid.uuid4().hex[:8]}"
    run_dir = workdir / app_id
    with LocalBroker(log_path=run_dir / "broker.log") as broker:
        create_topics(broker.bootstrap_servers, partitions)
        settings = migrated(
            worker_settings(
                broker.url,
                run_dir,
                app_id,
                partitions,
                sink_flush_interval_s=flush_s,
                **({"consumer_fetch_max_wait_ms": fetch_wait_ms} if fetch_wait_ms else {}),
            )
        )
        calendar = FeatureParams.from_settings(settings).calendar
        phases = [Phase(rate, chunk) for rate, chunk in zip(rates, chunks, strict=True)]
        record = run_dir / "written.jsonl"
        worker = RecordingWorkerProcess(settings, run_dir / "worker.log", record)
        worker.start()
        probe = _start_probe(broker, run_dir, settings.consumer_fetch_max_wait_ms)
        try:
            publish(warm, broker.bootstrap_servers, progress=False)
            _wait(broker, settings, worker, timeout_s)
            log.info("latency: warm-up of %d messages consumed", len(warm))
            time.sleep(flush_s + 1.0)
            for phase in phases:
                phase.started = time.time()
                counts = publish(
                    phase.messages,
                    broker.bootstrap_servers,
                    rate_eps=phase.rate_eps,
                    progress=False,
                )
                phase.ended = time.time()
                phase.input_events = sum(counts.get(t, 0) for t in INPUT_TOPICS)
                _wait(broker, settings, worker, timeout_s)
                phase.caught_up_s = time.time() - phase.ended
                log.info(
                    "latency: %d events/s phase published %d input events at %.0f/s; "
                    "worker caught up %.1f s after the last",
                    phase.rate_eps,
                    phase.input_events,
                    phase.achieved_eps,
                    phase.caught_up_s,
                )
                # every day made closable in the phase is now closed: let its rows be written
                time.sleep(2 * flush_s + 1.0)
        finally:
            status = worker.stop()
            stop_child(probe)
        if status not in (0, None):
            log.warning("latency worker exited with status %s; see %s", status, worker.log_path)
        reached, partition_of = read_inputs(broker.bootstrap_servers, calendar)
        on_topic = read_alert_topic(broker.bootstrap_servers)
    recording = read_recording(record)
    probe_path = run_dir / "probe.json"
    delivered = json.loads(probe_path.read_text()) if probe_path.exists() else []
    lateness = settings.lateness_days
    result = LatencyRun()
    for phase in phases:
        window = (phase.started, phase.ended)

        def lat(
            rows: list[Written], first: bool = False, w: tuple[float, float] = window
        ) -> dict[str, Any]:
            return summary_ms(latencies(rows, reached, partition_of, lateness, w, first))

        result.by_rate[str(phase.rate_eps)] = {
            "alert_row": lat(recording.alert_rows),
            "alert_row_from_first_input": lat(recording.alert_rows, first=True),
            "alert_topic": lat(on_topic),
            "closed_day_row": lat(recording.day_rows),
            "broker_delivery": summary_ms(
                [d for ts, d in delivered if window[0] <= ts <= window[1]]
            ),
            "day_closed": summary_ms(close_latencies(recording.closed, reached, lateness, window)),
            "achieved_input_eps": round(phase.achieved_eps, 1),
            "publish_s": round(phase.ended - phase.started, 2),
            "caught_up_after_publish_s": round(phase.caught_up_s, 2),
        }
    return result


def _start_probe(broker: LocalBroker, run_dir: Path, fetch_wait_ms: int) -> subprocess.Popen[bytes]:
    """The broker-only delivery probe (bench/children.py) in a child process, with the
    worker's fetch wait."""
    command = [
        sys.executable,
        "-m",
        "bench.children",
        "delivery_probe",
        "--bootstrap",
        broker.bootstrap_servers[0],
        "--group",
        f"bench-probe-{uuid.uuid4().hex[:8]}",
        "--topics",
        *INPUT_TOPICS,
        "--stats",
        str(run_dir / "probe.json"),
        "--fetch-wait-ms",
        str(fetch_wait_ms),
    ]
    with (run_dir / "probe.log").open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own module, fixed argv
            command, stdout=out, stderr=subprocess.STDOUT
        )


def _wait(broker: LocalBroker, settings: Settings, worker: WorkerProcess, timeout_s: float) -> None:
    wait_until_consumed(
        broker.bootstrap_servers,
        settings.app_id,
        INPUT_TOPICS,
        timeout_s,
        alive=worker.check_alive,
        poll_s=0.2,
    )


def measure(
    runs: int,
    merchants: int,
    warm_days: int,
    seconds: float,
    partitions: int,
    flush_s: float,
    workdir: Path,
    fetch_wait_ms: int | None = None,
) -> list[LatencyRun]:
    results = []
    for i in range(runs):
        result = run_once(
            merchants, warm_days, seconds, partitions, flush_s, workdir, fetch_wait_ms=fetch_wait_ms
        )
        for rate, figures in result.by_rate.items():
            log.info(
                "run %d latency at %s events/s: alert rows %s", i + 1, rate, figures["alert_row"]
            )
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.latency`: one part of `make bench` on its own; prints JSON."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--merchants", type=int, default=500)
    parser.add_argument("--warm-days", type=int, default=14)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--flush-interval", type=float, default=1.0)
    parser.add_argument("--fetch-wait-ms", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=Path(".merchant-monitor/bench-latency"))
    args = parser.parse_args(argv)
    workdir = standalone(log, args.workdir)
    results = measure(
        args.runs,
        args.merchants,
        args.warm_days,
        args.seconds,
        args.partitions,
        args.flush_interval,
        workdir,
        args.fetch_wait_ms,
    )
    print(json.dumps([r.by_rate for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
