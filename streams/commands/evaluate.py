"""`merchant-monitor evaluate`: simulate, run the detection code, score it against the labels."""

from __future__ import annotations

import time
from pathlib import Path

import click

from detectors.evaluation import EvaluationParams
from schemas.settings import Settings
from streams.commands.options import scenario_options
from streams.evaluate import evaluation_report, render_table, write_report
from streams.sim import Scenario, simulate


@click.command("evaluate")
@scenario_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.json"),
    show_default=True,
    help="Where report.json goes.",
)
@click.option(
    "--dormancy-days",
    type=click.IntRange(1, 365),
    default=30,
    show_default=True,
    help="Silence (days since the last sale) that makes a merchant dormant.",
)
@click.option(
    "--churn-grace-days",
    type=click.IntRange(0, 365),
    default=14,
    show_default=True,
    help="Days after the churn event a warning still counts.",
)
@click.option(
    "--credit-grace-days",
    type=click.IntRange(0, 365),
    default=7,
    show_default=True,
    help="Days after the first missed repayment a warning still counts.",
)
@click.pass_obj
def command(
    settings: Settings,
    scenario_file: Path | None,
    seed: int,
    merchants: int | None,
    days: int | None,
    out: Path,
    dormancy_days: int,
    churn_grace_days: int,
    credit_grace_days: int,
) -> None:
    """Score the detectors, and the baselines they must beat, on simulated merchants with known
    truth; then the outreach tasks and POS-loan limits the worker's action stage makes of them.

    Writes report.json (precision, recall, median lead days and false alerts per 1000
    merchant-months per detector; outreach precision at the managers' capacity; the share of
    daily limit changes over 10 %) and prints a table. docs/simulator.md defines positives,
    windows, lead times and which tasks are right.

    \b
    Example:
      merchant-monitor evaluate --seed 7 --merchants 2000 --days 90 --out out/report.json
    """
    del settings  # the evaluation runs in process: no broker, no warehouse
    began = time.monotonic()
    scenario = Scenario.load(scenario_file) if scenario_file else Scenario.default()
    scenario = scenario.resized(merchants=merchants, days=days)
    simulation = simulate(scenario, seed)
    params = EvaluationParams(
        dormancy_days=dormancy_days,
        churn_grace_days=churn_grace_days,
        credit_grace_days=credit_grace_days,
    )
    report = evaluation_report(simulation, params=params)
    write_report(report, out)
    click.echo(render_table(report))
    click.echo(f"\nreport written to {out} ({time.monotonic() - began:.1f} s)")
