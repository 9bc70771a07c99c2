"""`merchant-monitor db`: the warehouse schema (migrations)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import click

from schemas.settings import Settings
from streams.migrations import default_directory, migrate
from streams.warehouse import open_warehouse


@click.group("db")
def command() -> None:
    """The warehouse: embedded chdb under MONITOR_DATA_DIR, or the ClickHouse server at
    MONITOR_WAREHOUSE_URL when that is set."""


def _target(settings: Settings) -> str:
    if settings.warehouse_url:
        # Only scheme, host and port: never echo credentials someone put into the URL.
        parts = urlsplit(settings.warehouse_url)
        where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    else:
        where = f"embedded chdb at {settings.warehouse_dir}"
    return f"{where}, database {settings.warehouse_database}"


@command.command("migrate")
@click.option(
    "--directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Directory of NNNN_name.sql migration files [default: deploy/clickhouse of the "
    "repository].",
)
@click.pass_obj
def migrate_command(settings: Settings, directory: Path | None) -> None:
    """Apply pending migrations, in version order.

    Creates the database if it is missing. Safe to repeat: applied migrations are skipped.
    Fails, before changing anything, if an applied migration file was edited since. On a
    server this needs DDL rights (the workers' user has none).
    """
    with open_warehouse(settings) as warehouse:
        applied = migrate(warehouse, directory)
    source = directory or default_directory()
    if applied:
        click.echo(
            f"applied {len(applied)} migration(s) from {source} to {_target(settings)}: "
            + ", ".join(applied)
        )
    else:
        click.echo(f"up to date: {_target(settings)}")
