"""`merchant-monitor report`: an HTML report of the most flagged merchants, for no Grafana."""

from __future__ import annotations

from pathlib import Path

import click

from schemas.settings import Settings
from streams.report import write_report
from streams.warehouse import open_warehouse


@click.command("report")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The HTML file to write (its directory is created if missing).",
)
@click.option(
    "--top",
    type=click.IntRange(1, 100),
    default=10,
    show_default=True,
    help="How many of the most flagged merchants to show.",
)
@click.pass_obj
def command(settings: Settings, out: Path, top: int) -> None:
    """Write a self-contained HTML report: daily turnover with alert markers and the alerts of
    the most flagged merchants, read from the warehouse. Inline SVG charts, no scripts, no
    external files: it opens in any browser and can be mailed as it is.
    """
    with open_warehouse(settings) as warehouse:
        path = write_report(warehouse, out, top_n=top, timezone=settings.business_timezone)
    click.echo(f"wrote {path}")
