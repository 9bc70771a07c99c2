"""`merchant-monitor replay`: publish a bank's exported POS or account history to its topic."""

from __future__ import annotations

from pathlib import Path

import click

from schemas.settings import Settings
from streams.replay import Replay, ReplayMapping, TopicChoice, write_rejects
from streams.sim.publish import publish


@click.command("replay")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="TOML column and code mapping [default: columns named as our fields, amounts in fen].",
)
@click.option(
    "--topic",
    type=click.Choice(["pos", "account"]),
    default=None,
    help="Which topic the rows are for [default: the mapping's topic].",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="At most this many messages per second [default: as fast as possible].",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("replay-rejects.csv"),
    show_default=True,
    help="Where rejected rows go (file, line, reason, detail, row).",
)
@click.option("--dry-run", is_flag=True, help="Validate and report only; publish nothing.")
@click.option("--quiet", is_flag=True, help="No progress line on stderr.")
@click.pass_obj
def command(
    settings: Settings,
    files: tuple[Path, ...],
    mapping_file: Path | None,
    topic: TopicChoice | None,
    rate: float | None,
    rejects: Path,
    dry_run: bool,
    quiet: bool,
) -> None:
    """Publish exported CSV or Parquet FILES in event-time order across files.

    Every row is validated against the topic's schema first; bad rows are reported with file
    and line, counted and written to --rejects, and the others are published to
    MONITOR_BROKER_URL keyed by merchant_id. A summary ends the run.

    \b
    Examples:
      merchant-monitor replay --topic pos pos-2025-*.csv
      merchant-monitor replay --mapping bank-pos.toml --rate 2000 export/*.parquet
    """
    mapping = ReplayMapping.load(mapping_file) if mapping_file else ReplayMapping()
    replay = Replay(files, mapping, topic)
    rejected = write_rejects(replay.check(), rejects)
    report = replay.report
    click.echo(
        f"checked {report.read:,} rows in {len(files)} file(s): {report.accepted:,} accepted, "
        f"{rejected:,} rejected" + (f" (see {rejects})" if rejected else ""),
        err=True,
    )
    if not dry_run and report.accepted:
        report.published = publish(
            replay.messages(),
            settings.bootstrap_servers,
            rate_eps=rate,
            progress=not quiet,
            total=report.accepted,
        )
    click.echo(report.summary())
    if rejected:
        click.echo(f"rejected rows: {rejects}")
