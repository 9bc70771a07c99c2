"""`merchant-monitor chaos`: SIGKILL a worker at random moments during a replay, then verify."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from schemas.settings import Settings
from streams.chaos import run_chaos


@click.command("chaos")
@click.option("--merchants", type=click.IntRange(10, 100_000), default=500, show_default=True)
@click.option(
    "--days",
    type=click.IntRange(7, 730),
    default=42,
    show_default=True,
    help="Simulated days (500 merchants x 42 days is about 200,000 transaction events).",
)
@click.option("--kills", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--seed", type=int, default=13, show_default=True)
@click.option(
    "--store",
    type=click.Choice(["rocksdb", "memory"]),
    default="rocksdb",
    show_default=True,
    help="Faust table store of the workers.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Warehouse, table stores and worker logs [default: MONITOR_DATA_DIR/chaos]; "
    "emptied at start.",
)
@click.pass_obj
def command(
    settings: Settings,
    merchants: int,
    days: int,
    kills: int,
    seed: int,
    store: str,
    workdir: Path | None,
) -> None:
    """Replay a simulated history through a local broker while killing the worker.

    Starts a local broker and publishes the history; starts a worker and, once it has
    committed progress, kills it with SIGKILL at a random moment within 5 s; restarts it,
    --kills times; lets the last worker finish; then runs
    the checks of `merchant-monitor verify` (every source record counted exactly once, no
    duplicate alerts, tasks or limit versions). Exits with status 1 when they fail.
    """
    workdir = workdir or settings.data_dir / "chaos"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    run = run_chaos(
        settings, workdir, merchants=merchants, days=days, kills=kills, seed=seed, store=store
    )
    click.echo(f"{run.events:,} transaction events, {len(run.kills)} kills ({store} store):")
    for i, (life, left) in enumerate(run.kills, start=1):
        click.echo(f"  kill {i}: after {life:.1f} s, {left:,} records not yet committed")
    assert run.result is not None
    for line in run.result.lines():
        click.echo(line)
    click.echo(f"chaos run took {run.seconds:.0f} s; logs in {workdir}")
    if not run.result.ok:
        raise click.exceptions.Exit(1)
