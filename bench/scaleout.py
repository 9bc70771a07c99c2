"""Scale-out: one worker against two on the same backlog (8 partitions), and exact results.

For each count of workers (1, then 2), per run: a fresh broker with every topic at
``partitions`` partitions; the workers start (same app id = consumer group, each its own data
directory and embedded warehouse, API off as in the throughput runs); once the broker reports
the group stable with every worker in it, the backlog is published and the clock runs from the
first publish until the group has committed the end of both input topics. Publishing after the
join keeps each partition with one worker from its first event (a worker joining late would take
partitions over mid-stream, which is a rebalance, not a steady state).

Then the workers are stopped together and each warehouse is opened: every merchant's
``merchant_daily`` rows must come from exactly one worker, and the two warehouses together must
reproduce the totals computed straight from the published events, exactly
(`streams.summary.expected_totals` / `warehouse_totals`, as `make demo` checks).
"""

from __future__ import annotations

import argparse
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from bench.common import migrated, standalone, worker_settings
from schemas import topics
from streams.broker import LocalBroker, create_topics, free_port
from streams.runner import WorkerProcess, wait_until_consumed
from streams.sim import Scenario, simulate
from streams.sim.publish import publish
from streams.summary import Totals, expected_totals, warehouse_totals
from streams.warehouse import open_warehouse

log = logging.getLogger(__name__)

INPUT_TOPICS = (topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS)


def group_state(bootstrap: list[str], group: str) -> tuple[str, int]:
    """(state, members) of a consumer group as the broker reports it; ("unknown", 0) if it
    cannot say. tansu answers DescribeGroups with an authorized-operations bitmask that
    kafka-python refuses to parse; that field is not needed, so its parsing is skipped."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    except KafkaError:
        return "unknown", 0
    try:
        admin._process_acl_operations = lambda doc: doc  # type: ignore[method-assign]
        described = admin.describe_groups([group]).get(group) or {}
        return str(described.get("group_state", "unknown")), len(described.get("members", []))
    except (KafkaError, ValueError, KeyError):
        return "unknown", 0
    finally:
        admin.close()


def wait_for_group(
    bootstrap: list[str], group: str, members: int, workers: list[WorkerProcess], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in workers:
            worker.check_alive()
        if group_state(bootstrap, group) == ("Stable", members):
            time.sleep(1.0)  # still stable a moment later: the assignment has settled
            if group_state(bootstrap, group) == ("Stable", members):
                return
        time.sleep(0.5)
    raise RuntimeError(f"group {group} did not become stable with {members} members")


@dataclass
class Check:
    """What each worker's warehouse holds and whether together they are exact."""

    merchants_per_worker: list[int] = field(default_factory=list)
    shared_merchants: int = 0
    alert_merchants_shared: int = 0
    totals_match: bool = False
    differences: dict[str, list[int]] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return (
            self.shared_merchants == 0
            and self.alert_merchants_shared == 0
            and self.totals_match
            and all(self.merchants_per_worker)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "correct": self.correct,
            "merchants_per_worker": self.merchants_per_worker,
            "merchants_in_both": self.shared_merchants,
            "alert_merchants_in_both": self.alert_merchants_shared,
            "totals_match": self.totals_match,
            "differences": self.differences,
        }


def check(data_dirs: list[Path], settings_of: Any, expected: Totals) -> Check:
    """Open each worker's warehouse (after the workers stopped) and compare."""
    merchant_sets: list[set[str]] = []
    alert_sets: list[set[str]] = []
    found = Totals()
    for data_dir in data_dirs:
        with open_warehouse(settings_of(data_dir)) as warehouse:
            rows = warehouse.query("SELECT DISTINCT merchant_id FROM merchant_daily")
            merchant_sets.append({r["merchant_id"] for r in rows})
            rows = warehouse.query("SELECT DISTINCT merchant_id FROM alerts")
            alert_sets.append({r["merchant_id"] for r in rows})
            part = warehouse_totals(warehouse)
        for f in fields(Totals):
            setattr(found, f.name, getattr(found, f.name) + getattr(part, f.name))
    result = Check(merchants_per_worker=[len(s) for s in merchant_sets])
    result.shared_merchants = _shared(merchant_sets)
    result.alert_merchants_shared = _shared(alert_sets)
    result.totals_match = found.matches(expected)
    result.differences = {
        f.name: [getattr(found, f.name), getattr(expected, f.name)]
        for f in fields(Totals)
        if f.name != "events" and getattr(found, f.name) != getattr(expected, f.name)
    }
    return result


def _shared(sets: list[set[str]]) -> int:
    seen: set[str] = set()
    shared: set[str] = set()
    for s in sets:
        shared |= seen & s
        seen |= s
    return len(shared)


@dataclass
class ScaleRun:
    workers: int
    events: int
    seconds: float
    publish_s: float
    check: Check | None = None

    @property
    def eps(self) -> float:
        return self.events / self.seconds


def run_once(
    workers: int,
    messages: list[Any],
    events: int,
    expected: Totals,
    partitions: int,
    workdir: Path,
    timeout_s: float,
) -> ScaleRun:
    app_id = f"bench-scale{workers}-{uuid.uuid4().hex[:8]}"
    run_dir = workdir / app_id
    with LocalBroker(log_path=run_dir / "broker.log") as broker:
        create_topics(broker.bootstrap_servers, partitions)

        def settings_of(data_dir: Path) -> Any:
            return worker_settings(broker.url, data_dir, app_id, partitions, web_port=free_port())

        data_dirs = [run_dir / f"worker-{i + 1}" for i in range(workers)]
        procs = [WorkerProcess(migrated(settings_of(d)), d / "worker.log") for d in data_dirs]
        for proc in procs:
            proc.start()

        def alive() -> None:
            for proc in procs:
                proc.check_alive()

        try:
            wait_for_group(broker.bootstrap_servers, app_id, workers, procs, 120.0)
            began = time.perf_counter()
            publish(messages, broker.bootstrap_servers, progress=False)
            published = time.perf_counter() - began
            wait_until_consumed(
                broker.bootstrap_servers, app_id, INPUT_TOPICS, timeout_s, alive=alive, poll_s=0.2
            )
            seconds = time.perf_counter() - began
            if workers > 1:
                # Events a worker holds back to align its two inputs (docs/worker.md) are
                # released once an input has been idle for MONITOR_ALIGN_IDLE_S; let that happen,
                # and the flush after it, before stopping (a held event would stall the stop).
                settings = settings_of(data_dirs[0])
                time.sleep(settings.align_idle_s + 2 * settings.sink_flush_interval_s + 2.0)
        finally:
            # Together, so that no worker takes over the other's partitions while it stops. A
            # lone worker's warehouse is not read: a held event stalling its stop costs 15 s.
            grace = 60.0 if workers > 1 else 15.0
            with ThreadPoolExecutor(len(procs)) as pool:
                statuses = list(pool.map(lambda p: p.stop(grace), procs))
        if any(s not in (0, None) for s in statuses):
            log.warning("scale-out workers exited with %s; see %s", statuses, run_dir)
    run = ScaleRun(workers, events, seconds, published)
    if workers > 1:
        run.check = check(data_dirs, settings_of, expected)
    return run


def measure(
    runs: int,
    merchants: int,
    days: int,
    partitions: int,
    workdir: Path,
    seed: int = 7,
    timeout_s: float = 900.0,
) -> list[tuple[ScaleRun, ScaleRun]]:
    """(one worker, two workers) per run, on the same backlog."""
    simulation = simulate(Scenario.default().resized(merchants=merchants, days=days), seed)
    messages = list(simulation.messages())
    expected = expected_totals(messages)
    results = []
    for i in range(runs):
        one = run_once(1, messages, expected.events, expected, partitions, workdir, timeout_s)
        two = run_once(2, messages, expected.events, expected, partitions, workdir, timeout_s)
        log.info(
            "run %d scale-out: one worker %.0f events/s, two %.0f events/s (x%.2f), %s",
            i + 1,
            one.eps,
            two.eps,
            two.eps / one.eps,
            two.check.as_dict() if two.check else None,
        )
        results.append((one, two))
    return results


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.scaleout`: this part of `make bench` on its own; prints JSON."""
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--merchants", type=int, default=500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path(".merchant-monitor/bench-scaleout"))
    args = parser.parse_args(argv)
    workdir = standalone(log, args.workdir)
    results = measure(args.runs, args.merchants, args.days, args.partitions, workdir)
    out = [
        {
            "one_eps": round(one.eps, 1),
            "two_eps": round(two.eps, 1),
            "ratio": round(two.eps / one.eps, 3),
            "publish_s": [round(one.publish_s, 2), round(two.publish_s, 2)],
            "check": two.check.as_dict() if two.check else None,
        }
        for one, two in results
    ]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
