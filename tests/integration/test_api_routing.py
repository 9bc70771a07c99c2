"""Two workers: a request reaching the worker that does not own the key is routed to the owner."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from schemas import topics
from schemas.settings import Settings
from streams.broker import LocalBroker, free_port
from streams.runner import WorkerProcess, wait_until_consumed
from streams.sim import Scenario, simulate
from streams.sim.publish import publish
from streams.warehouse import open_warehouse
from tests.fixtures.worker import worker_settings

pytestmark = pytest.mark.integration


def _get(url: str, token: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_both_workers_answer_for_every_merchant(fresh_broker: LocalBroker, tmp_path: Path) -> None:
    simulation = simulate(Scenario.default().resized(merchants=40, days=110), 9)
    token = secrets.token_urlsafe(24)
    workers: list[WorkerProcess] = []
    ports = []
    for name in ("a", "b"):
        port = free_port()
        settings = worker_settings(
            fresh_broker, tmp_path / name, "routing", web_port=port, api_token=token
        )
        workers.append(WorkerProcess(settings, tmp_path / name / "worker.log").start())
        ports.append(port)
    try:
        time.sleep(8)  # both in the group before any record, so no partition moves later
        publish(simulation, fresh_broker.bootstrap_servers, progress=False)
        wait_until_consumed(
            fresh_broker.bootstrap_servers,
            "routing",
            [topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS],
            timeout_s=240,
            alive=lambda: [w.check_alive() for w in workers] and None,
            poll_s=0.5,
        )
        time.sleep(3)  # the last flush publishes the limits of the last closed days
        answers: dict[str, list[tuple[int, object]]] = {}
        for merchant_id in simulation.merchant_ids:
            for port in ports:
                status, body = _get(f"http://127.0.0.1:{port}/merchants/{merchant_id}/limit", token)
                answers.setdefault(merchant_id, []).append((status, body.get("version")))
        statuses = Counter(a[0][0] for a in answers.values())
        assert statuses[200] >= len(simulation.merchant_ids) // 2, statuses
        # whichever worker is asked, the answer is the owner's: identical
        assert all(a[0] == a[1] for a in answers.values()), answers
    finally:
        for worker in workers:
            worker.stop()
    # both workers owned some of the merchants (each writes its own embedded warehouse), so
    # half of the answers above came through the router
    owned = []
    for name in ("a", "b"):
        settings = Settings(data_dir=tmp_path / name)  # type: ignore[call-arg]
        with open_warehouse(settings) as warehouse:
            rows = warehouse.query("SELECT uniqExact(merchant_id) AS n FROM merchant_daily")
        owned.append(rows[0]["n"])
    assert min(owned) > 0, owned
    assert sum(owned) == len(simulation.merchant_ids)
