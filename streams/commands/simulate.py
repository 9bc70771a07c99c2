"""`merchant-monitor simulate`: simulated merchants with ground truth, to files and/or Kafka."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import click

from schemas.settings import Settings
from streams.commands.options import scenario_options
from streams.progress import ProgressLine
from streams.sim import Scenario
from streams.sim.engine import DayBatch, Engine
from streams.sim.files import SimWriter, finish
from streams.sim.payloads import merged
from streams.sim.publish import publish
from streams.sim.simulation import run_header


@click.command("simulate")
@scenario_options
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Override the first day (YYYY-MM-DD, a day in the scenario's time zone).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the Parquet files, labels.csv and manifest.json.",
)
@click.option("--to-kafka", is_flag=True, help="Publish to MONITOR_BROKER_URL in event-time order.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="With --to-kafka: at most this many messages per second [default: as fast as possible].",
)
@click.option(
    "--compress-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="With --to-kafka: play the simulated days in this many minutes of wall time.",
)
@click.option("--quiet", is_flag=True, help="No progress line on stderr.")
@click.pass_obj
def command(
    settings: Settings,
    scenario_file: Path | None,
    seed: int,
    merchants: int | None,
    days: int | None,
    start: datetime | None,
    out: Path | None,
    to_kafka: bool,
    rate: float | None,
    compress_minutes: float | None,
    quiet: bool,
) -> None:
    """Simulate merchants (POS, account, profiles, POS-loan events) with ground-truth labels.

    The same arguments give byte-identical files. Events are generated one day at a time, so
    memory stays bounded by a day of events whatever the window length.

    \b
    Examples:
      merchant-monitor simulate --seed 7 --out out/sim
      merchant-monitor simulate --seed 7 --merchants 100000 --days 90 --out out/big
      merchant-monitor simulate --seed 7 --to-kafka --compress-minutes 10
    """
    if out is None and not to_kafka:
        raise click.UsageError("say where the events go: --out DIR and/or --to-kafka")
    if (rate or compress_minutes) and not to_kafka:
        raise click.UsageError("--rate and --compress-minutes apply to --to-kafka only")
    scenario = Scenario.load(scenario_file) if scenario_file else Scenario.default()
    scenario = scenario.resized(merchants=merchants, days=days)
    if start is not None:
        scenario = scenario.starting(start.date())
    pop = scenario.population
    click.echo(
        f"simulating {pop.merchants:,} merchants x {pop.days} days from {pop.start} "
        f"(scenario {scenario.name!r}, seed {seed})",
        err=True,
    )
    began = time.monotonic()
    engine = Engine(scenario, seed)
    writer = SimWriter(out) if out is not None else None
    try:
        batches = _written(engine, writer)
        if to_kafka:
            counts = publish(
                itertools.chain.from_iterable(merged(day) for day in batches),
                settings.bootstrap_servers,
                rate_eps=rate,
                compress_minutes=compress_minutes,
                progress=not quiet,
                event_span=timedelta(days=pop.days),
            )
            click.echo(f"published {sum(counts.values()):,} messages: {counts}")
        else:
            line = ProgressLine("simulated", "days", enabled=not quiet, total=pop.days)
            for index, _ in enumerate(batches, start=1):
                line.update(index, final=index == pop.days)
    finally:
        if writer is not None:
            writer.close()
    if writer is not None and out is not None:
        manifest = finish(out, writer.rows, engine.labels, run_header(scenario, seed))
        rows = {topic: spec["rows"] for topic, spec in manifest["files"].items()}
        click.echo(
            f"wrote {sum(rows.values()):,} events and {len(engine.labels):,} labels to {out} "
            f"in {time.monotonic() - began:.1f} s: {rows}"
        )


def _written(engine: Engine, writer: SimWriter | None) -> Iterator[DayBatch]:
    """The engine's days, each written to the files (if any) before it is passed on."""
    for day in engine.days():
        if writer is not None:
            for topic, table in day.items():
                writer.write(topic, table)
        yield day
