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

#: Command name -> module under streams.commands exposing ``command`` (imported when used,
#: so a quick command does not pay for importing Faust).
COMMAND_MODULES = {
    "broker": "broker",
    "topics": "topics",
    "db": "db",
    "schemas": "schemas",
    "worker": "worker",
    "demo": "demo",
    "simulate": "simulate",
    "replay": "replay",
    "evaluate": "evaluate",
    "backtest": "backtest",
    "backfill": "backfill",
    "verify": "verify",
    "chaos": "chaos",
    "dashboards": "dashboards",
    "report": "report",
}


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
    """Loads commands lazily; turns the project's own errors into one line and exit status 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(f"streams.commands.{module}").command
        return command

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
    # The Kafka clients narrate every connection at INFO; keep our own INFO readable.
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(
            max(logging.WARNING, logging.getLevelName(settings.log_level))
        )
    ctx.obj = settings
