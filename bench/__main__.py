"""`python -m bench [--quick]`: measure everything in one run; write bench.json and the docs."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import offline, report
from bench.throughput import KINDS, measure
from schemas import topics

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
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.merchants = args.merchants or (100 if args.quick else 500)
    args.days = args.days or (30 if args.quick else 60)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("bench").setLevel(logging.INFO)
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = datetime.now(UTC)

    backlog, samples = measure(args.runs, args.merchants, args.days, args.partitions, workdir)
    throughput = {k: [s.eps for s in samples if s.kind == k] for k in KINDS}
    processing = {
        k: [s.events / s.processing_s for s in samples if s.kind == k and s.processing_s]
        for k in KINDS
    }

    simulator, backtest = [], []
    for i in range(args.runs):
        files = workdir / "sim"
        events, seconds = offline.simulator_run(args.merchants, args.days, files)
        simulator.append(events / seconds)
        events, seconds = offline.backtest_run(files)
        backtest.append(events / seconds)
        log.info(
            "run %d simulator %.0f events/s, backtest %.0f events/s",
            i + 1,
            *simulator[-1:],
            *backtest[-1:],
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

    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
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
        "wall_minutes": round((datetime.now(UTC) - started).total_seconds() / 60, 1),
    }
    doc = report.build(
        meta, throughput, processing, backtest, simulator, state_bytes, warehouse, reasons
    )
    report.write(doc, args.out, args.doc)
    log.info("wrote %s and %s", args.out, args.doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
