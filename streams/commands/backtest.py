"""`merchant-monitor backtest`: history files in process -> scores.csv as of a date."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import click

from detectors.pipeline import MonitorParams
from schemas.settings import Settings
from streams.backtest import backtest, write_bad_rows, write_scores
from streams.commands.options import business_day, history_options

log = logging.getLogger(__name__)


@click.command("backtest")
@history_options
@click.option(
    "--as-of",
    "as_of",
    required=True,
    callback=business_day,
    help="Score as of the end of this business day (YYYY-MM-DD or YYYYMMDD).",
)
@click.option(
    "--horizon-days",
    type=click.IntRange(1, 60),
    default=30,
    show_default=True,
    help="p_inactive: probability of no POS sale in this many days after as-of.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("scores.csv"),
    show_default=True,
    help="Where scores.csv goes.",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Bad rows (file, line, reason, detail) [default: <out>.rejects.csv].",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes computing the features, each for a share of the merchants (the "
    "detectors run in the main process; the scores do not depend on it) [default: one per "
    "CPU, at most 3; 1 below 20,000 events].",
)
@click.pass_obj
def command(
    settings: Settings,
    pos_files: tuple[Path, ...],
    account_files: tuple[Path, ...],
    as_of: date,
    horizon_days: int,
    out: Path,
    rejects: Path | None,
    jobs: int | None,
) -> None:
    """Score merchants from history files, without a broker.

    Minimal POS CSV: merchant_id, event_time (ISO 8601 or YYYYMMDD), amount (yuan, exact to
    the fen); kind, card_token, txn_id are used when present. Bad rows are reported with file
    and line and counted, never silently dropped.

    \b
    Example:
      merchant-monitor backtest --pos pos.csv --as-of 2026-03-31 --horizon-days 30 --out s.csv
    """
    del settings
    # Features every 14th day per merchant are enough samples to learn from (and fast).
    stride = 14 if horizon_days >= 14 else 1
    params = MonitorParams(horizon_days=horizon_days, label_stride_days=stride)
    scores, report = backtest(list(pos_files), list(account_files), as_of, params, jobs=jobs)
    write_scores(scores, as_of, out)
    rejects_path = rejects or out.with_suffix(".rejects.csv")
    if report.bad_rows:
        write_bad_rows(report.bad_rows, rejects_path)
        for b in report.bad_rows[:20]:
            click.echo(f"{b.file}:{b.line}: {b.reason}: {b.detail}", err=True)
    click.echo(
        f"rows read {report.rows_read:,}; bad rows {len(report.bad_rows):,}"
        + (f" (see {rejects_path})" if report.bad_rows else "")
        + f"; events up to as-of {report.events:,} (after it, ignored: "
        f"{report.events_after_as_of:,}); merchants scored {report.merchants_scored:,}"
        f" (no history by as-of: {report.merchants_without_history:,})"
    )
    click.echo(
        f"{report.events_per_s:,.0f} events/s (load {report.load_seconds:.2f} s, run "
        f"{report.run_seconds:.2f} s, {report.merchant_days:,} merchant-days, "
        f"{report.feature_days:,} with features, {report.jobs} feature process"
        f"{'es' if report.jobs > 1 else ''}); scores written to {out}"
    )
