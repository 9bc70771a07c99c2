"""The `merchant-monitor` command line: one group, one module per command under streams/commands."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click
from pydantic import ValidationError

from schemas.settings import Settings
from streams.errors import StreamsError

#: Modules under streams.commands; each exposes ``command`` (a click command or group).
COMMAND_MODULES = ("broker", "db", "schemas", "worker", "demo")


def load_settings() -> Settings:
    """Read the settings from the environment, turning validation errors into a clear message."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  MONITOR_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        ]
        raise click.UsageError("invalid settings:\n" + "\n".join(lines)) from exc


class _Group(click.Group):
    """Turns the project's own errors into one readable line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StreamsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """Merchant Monitor: streaming early warning for small-business merchants.

    Settings come from MONITOR_* environment variables (see README, "Configuration").
    """
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = settings


for _name in COMMAND_MODULES:
    main.add_command(importlib.import_module(f"streams.commands.{_name}").command)
