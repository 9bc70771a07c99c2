"""`merchant-monitor demo`: the whole pipeline on simulated merchants, then a summary."""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

import click
from pydantic import SecretStr

from schemas import topics
from schemas.settings import Settings
from streams.broker import LOCAL_FETCH_MAX_WAIT_MS, free_port, running_broker
from streams.demo_api import api_examples, serve_until_interrupted
from streams.migrations import migrate
from streams.progress import ProgressLine
from streams.report import write_report
from streams.runner import WorkerProcess, wait_until_consumed
from streams.sim import Scenario, simulate
from streams.sim.publish import publish
from streams.summary import expected_totals, render_summary, warehouse_totals
from streams.warehouse import open_warehouse


@click.command("demo")
@click.option("--merchants", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--days", type=click.IntRange(7, 730), default=60, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Simulation seed.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the demo keeps its warehouse and logs [default: MONITOR_DATA_DIR/demo]; "
    "emptied at start.",
)
@click.option(
    "--timeout",
    type=click.IntRange(10, 7200),
    default=600,
    show_default=True,
    help="Seconds to wait for the worker to process everything.",
)
@click.option(
    "--keep-running",
    is_flag=True,
    help="After the summary, leave the broker, a worker and its HTTP API up (printing the "
    "API's base URL and bearer token) until Ctrl-C.",
)
@click.pass_obj
def command(
    settings: Settings,
    merchants: int,
    days: int,
    seed: int,
    workdir: Path | None,
    timeout: int,
    keep_running: bool,
) -> None:
    """Run the whole pipeline on simulated merchants and print what it found.

    Starts a local broker on a free port, an embedded warehouse under the work directory, and
    one worker; publishes the simulated merchants (profiles, POS and account transactions, loan
    events); waits until the worker has processed all of them; stops the worker; then prints a
    summary queried from the warehouse (totals checked against totals computed directly from
    the published events, alerts, outreach tasks, POS-loan limits) and leaves an HTML report
    (work directory, report.html) for readers without Grafana. With --keep-running a worker
    then serves the HTTP API until Ctrl-C.
    """
    started = time.monotonic()
    workdir = workdir or settings.data_dir / "demo"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    click.echo(f"1/5 simulating {merchants} merchants x {days} days (seed {seed})")
    simulation = simulate(Scenario.default().resized(merchants=merchants, days=days), seed)
    expected = expected_totals(simulation.messages())
    token = settings.api_token or SecretStr(secrets.token_urlsafe(24))

    with running_broker(settings.partitions) as broker:
        demo_settings = settings.model_copy(
            update={
                "broker_url": broker.url,
                "data_dir": workdir,
                "warehouse_url": None,
                "consumer_rebalance_timeout_s": 3.0,
                "consumer_session_timeout_s": 6.0,
                "consumer_heartbeat_interval_s": 1.0,
                "commit_interval_s": 1.0,
                "web_enabled": True,
                "web_port": free_port(),
                "api_token": token,
                "broker_probe_end_offsets": True,  # tansu reports end offsets short
                "consumer_fetch_max_wait_ms": LOCAL_FETCH_MAX_WAIT_MS,  # tansu holds fetches
            }
        )
        click.echo(f"2/5 broker on {broker.url}; warehouse at {demo_settings.warehouse_dir}")
        with open_warehouse(demo_settings) as warehouse:
            migrate(warehouse)
        worker_log = workdir / "worker.log"
        with WorkerProcess(demo_settings, worker_log) as worker:
            click.echo(f"3/5 worker started (log: {worker_log}); publishing events")
            published = publish(simulation, broker.bootstrap_servers, progress=True)
            click.echo(f"    published {sum(published.values()):,} messages")
            click.echo("4/5 waiting for the worker to process everything")
            line = ProgressLine("    processed", "events")
            seen = [0]

            def show(done: int, total: int) -> None:
                line.total, seen[0] = total, done
                line.update(done)

            wait_until_consumed(
                broker.bootstrap_servers,
                demo_settings.app_id,
                [topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS],
                timeout_s=timeout,
                on_progress=show,
                alive=worker.check_alive,
            )
            line.update(seen[0], final=True)
            status = worker.stop()
            if status != 0:
                raise click.ClickException(f"worker exited with status {status}; see {worker_log}")
        click.echo("5/5 worker stopped; reading the warehouse")
        with open_warehouse(demo_settings) as warehouse:
            found = warehouse_totals(warehouse)
            click.echo(render_summary(warehouse, found, expected, simulation))
            report = write_report(
                warehouse, workdir / "report.html", timezone=settings.business_timezone
            )
            examples = api_examples(warehouse)
        click.echo(f"report for readers without Grafana: {report}")
        click.echo(f"demo finished in {time.monotonic() - started:.0f} s")
        if not found.matches(expected):
            raise click.ClickException("warehouse totals differ from the published events")
        if keep_running:
            # The embedded warehouse admits one process at a time: the worker that serves the
            # API starts after the summary was read (it restores its tables from the broker).
            serve_until_interrupted(demo_settings, workdir / "worker-api.log", examples)
