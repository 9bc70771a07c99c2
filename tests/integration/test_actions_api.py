"""Limits and outreach tasks through a running worker: topics, HTTP API, outcome round trip."""

from __future__ import annotations

import http.client
import json
import pickle
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from kafka import KafkaConsumer

from detectors.outreach import SuccessModel
from schemas import topics
from schemas.settings import Settings
from streams.actions import SUCCESS_MODEL_FILE
from streams.broker import LocalBroker, create_topics, free_port
from streams.runner import WorkerProcess, wait_until_consumed
from streams.sim import Scenario, simulate
from streams.sim.publish import publish
from tests.fixtures.worker import worker_settings

pytestmark = pytest.mark.integration


@dataclass
class Running:
    settings: Settings
    worker: WorkerProcess
    base: str
    token: str
    broker: LocalBroker

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = "default"
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def _records(broker: LocalBroker, topic: str) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        return [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()


def _eventually(check: Any, timeout_s: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    data_dir: Path = tmp_path_factory.mktemp("actions")
    simulation = simulate(Scenario.default().resized(merchants=60, days=130), 5)
    token = secrets.token_urlsafe(24)
    port = free_port()
    with LocalBroker(log_path=data_dir / "tansu.log") as broker:
        create_topics(broker.bootstrap_servers, 4)
        settings = worker_settings(
            broker,
            data_dir,
            "actions-api",
            web_port=port,
            api_token=token,
            outreach_manager_capacity_per_day=1,
        )
        worker = WorkerProcess(settings, data_dir / "worker.log").start()
        try:
            publish(simulation, broker.bootstrap_servers, progress=False)
            wait_until_consumed(
                broker.bootstrap_servers,
                settings.app_id,
                [topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS],
                timeout_s=240,
                alive=worker.check_alive,
                poll_s=0.5,
            )
            yield Running(settings, worker, f"http://127.0.0.1:{port}", token, broker)
        finally:
            worker.stop()


def _latest_limits(running: Running) -> dict[str, dict[str, Any]]:
    """The newest version per merchant, once the worker has stopped publishing new ones (its
    last days close by the idle clock a moment after the backlog is consumed)."""

    def read() -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for record in _records(running.broker, topics.POS_LOAN_LIMITS):
            if record["version"] >= latest.get(record["merchant_id"], {"version": 0})["version"]:
                latest[record["merchant_id"]] = record
        return latest

    previous = read()
    while True:
        time.sleep(3)
        current = read()
        if current and current == previous:
            return current
        previous = current


def test_the_api_refuses_missing_or_wrong_tokens_and_bad_ids(running: Running) -> None:
    assert running.call("GET", "/merchants/M0000001/limit", token=None)[0] == 401
    assert running.call("GET", "/merchants/M0000001/limit", token="wrong")[0] == 401
    assert running.call("GET", "/managers/AM001/tasks", token="wrong")[0] == 401
    status, body = running.call("GET", "/merchants/-bad%20id/limit")
    assert status == 400
    assert "merchant_id" in body["error"]
    status, body = running.call("GET", "/merchants/NO_SUCH_MERCHANT/limit")
    assert status == 404
    assert body == {
        "error": "unknown merchant: no limit has been computed for it",
        "merchant_id": "NO_SUCH_MERCHANT",
    }


def test_the_limit_api_answers_what_the_compacted_topic_holds(running: Running) -> None:
    latest = _latest_limits(running)
    eligible = [m for m, r in latest.items() if r["eligible"] and r["limit_fen"] > 0]
    assert eligible, "some simulated merchants earn a limit"
    for merchant_id, record in list(latest.items())[:20]:
        status, body = running.call("GET", f"/merchants/{merchant_id}/limit")
        assert status == 200
        assert (body["version"], body["limit_fen"], body["eligible"]) == (
            record["version"],
            record["limit_fen"],
            record["eligible"],
        )
        assert body["reasons"], "every limit carries its reasons"
        assert 0 <= body["limit_fen"] <= body["cap_fen"]


def _open_tasks(running: Running) -> tuple[str, list[dict[str, Any]]]:
    tasks = _records(running.broker, topics.OUTREACH_TASKS)
    managers = sorted({t["manager_id"] for t in tasks if t["status"] == "open"})
    for manager in managers:
        status, body = running.call("GET", f"/managers/{manager}/tasks")
        assert status == 200
        if body["open"]:
            return manager, body["open"]
    raise AssertionError("no manager has open tasks")


def test_managers_see_open_tasks_in_priority_order(running: Running) -> None:
    manager, open_tasks = _eventually(lambda: _open_tasks(running), what="open tasks")
    priorities = [t["priority"] for t in open_tasks]
    assert priorities == sorted(priorities, reverse=True)
    assert all(t["manager_id"] == manager and t["status"] == "open" for t in open_tasks)
    assert all(t["due_date"] and t["reason"] and t["suggested_action"] for t in open_tasks)
    status, body = running.call("GET", "/managers/NOBODY/tasks")
    assert status == 200
    assert body["open"] == []


def test_capacity_holds_per_manager_and_day(running: Running) -> None:
    tasks = _records(running.broker, topics.OUTREACH_TASKS)
    opened: dict[tuple[str, str], set[str]] = {}
    for task in tasks:
        if task["status"] == "open":
            assert task["opened_date"]
            assert task["due_date"] >= task["opened_date"]
            opened.setdefault((task["manager_id"], task["opened_date"]), set()).add(task["task_id"])
    assert opened
    assert max(len(ids) for ids in opened.values()) <= 1, "capacity is one task a day"
    queued = {t["task_id"] for t in tasks if t["status"] == "queued"}
    assert queued, "with a capacity of one a day, some tasks must wait in the queue"
    assert all(t["due_date"] is None for t in tasks if t["status"] == "queued")


# Hostile requests to the shared worker; before the outcome test, which stops it.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
_OUTCOME_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "merchant_id": st.one_of(st.text(max_size=70), st.integers(), st.just("M0000001")),
        "manager_id": st.one_of(st.text(max_size=70), st.none(), st.just("AM001")),
        "outcome": st.one_of(st.sampled_from(["reached", "converted", "declined", "nope"]), _JSON),
        "note": st.one_of(st.text(max_size=50), st.just("x" * 2_000), st.integers()),
        "outcome_id": st.one_of(st.text(max_size=70), st.none()),
        "extra": _JSON,
    },
)
_BODIES = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.just(b"{" * 5_000),
    st.just(b'{"note": "' + b"x" * 20_000 + b'"}'),
    _JSON.map(lambda doc: json.dumps(doc).encode()),
    _OUTCOME_FIELDS.map(lambda doc: json.dumps(doc).encode()),
)
_IDS = st.one_of(
    st.text(max_size=80),
    st.just("M0000001"),
    st.just("../../etc/passwd"),
    st.just("M1' OR '1'='1"),
    st.text(alphabet="M0123456789:_-", min_size=1, max_size=70),
)


@given(
    route=st.sampled_from(["limit", "tasks", "outcome"]),
    ident=_IDS,
    token=st.one_of(
        st.just("default"),
        st.none(),
        st.text(alphabet=st.characters(blacklist_categories=("Cc",)), max_size=40),
    ),
    body=_BODIES,
)
@hypothesis_settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_fuzzed_requests_get_clear_refusals_and_never_break_the_worker(
    running: Running, route: str, ident: str, token: str | None, body: bytes | None
) -> None:
    path = {
        "limit": "/merchants/{}/limit",
        "tasks": "/managers/{}/tasks",
        "outcome": "/tasks/{}/outcome",
    }[route].format(urllib.parse.quote(ident, safe=""))
    method = "POST" if route == "outcome" else "GET"
    headers = {"Content-Type": "application/json"}
    if token is not None:
        value = running.token if token == "default" else token
        headers["Authorization"] = f"Bearer {value}".encode("utf-8", "replace").decode("latin-1")
    connection = http.client.HTTPConnection("127.0.0.1", running.settings.web_port, timeout=10)
    try:
        connection.request(method, path or "/", body=body, headers=headers)
        response = connection.getresponse()
        status, raw = response.status, response.read()
    finally:
        connection.close()
    assert status in {200, 202, 400, 401, 404, 413}, (status, raw[:300])
    if response.getheader("Content-Type", "").startswith("application/json"):
        document = json.loads(raw)
        if status >= 400:
            assert isinstance(document, dict), raw[:300]
            assert document.get("error"), raw[:300]
    else:
        # Only a path the router cannot match (an id that decodes to "/" or to nothing) is
        # answered by the web server itself, before our views.
        assert status == 404, (status, raw[:300])
        assert raw.startswith(b"404"), raw[:300]
    running.worker.check_alive()


def test_the_worker_still_answers_after_the_fuzzing(running: Running) -> None:
    running.worker.check_alive()
    status, _ = running.call("GET", "/managers/AM001/tasks")
    assert status == 200


def test_an_outcome_closes_its_task_and_teaches_the_model(running: Running) -> None:
    manager, open_tasks = _eventually(lambda: _open_tasks(running), what="open tasks")
    task = open_tasks[0]
    bad = running.call("POST", f"/tasks/{task['task_id']}/outcome", {"outcome": "maybe"})
    assert bad[0] == 400
    assert bad[1]["error"] == "invalid outcome"
    assert running.call("POST", f"/tasks/{task['task_id']}/outcome", token="x")[0] == 401
    status, body = running.call(
        "POST",
        f"/tasks/{task['task_id']}/outcome",
        {"merchant_id": task["merchant_id"], "manager_id": manager, "outcome": "reached"},
    )
    assert status == 202
    assert body["status"] == "accepted"

    def closed() -> bool:
        _, now = running.call("GET", f"/managers/{manager}/tasks")
        return task["task_id"] not in {t["task_id"] for t in now["open"]}

    _eventually(closed, what="the task to close")
    done = [
        t
        for t in _records(running.broker, topics.OUTREACH_TASKS)
        if t["task_id"] == task["task_id"] and t["status"] == "done"
    ]
    assert done
    # an outcome for a task nobody has ends as a dead letter with its reason
    status, _ = running.call(
        "POST",
        "/tasks/no-such-task/outcome",
        {"merchant_id": task["merchant_id"], "manager_id": manager, "outcome": "declined"},
    )
    assert status == 202
    _eventually(
        lambda: any(
            d["reason"] == "unknown_task" for d in _records(running.broker, topics.DEAD_LETTERS)
        ),
        what="the unknown-task dead letter",
    )
    # the worker saves its success model at shutdown: the outcome is in it
    assert running.worker.stop() == 0
    saved = running.settings.data_dir / "models" / SUCCESS_MODEL_FILE
    model = pickle.loads(saved.read_bytes())
    assert isinstance(model, SuccessModel)
    assert model.n_labels == 1
