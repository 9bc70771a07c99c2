"""`demo --keep-running`: a worker serving the HTTP API until Ctrl-C, with examples to try."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import click

from schemas.settings import Settings
from streams.runner import WorkerProcess
from streams.warehouse import Warehouse


@dataclass(frozen=True, slots=True)
class ApiExamples:
    """A merchant with a limit and a manager with open tasks, picked from the warehouse."""

    merchant_id: str | None
    manager_id: str | None


def api_examples(warehouse: Warehouse) -> ApiExamples:
    merchant = warehouse.query(
        "SELECT merchant_id FROM pos_loan_limits_current WHERE eligible "
        "ORDER BY limit_fen DESC, merchant_id LIMIT 1"
    )
    manager = warehouse.query(
        "SELECT manager_id, count() AS n FROM outreach_tasks FINAL WHERE status = 'open' "
        "GROUP BY manager_id ORDER BY n DESC, manager_id LIMIT 1"
    )
    return ApiExamples(
        merchant[0]["merchant_id"] if merchant else None,
        manager[0]["manager_id"] if manager else None,
    )


def _get(url: str, token: str) -> int:
    if not url.startswith("http://"):  # only the worker's own loopback API
        raise ValueError(f"not an http URL: {url!r}")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            json.loads(response.read())
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, ValueError):
        return 0


def serve_until_interrupted(settings: Settings, log_path: Path, examples: ApiExamples) -> None:
    """Start a worker with the API, wait until it answers, print how to call it, wait for
    Ctrl-C, stop the worker."""
    assert settings.api_token is not None
    token = settings.api_token.get_secret_value()
    base = f"http://{settings.web_host}:{settings.web_port}"
    # The API answers 503 until the worker has read its tables back; then 200 (or 404 when
    # the example merchant has no limit).
    probe = (
        f"{base}/merchants/{examples.merchant_id}/limit"
        if examples.merchant_id
        else f"{base}/managers/{examples.manager_id or 'none'}/tasks"
    )
    with WorkerProcess(settings, log_path) as worker:
        click.echo(f"starting a worker for the HTTP API (log: {log_path})")
        deadline = time.monotonic() + 120
        while _get(probe, token) in (0, 503):  # not listening yet, or restoring its tables
            worker.check_alive()
            if time.monotonic() > deadline:
                raise click.ClickException(f"the API did not answer in 120 s; see {log_path}")
            time.sleep(1)
        auth = f'-H "Authorization: Bearer {token}"'
        click.echo("")
        click.echo(f"HTTP API: {base}")
        click.echo(f"bearer token: {token}")
        if examples.merchant_id:
            click.echo(f"  curl {auth} {base}/merchants/{examples.merchant_id}/limit")
        if examples.manager_id:
            click.echo(f"  curl {auth} {base}/managers/{examples.manager_id}/tasks")
            click.echo(
                f"  curl {auth} -H 'Content-Type: application/json' -X POST "
                f'{base}/tasks/TASK_ID/outcome -d \'{{"merchant_id": "MERCHANT_ID", '
                f'"manager_id": "{examples.manager_id}", "outcome": "reached"}}\''
            )
        try:
            # Announced inside the try: a Ctrl-C right after the line still stops cleanly.
            click.echo("Ctrl-C stops the worker and the broker.")
            while True:
                worker.check_alive()
                time.sleep(1)
        except KeyboardInterrupt:
            click.echo("\nstopping")
