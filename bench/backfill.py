"""`python -m bench.backfill`: backfill events/s against the worker replaying the same history.

One simulated history (default 500 merchants x 60 days, seed 7) is written to Parquet files and
published once to a local broker. The backfill (`streams.backfill.backfill`, through the last
simulated day, writing the bootstrap files and the embedded warehouse) and the worker's replay
of the whole backlog (`bench.throughput.run_pipeline`, the headline interval of `make bench`)
are timed ``--runs`` times each; medians and their ratio are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path

from bench.common import standalone
from bench.throughput import Backlog, run_pipeline
from detectors.features import FeatureParams
from schemas import topics
from schemas.settings import Settings
from streams.backfill import backfill
from streams.broker import LocalBroker, create_topics
from streams.migrations import migrate
from streams.sim import Scenario, simulate
from streams.sim.files import topic_file
from streams.sim.publish import publish
from streams.warehouse import open_warehouse

log = logging.getLogger("bench.backfill")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__)
    parser.add_argument("--merchants", type=int, default=500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path(".merchant-monitor/bench-backfill"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    workdir = standalone(log, args.workdir)

    simulation = simulate(Scenario.default().resized(merchants=args.merchants, days=args.days), 7)
    files = workdir / "sim"
    simulation.write(files)
    pos = [files / topic_file(topics.POS_TRANSACTIONS)]
    acct = [files / topic_file(topics.ACCOUNT_TRANSACTIONS)]

    backfill_eps: list[float] = []
    events = 0
    for i in range(args.runs):
        settings = Settings(data_dir=workdir / f"backfill-{i}")
        with open_warehouse(settings) as warehouse:
            migrate(warehouse)
            report = backfill(
                pos,
                acct,
                simulation.end,
                workdir / f"bootstrap-{i}",
                FeatureParams.from_settings(settings),
                insert=warehouse.insert,
                progress=False,
            )
        events = report.events
        backfill_eps.append(report.events_per_s)
        log.info(
            "run %d backfill: %d events in %.1f s (load %.1f, run %.1f, writes %.1f): %.0f/s",
            i + 1,
            report.events,
            report.seconds,
            report.load_seconds,
            report.run_seconds,
            report.write_seconds,
            report.events_per_s,
        )

    worker_eps: list[float] = []
    backlog = Backlog(args.partitions, args.merchants, args.days)
    with LocalBroker(log_path=workdir / "broker.log") as broker:
        create_topics(broker.bootstrap_servers, args.partitions)
        backlog.published = publish(simulation, broker.bootstrap_servers, progress=False)
        for i in range(args.runs):
            sample = run_pipeline(broker, backlog, workdir, timeout_s=900.0)
            worker_eps.append(sample.eps)
            log.info(
                "run %d worker replay: %.0f events/s (%.1f s)", i + 1, sample.eps, sample.seconds
            )

    backfill_median = statistics.median(backfill_eps)
    worker_median = statistics.median(worker_eps)
    result = {
        "merchants": args.merchants,
        "days": args.days,
        "events_backfill": events,
        "events_worker": backlog.events,
        "backfill_eps": [round(x) for x in backfill_eps],
        "worker_replay_eps": [round(x) for x in worker_eps],
        "backfill_eps_median": round(backfill_median),
        "worker_replay_eps_median": round(worker_median),
        "ratio": round(backfill_median / worker_median, 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
