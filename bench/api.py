"""Limit API latency: `GET /merchants/{id}/limit` driven open-loop at a fixed request rate.

A worker with its HTTP API on consumes a simulated backlog (so most merchants have a limit in its
`pos-loan-limit` table); then requests are sent at a fixed rate for ``seconds`` per run, spread
uniformly at random over the simulated merchants plus a share of unknown ids (404s). Open loop:
request i is due at t0 + i / rate whatever happened to the earlier ones, and its latency runs
from that due time to the end of its response, so a slow server cannot hide queueing
(coordinated omission): time a request waited for the client's event loop or a free connection
counts. Each run is measured twice: with the worker idle (backlog consumed, timers running) and
while it consumes a live stream published at ``load_eps`` by a separate process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    migrated,
    simulation_for,
    standalone,
    stop_child,
    summary_ms,
    worker_settings,
)
from bench.tables import changelog_sizes
from schemas import topics
from streams.broker import LocalBroker, create_topics, free_port
from streams.runner import WorkerProcess, wait_until_consumed
from streams.sim import Scenario, simulate
from streams.sim.publish import publish

log = logging.getLogger(__name__)

INPUT_TOPICS = (topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS)
#: Share of requests for merchant ids that do not exist (answered 404).
UNKNOWN_SHARE = 0.05
#: Requests sent (and not recorded) before the first run, to open connections.
WARMUP_S = 2.0
#: Seconds the load publisher runs before a loaded run starts (it simulates first).
LOAD_LEAD_S = 4.0


@dataclass
class Outcome:
    due: float
    latency_s: float
    status: int  # HTTP status; 0 for a client-side error (refused, reset, timeout)
    send_lag_s: float  # how late the client started the request (its own health)


@dataclass
class ApiRun:
    """One open-loop run: every request's outcome, and the requested rate and duration."""

    rate: float
    seconds: float
    #: events/s the worker was consuming meanwhile (None: idle)
    load_eps: float | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        answered = [o.latency_s for o in self.outcomes if o.status]
        statuses = Counter(str(o.status) for o in self.outcomes if o.status)
        first = min((o.due for o in self.outcomes), default=0.0)
        last = max((o.due + o.latency_s for o in self.outcomes), default=0.0)
        lags = [o.send_lag_s for o in self.outcomes]
        return {
            **summary_ms(answered),
            "requested_rps": self.rate,
            "achieved_rps": round(len(self.outcomes) / max(last - first, 1e-9), 1),
            "status": dict(sorted(statuses.items())),
            "errors": sum(1 for o in self.outcomes if not o.status),
            "client_send_lag_p99_ms": summary_ms(lags)["p99"],
            "load_eps": self.load_eps,
        }


def request_plan(
    merchant_ids: list[str], n: int, seed: int, unknown_share: float = UNKNOWN_SHARE
) -> list[str]:
    """``n`` merchant ids, uniformly at random, about ``unknown_share`` of them unknown.

    >>> plan = request_plan(["M1", "M2"], 1000, seed=1)
    >>> len(plan), sum(p.startswith("UNKNOWN") for p in plan) in range(30, 80)
    (1000, True)
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible request mix, not a secret
    return [
        f"UNKNOWN{rng.randrange(10**6):06d}"
        if rng.random() < unknown_share
        else rng.choice(merchant_ids)
        for _ in range(n)
    ]


async def drive(
    base_url: str, token: str, plan: list[str], rate: float, record: bool = True
) -> list[Outcome]:
    """Send ``plan`` open-loop at ``rate`` requests/s; every outcome, latency from its due time."""
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=256)
    loop = asyncio.get_running_loop()
    outcomes: list[Outcome] = []

    async def one(session: aiohttp.ClientSession, merchant_id: str, due: float) -> None:
        started = loop.time()
        status = 0
        try:
            async with session.get(f"{base_url}/merchants/{merchant_id}/limit") as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        if record:
            outcomes.append(Outcome(due, loop.time() - due, status, started - due))

    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        t0 = loop.time() + 0.05
        tasks = []
        for i, merchant_id in enumerate(plan):
            due = t0 + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, merchant_id, due)))
        await asyncio.gather(*tasks)
    return outcomes


def _get_status(base_url: str, token: str, merchant_id: str) -> int:
    async def get() -> int:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.get(f"{base_url}/merchants/{merchant_id}/limit") as response,
        ):
            return response.status

    try:
        return asyncio.run(get())
    except (aiohttp.ClientError, OSError):
        return 0


def _start_load(
    log_path: Path,
    bootstrap: str,
    merchants: int,
    days: int,
    seed: int,
    skip: int,
    count: int,
    rate: float,
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "bench.api",
        "load",
        "--bootstrap",
        bootstrap,
        "--merchants",
        str(merchants),
        "--days",
        str(days),
        "--seed",
        str(seed),
        "--skip",
        str(skip),
        "--count",
        str(count),
        "--rate",
        str(rate),
    ]
    with log_path.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own module, fixed argv
            command, stdout=out, stderr=subprocess.STDOUT
        )


def measure(
    runs: int,
    merchants: int,
    days: int,
    rate: float,
    seconds: float,
    partitions: int,
    workdir: Path,
    load_eps: float | None = 1000.0,
    seed: int = 7,
    timeout_s: float = 900.0,
) -> tuple[dict[str, list[ApiRun]], dict[str, Any]]:
    """Runs per condition ("idle", and "load" when ``load_eps``), each ``seconds`` long; and the
    worker's table sizes after the backlog (bench/tables.py), measured on the way."""
    per_run = int((load_eps or 0) * (seconds + LOAD_LEAD_S + 1))
    simulation, backlog, _ = simulation_for(merchants, days, per_run * runs, seed)
    app_id = f"bench-api-{uuid.uuid4().hex[:8]}"
    run_dir = workdir / app_id
    token = secrets.token_urlsafe(24)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    results: dict[str, list[ApiRun]] = {"idle": []}
    if load_eps:
        results["load"] = []
    with LocalBroker(log_path=run_dir / "broker.log") as broker:
        create_topics(broker.bootstrap_servers, partitions)
        settings = migrated(
            worker_settings(
                broker.url,
                run_dir,
                app_id,
                partitions,
                web_enabled=True,
                web_port=port,
                api_token=token,
            )
        )
        worker = WorkerProcess(settings, run_dir / "worker.log").start()
        try:
            publish(backlog, broker.bootstrap_servers, progress=False)
            wait_until_consumed(
                broker.bootstrap_servers,
                app_id,
                INPUT_TOPICS,
                timeout_s,
                alive=worker.check_alive,
                poll_s=0.5,
            )
            _wait_for_api(base_url, token, simulation.merchant_ids, worker)
            tables = changelog_sizes(broker.bootstrap_servers, app_id)
            tables["_backlog"] = {"merchants": merchants, "days": days, "messages": len(backlog)}
            ids = simulation.merchant_ids
            n = int(rate * seconds)
            asyncio.run(
                drive(
                    base_url,
                    token,
                    request_plan(ids, int(rate * WARMUP_S), seed),
                    rate,
                    record=False,
                )
            )
            skip = len(backlog)
            for i in range(runs):
                idle = ApiRun(rate, seconds)
                idle.outcomes = asyncio.run(
                    drive(base_url, token, request_plan(ids, n, seed + i), rate)
                )
                results["idle"].append(idle)
                log.info("api run %d idle: %s", i + 1, idle.figures())
                if not load_eps:
                    continue
                load = _start_load(
                    run_dir / "load.log",
                    broker.bootstrap_servers[0],
                    merchants,
                    simulation.days,
                    seed,
                    skip,
                    per_run,
                    load_eps,
                )
                skip += per_run
                try:
                    time.sleep(LOAD_LEAD_S)  # the child simulates first; measure as it publishes
                    loaded = ApiRun(rate, seconds, load_eps)
                    loaded.outcomes = asyncio.run(
                        drive(base_url, token, request_plan(ids, n, seed + 100 + i), rate)
                    )
                    status = load.wait(timeout_s)
                finally:
                    stop_child(load)
                if status != 0:
                    raise RuntimeError(f"the load publisher exited with status {status}")
                results["load"].append(loaded)
                log.info("api run %d under load: %s", i + 1, loaded.figures())
                wait_until_consumed(
                    broker.bootstrap_servers,
                    app_id,
                    INPUT_TOPICS,
                    timeout_s,
                    alive=worker.check_alive,
                    poll_s=0.5,
                )
        finally:
            worker.stop()
    return results, tables


def _wait_for_api(
    base_url: str, token: str, merchant_ids: list[str], worker: WorkerProcess
) -> None:
    """Until the API answers 200 for some simulated merchant (web server up, limits in)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        worker.check_alive()
        if any(_get_status(base_url, token, m) == 200 for m in merchant_ids[:20]):
            return
        time.sleep(0.5)
    raise RuntimeError("the limit API did not answer 200 for any merchant within 60 s")


def load_main(argv: list[str]) -> int:
    """`python -m bench.api load ...`: publish the simulation's messages [skip, skip + count)
    at a fixed rate (the live stream of the "under load" runs)."""
    parser = argparse.ArgumentParser(prog="python -m bench.api load")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--merchants", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--skip", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    args = parser.parse_args(argv)
    simulation = simulate(
        Scenario.default().resized(merchants=args.merchants, days=args.days), args.seed
    )
    messages = list(simulation.messages())[args.skip : args.skip + args.count]
    if len(messages) < args.count:
        raise SystemExit(f"only {len(messages)} of {args.count} load messages simulated")
    publish(messages, [args.bootstrap], rate_eps=args.rate, progress=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.api`: this part of `make bench` on its own; prints JSON."""
    import json

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:
        return load_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--merchants", type=int, default=500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--load-eps", type=float, default=1000.0, help="0: idle runs only")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path(".merchant-monitor/bench-api"))
    args = parser.parse_args(argv)
    workdir = standalone(log, args.workdir)
    results, tables = measure(
        args.runs,
        args.merchants,
        args.days,
        args.rate,
        args.seconds,
        args.partitions,
        workdir,
        load_eps=args.load_eps or None,
    )
    print(
        json.dumps(
            {"api": {k: [r.figures() for r in v] for k, v in results.items()}, "tables": tables},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
