"""`merchant-monitor backfill`: history files in process -> a worker's starting state."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import click

from detectors.actions import ActionParams
from detectors.features import FeatureParams
from schemas.settings import Settings
from streams.backfill import backfill
from streams.backtest import write_bad_rows
from streams.commands.options import business_day, history_options
from streams.migrations import check_migrated
from streams.warehouse import open_warehouse

log = logging.getLogger(__name__)


@click.command("backfill")
@history_options
@click.option(
    "--through",
    required=True,
    callback=business_day,
    help="Last business day to backfill (YYYY-MM-DD or YYYYMMDD); later events are ignored "
    "and counted. The files must hold every event up to it.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for bootstrap.parquet, detector-models.bin and manifest.json "
    "(give it to workers as MONITOR_BOOTSTRAP_DIR).",
)
@click.option(
    "--warehouse/--no-warehouse",
    default=True,
    show_default=True,
    help="Also write the closed days, alerts and model metrics to the warehouse of the "
    "settings (MONITOR_WAREHOUSE_URL, or the embedded one under MONITOR_DATA_DIR), which "
    "must be migrated.",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Bad rows (file, line, reason, detail) [default: <out>/rejects.csv].",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show a progress line on stderr.",
)
@click.pass_obj
def command(
    settings: Settings,
    pos_files: tuple[Path, ...],
    account_files: tuple[Path, ...],
    through: date,
    out: Path,
    warehouse: bool,
    rejects: Path | None,
    progress: bool,
) -> None:
    """Bootstrap the workers' state from history files, much faster than replaying them
    through the broker.

    Applies every event up to the end of --through in process, closes every merchant's days
    through it (silent days too), runs the detectors on each closed day as a worker does, and
    writes the final feature and detector states and the learned models to --out. A worker
    started with MONITOR_BOOTSTRAP_DIR=<out> seeds its tables from them and skips source
    events of days up to --through, so nothing counts twice (docs/backfill.md). File formats
    as for `backtest`; bad rows are reported with file and line, never silently dropped.

    \b
    Example:
      merchant-monitor backfill --pos pos.parquet --accounts acct.parquet \\
          --through 2026-03-31 --out bootstrap/
    """
    params = FeatureParams.from_settings(settings)
    store = open_warehouse(settings) if warehouse else None
    try:
        if store is not None:
            check_migrated(store)
        report = backfill(
            list(pos_files),
            list(account_files),
            through,
            out,
            params,
            insert=store.insert if store is not None else None,
            progress=progress,
            action_params=ActionParams.from_settings(settings),
        )
    finally:
        if store is not None:
            store.close()
    rejects_path = rejects or out / "rejects.csv"
    if report.bad_rows:
        write_bad_rows(report.bad_rows, rejects_path)
        for b in report.bad_rows[:20]:
            click.echo(f"{b.file}:{b.line}: {b.reason}: {b.detail}", err=True)
    click.echo(
        f"rows read {report.rows_read:,}; bad rows {len(report.bad_rows):,}"
        + (f" (see {rejects_path})" if report.bad_rows else "")
        + f"; events through {through} {report.events:,} (after it, ignored: "
        f"{report.events_after_through:,}); merchants {report.merchants:,}; "
        f"merchant-days closed {report.merchant_days:,}; alerts {report.alerts:,}"
    )
    click.echo(
        f"{report.events_per_s:,.0f} events/s (load {report.load_seconds:.2f} s, run "
        f"{report.run_seconds:.2f} s, writes {report.write_seconds:.2f} s); "
        + (f"warehouse rows {report.rows_written:,}; " if warehouse else "warehouse skipped; ")
        + f"bootstrap written to {out} (MONITOR_BOOTSTRAP_DIR={out})"
    )
