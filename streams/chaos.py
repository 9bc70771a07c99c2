"""`make chaos`: replay a history while a worker is killed (SIGKILL) and restarted, then verify.

A crash may come at any moment: mid-batch, mid-flush, between a table write and the offset
commit. What must hold afterwards is what `merchant-monitor verify` checks: every source record
counted exactly once in the warehouse, no alert, task or limit version written twice.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from schemas import topics
from schemas.settings import Settings
from streams.broker import running_broker
from streams.migrations import migrate
from streams.runner import WorkerProcess, consumer_lag, wait_until_consumed
from streams.sim import Scenario, simulate
from streams.sim.publish import publish
from streams.verify import Reconciliation, verify
from streams.warehouse import open_warehouse

log = logging.getLogger(__name__)
SOURCES = [topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS]


@dataclass
class ChaosRun:
    """What happened: when each kill came (seconds after its worker started, records left)."""

    events: int = 0
    kills: list[tuple[float, int]] = field(default_factory=list)
    seconds: float = 0.0
    result: Reconciliation | None = None


def run_chaos(
    settings: Settings,
    workdir: Path,
    *,
    merchants: int,
    days: int,
    kills: int,
    seed: int,
    store: str,
    min_life_s: float = 5.0,
    max_life_s: float = 30.0,
    progress: bool = True,
) -> ChaosRun:
    """Publish a simulated history while a worker is killed ``kills`` times at random moments
    and restarted; let the last one finish; then verify against the topics."""
    rng = random.Random(seed)  # noqa: S311 - kill times, not secrets
    run = ChaosRun()
    began = time.monotonic()
    simulation = simulate(Scenario.default().resized(merchants=merchants, days=days), seed)
    run.events = sum(n for t, n in simulation.counts().items() if t in SOURCES)
    with running_broker(settings.partitions) as broker:
        chaos = settings.model_copy(
            update={
                "broker_url": broker.url,
                "data_dir": workdir,
                "warehouse_url": None,
                "table_store": store,
                "broker_probe_end_offsets": True,
                "web_enabled": False,
                "consumer_rebalance_timeout_s": 3.0,
                "consumer_session_timeout_s": 6.0,
                "consumer_heartbeat_interval_s": 1.0,
                "commit_interval_s": 0.5,
                "sink_flush_interval_s": 0.5,
                "state_write_interval_s": 1.5,  # states every third flush: outputs run ahead
            }
        )
        with open_warehouse(chaos) as warehouse:
            migrate(warehouse)
        publisher = threading.Thread(
            target=publish,
            args=(simulation, broker.bootstrap_servers),
            kwargs={"progress": False},
            daemon=True,
        )
        publisher.start()
        for i in range(kills):
            before, _ = consumer_lag(broker.bootstrap_servers, chaos.app_id, SOURCES)
            worker = WorkerProcess(chaos, workdir / f"worker-{i + 1}.log").start()
            started = time.monotonic()
            # Kill while it works: once it has committed progress (or after a while anyway),
            # at a random moment within the next few seconds.
            while time.monotonic() - started < max_life_s:
                worker.check_alive()
                if consumer_lag(broker.bootstrap_servers, chaos.app_id, SOURCES)[0] < before:
                    break
                time.sleep(0.5)
            time.sleep(rng.uniform(0.2, min_life_s))
            left, _ = consumer_lag(broker.bootstrap_servers, chaos.app_id, SOURCES)
            worker.kill()
            life = time.monotonic() - started
            run.kills.append((life, left))
            if progress:
                log.warning(
                    "kill %d/%d: SIGKILL after %.1f s, %d records left", i + 1, kills, life, left
                )
        publisher.join()
        with WorkerProcess(chaos, workdir / "worker-final.log") as worker:
            wait_until_consumed(
                broker.bootstrap_servers,
                chaos.app_id,
                SOURCES,
                timeout_s=1800,
                alive=worker.check_alive,
                poll_s=1.0,
            )
            status = worker.stop()
            if status == -signal.SIGTERM:
                # Killed by the signal's default action: stopped before Faust took the signal
                # over, because the killed workers had already committed everything.
                log.info("the last worker was stopped while starting: nothing was left to read")
            elif status != 0:
                log.error("the last worker exited with status %s", status)
        with open_warehouse(chaos) as warehouse:
            run.result = verify(
                broker.bootstrap_servers, warehouse, chaos.business_timezone, progress
            )
    run.seconds = time.monotonic() - began
    return run
