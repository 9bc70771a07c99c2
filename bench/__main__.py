"""`python -m bench [--quick]`: measure everything in one run; write bench.json and the docs.

Throughput (bench/throughput.py), in-process figures (bench/offline.py), then latency at fixed
rates (bench/latency.py), the limit API (bench/api.py) and scale-out (bench/scaleout.py); each
of the last three can fail without losing the other figures (its key is then null, with why).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import api, latency, offline, report, scaleout
from bench.common import standalone
from bench.throughput import KINDS, measure
from schemas import topics
from schemas.settings import Settings

log = logging.getLogger("bench")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run of each, smaller backlog")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement [3; 1 quick]")
    parser.add_argument("--merchants", type=int, default=None, help="[500; 100 quick]")
    parser.add_argument("--days", type=int, default=None, help="[60; 30 quick]")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--warehouse-rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--workdir", type=Path, default=Path(".merchant-monitor/bench"))
    extras = parser.add_argument_group("latency, limit API and scale-out")
    extras.add_argument("--latency-merchants", type=int, default=None, help="[500; 100 quick]")
    extras.add_argument("--latency-warm-days", type=int, default=None, help="[21; 12 quick]")
    extras.add_argument(
        "--latency-seconds", type=float, default=None, help="per rate [30; 8 quick]"
    )
    extras.add_argument(
        "--flush-interval", type=float, default=1.0, help="MONITOR_SINK_FLUSH_INTERVAL_S [1.0]"
    )
    extras.add_argument("--api-merchants", type=int, default=None, help="[500; 100 quick]")
    extras.add_argument("--api-days", type=int, default=None, help="[60; 40 quick]")
    extras.add_argument("--api-rate", type=float, default=500.0, help="requests/s [500]")
    extras.add_argument("--api-seconds", type=float, default=None, help="per run [20; 5 quick]")
    extras.add_argument(
        "--api-load-eps", type=float, default=1000.0, help="stream under load; 0: none [1000]"
    )
    extras.add_argument("--scale-merchants", type=int, default=None, help="[--merchants]")
    extras.add_argument("--scale-days", type=int, default=None, help="[--days]")
    extras.add_argument("--scale-partitions", type=int, default=8)
    args = parser.parse_args(argv)
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.merchants = args.merchants or (100 if quick else 500)
    args.days = args.days or (30 if quick else 60)
    args.latency_merchants = args.latency_merchants or (100 if quick else 500)
    args.latency_warm_days = args.latency_warm_days or (12 if quick else 21)
    args.latency_seconds = args.latency_seconds or (8.0 if quick else 30.0)
    args.api_merchants = args.api_merchants or (100 if quick else 500)
    args.api_days = args.api_days or (40 if quick else 60)
    args.api_seconds = args.api_seconds or (5.0 if quick else 20.0)
    args.scale_merchants = args.scale_merchants or args.merchants
    args.scale_days = args.scale_days or args.days
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    workdir = standalone(logging.getLogger("bench"), args.workdir)
    started = datetime.now(UTC)
    loadavg_start = os.getloadavg()[0]

    backlog, samples = measure(args.runs, args.merchants, args.days, args.partitions, workdir)
    throughput = {k: [s.eps for s in samples if s.kind == k] for k in KINDS}
    processing = {
        k: [s.events / s.processing_s for s in samples if s.kind == k and s.processing_s]
        for k in KINDS
    }

    simulator, backtest, backtest_one = [], [], []
    backtest_jobs = 1
    for i in range(args.runs):
        files = workdir / "sim"
        events, seconds = offline.simulator_run(args.merchants, args.days, files)
        simulator.append(events / seconds)
        events, seconds, backtest_jobs = offline.backtest_run(files)
        backtest.append(events / seconds)
        events, seconds, _ = offline.backtest_run(files, jobs=1)
        backtest_one.append(events / seconds)
        log.info(
            "run %d simulator %.0f events/s, backtest %.0f events/s (%d feature processes; "
            "%.0f in one)",
            i + 1,
            simulator[-1],
            backtest[-1],
            backtest_jobs,
            backtest_one[-1],
        )

    reasons: dict[str, str] = {}
    state_bytes: list[int] | None = None
    try:
        state_bytes = offline.state_sizes(args.merchants, args.days)
    except Exception as exc:  # a failed extra must not lose the throughput figures
        log.exception("state size measurement failed")
        reasons["state_bytes_per_merchant"] = f"not measured: failed ({type(exc).__name__})"

    warehouse: list[float] | None = None
    try:
        pipeline_dir = next(workdir.glob("bench-pipeline-*"))
        template = offline.daily_rows(pipeline_dir)
        warehouse = [
            args.warehouse_rows
            / offline.warehouse_run(template, args.warehouse_rows, workdir / "wh")
            for _ in range(args.runs)
        ]
    except Exception as exc:
        log.exception("warehouse measurement failed")
        reasons["warehouse_rows_per_s"] = f"not measured: failed ({type(exc).__name__})"

    extras = run_extras(args, workdir, reasons)

    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "backtest_jobs": backtest_jobs,
        "python": platform.python_version(),
        # The flags only: output paths may lie outside the repository and are not recorded.
        "command": "python -m bench" + (" --quick" if args.quick else ""),
        "runs": args.runs,
        "merchants": args.merchants,
        "days": args.days,
        "partitions": args.partitions,
        "events": backlog.events,
        "pos_events": backlog.published.get(topics.POS_TRANSACTIONS, 0),
        "account_events": backlog.published.get(topics.ACCOUNT_TRANSACTIONS, 0),
        "warehouse_rows": args.warehouse_rows,
        "loadavg": [round(loadavg_start, 2), round(os.getloadavg()[0], 2)],
        "latency": {
            "merchants": args.latency_merchants,
            "warm_days": args.latency_warm_days,
            "seconds": args.latency_seconds,
            "flush_interval_s": args.flush_interval,
            "state_write_interval_s": Settings.model_fields["state_write_interval_s"].default,
            "partitions": args.partitions,
        },
        "api": {
            "merchants": args.api_merchants,
            "days": args.api_days,
            "rate": args.api_rate,
            "seconds": args.api_seconds,
            "load_eps": args.api_load_eps or None,
        },
        "scale_out": {
            "merchants": args.scale_merchants,
            "days": args.scale_days,
            "partitions": args.scale_partitions,
            "events": extras.get("scale_events"),
        },
        "wall_minutes": round((datetime.now(UTC) - started).total_seconds() / 60, 1),
    }
    doc = report.build(
        meta,
        throughput,
        processing,
        backtest,
        simulator,
        state_bytes,
        warehouse,
        reasons,
        latency=extras.get("latency"),
        api=extras.get("api"),
        scale_out=extras.get("scale_out"),
        tables=extras.get("tables"),
        backtest_one_process=backtest_one,
    )
    report.write(doc, args.out, args.doc)
    log.info("wrote %s and %s", args.out, args.doc)
    return 0


def _failed(exc: Exception) -> str:
    # The type only: messages may name paths outside the repository (the log has the rest).
    return f"not measured: failed ({type(exc).__name__}; see the log of `python -m bench`)"


def run_extras(args: argparse.Namespace, workdir: Path, reasons: dict[str, str]) -> dict[str, Any]:
    """Latency, limit API and scale-out; a failed one leaves a reason and the others run."""
    out: dict[str, Any] = {}
    try:
        runs = latency.measure(
            args.runs,
            args.latency_merchants,
            args.latency_warm_days,
            args.latency_seconds,
            args.partitions,
            args.flush_interval,
            workdir / "latency",
        )
        out["latency"] = [r.by_rate for r in runs]
    except Exception as exc:
        log.exception("latency measurement failed")
        reasons["latency_ms"] = _failed(exc)
    try:
        by_condition, out["tables"] = api.measure(
            args.runs,
            args.api_merchants,
            args.api_days,
            args.api_rate,
            args.api_seconds,
            args.partitions,
            workdir / "api",
            load_eps=args.api_load_eps or None,
        )
        out["api"] = {
            condition: [r.figures() for r in results] for condition, results in by_condition.items()
        }
    except Exception as exc:
        log.exception("limit API measurement failed")
        reasons["limit_api_ms"] = _failed(exc)
    try:
        pairs = scaleout.measure(
            args.runs,
            args.scale_merchants,
            args.scale_days,
            args.scale_partitions,
            workdir / "scaleout",
        )
        out["scale_events"] = pairs[0][0].events
        out["scale_out"] = [
            {
                "one_eps": round(one.eps, 1),
                "two_eps": round(two.eps, 1),
                "publish_s": [round(one.publish_s, 2), round(two.publish_s, 2)],
                "check": two.check.as_dict() if two.check else {"correct": None},
            }
            for one, two in pairs
        ]
    except Exception as exc:
        log.exception("scale-out measurement failed")
        reasons["scale_out"] = _failed(exc)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
