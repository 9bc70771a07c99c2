"""Command-line options shared by several commands: the simulated scenario, history files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def scenario_options(command: F) -> F:
    """--scenario, --seed, --merchants and --days, in that order."""
    decorators = (
        click.option(
            "--scenario",
            "scenario_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="TOML scenario, merged over the built-in default [default: the built-in one].",
        ),
        click.option(
            "--seed", type=click.IntRange(0, 2**63 - 1), required=True, help="Random seed."
        ),
        click.option(
            "--merchants",
            type=click.IntRange(1, 10_000_000),
            default=None,
            help="Override the scenario's number of merchants.",
        ),
        click.option(
            "--days",
            type=click.IntRange(1, 3650),
            default=None,
            help="Override the scenario's number of days.",
        ),
    )
    return _stacked(command, decorators)


def history_options(command: F) -> F:
    """--pos (repeatable, required) and --accounts (repeatable): history files to read."""
    decorators = (
        click.option(
            "--pos",
            "pos_files",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            multiple=True,
            required=True,
            help="POS history, CSV or Parquet (repeatable).",
        ),
        click.option(
            "--accounts",
            "account_files",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            multiple=True,
            help="Business-account bookings, CSV or Parquet (repeatable).",
        ),
    )
    return _stacked(command, decorators)


def business_day(ctx: click.Context, param: click.Parameter, value: str) -> date:
    """Click callback: a business day given as YYYY-MM-DD or YYYYMMDD."""
    del ctx, param
    text = value.strip()
    try:
        if len(text) == 8 and text.isdigit():
            return datetime.strptime(text, "%Y%m%d").date()
        return date.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or YYYYMMDD)") from exc


def _stacked(command: F, decorators: tuple[Callable[[F], F], ...]) -> F:
    """``command`` under ``decorators``, the first one outermost (so listed first in --help)."""
    for decorate in reversed(decorators):
        command = decorate(command)
    return command
