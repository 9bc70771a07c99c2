"""`merchant-monitor verify`: recompute daily totals from the source topics, compare exactly."""

from __future__ import annotations

import click

from schemas.settings import Settings
from streams.verify import verify
from streams.warehouse import open_warehouse


@click.command("verify")
@click.option("--quiet", is_flag=True, help="No progress line.")
@click.pass_obj
def command(settings: Settings, quiet: bool) -> None:
    """Check that the warehouse counts every source record exactly once.

    Reads pos.transactions.v1 and account.transactions.v1 from the beginning (MONITOR_BROKER_URL),
    validates each record as the worker does, leaves out the records the worker dead-lettered,
    counts a repeated transaction id once, and compares the per-merchant, per-day sums with
    merchant_daily (MONITOR_WAREHOUSE_URL, or the embedded warehouse under MONITOR_DATA_DIR;
    stop the workers first when it is embedded). Then checks that no alert, task or limit
    version was written twice. Exits with status 1 when anything differs.
    """
    with open_warehouse(settings) as warehouse:
        result = verify(
            settings.bootstrap_servers, warehouse, settings.business_timezone, not quiet
        )
    for line in result.lines():
        click.echo(line)
    if not result.ok:
        raise click.exceptions.Exit(1)
