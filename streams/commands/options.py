"""Command-line options shared by the commands that simulate a scenario."""

from __future__ import annotations

from collections.abc import Callable
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
    for decorate in reversed(decorators):
        command = decorate(command)
    return command
