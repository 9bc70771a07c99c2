"""`dashboards push` against a small fake Grafana HTTP server on a loopback port."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dashboards import render
from streams.commands.dashboards import command

TOKEN = "glsa_s3cret-token-value"


@dataclass
class FakeGrafana:
    """The few endpoints grafana-client calls for a push, with a request log."""

    token: str = TOKEN
    folders: dict[str, str] = field(default_factory=dict)  # uid -> title
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> saved body
    versions: dict[str, int] = field(default_factory=dict)
    reject: dict[str, str] = field(default_factory=dict)  # dashboard uid -> message (400)
    requests: list[tuple[str, str, str, Any]] = field(default_factory=list)
    url: str = ""

    def handle(self, method: str, path: str, auth: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, auth, body))
        if auth != f"Bearer {self.token}":
            return 401, {"message": "invalid API key"}
        if method == "GET" and path == "/api/folders":
            return 200, [{"uid": uid, "title": title} for uid, title in self.folders.items()]
        if method == "GET" and path.startswith("/api/folders/"):
            uid = path.rsplit("/", 1)[1]
            if uid in self.folders:
                return 200, {"uid": uid, "title": self.folders[uid]}
            return 404, {"message": "folder not found"}
        if method == "POST" and path == "/api/folders":
            if body["uid"] in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[body["uid"]] = body["title"]
            return 200, {"uid": body["uid"], "title": body["title"]}
        if method == "POST" and path == "/api/dashboards/db":
            return self._save(body)
        return 404, {"message": "not found"}

    def _save(self, body: dict[str, Any]) -> tuple[int, Any]:
        dashboard = body["dashboard"]
        uid = dashboard.get("uid", "")
        if uid in self.reject:
            return 400, {"message": self.reject[uid], "status": "bad-request"}
        if body.get("folderUid") not in self.folders:
            return 400, {"message": "folder not found"}
        if uid in self.dashboards and not body.get("overwrite"):
            return 412, {"status": "version-mismatch", "message": "changed by someone else"}
        self.versions[uid] = self.versions.get(uid, 0) + 1
        self.dashboards[uid] = body
        return 200, {
            "uid": uid,
            "status": "success",
            "version": self.versions[uid],
            "url": f"/d/{uid}",
        }

    def posts(self, path: str) -> int:
        return sum(1 for method, p, _, _ in self.requests if method == "POST" and p == path)


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = fake.handle(
                self.command, self.path.split("?")[0], self.headers.get("Authorization", ""), body
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def push(url: str, token: str = TOKEN, *extra: str) -> Result:
    return CliRunner().invoke(
        command, ["push", "--grafana-url", url, "--token", token, "--timeout", "5", *extra]
    )


def test_first_push_creates_the_folder_and_every_dashboard(grafana: FakeGrafana) -> None:
    result = push(grafana.url)
    assert result.exit_code == 0, result.output
    uids = [d.uid for d in render.dashboards()]
    assert grafana.folders == {"merchant-monitor": "Merchant Monitor"}
    assert sorted(grafana.dashboards) == sorted(uids)
    for body in grafana.dashboards.values():
        assert body["overwrite"] is True
        assert body["folderUid"] == "merchant-monitor"
        assert body["dashboard"]["id"] is None
        assert body["dashboard"]["panels"]
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth, _ in grafana.requests)
    assert f"{len(uids)} dashboard(s) created, 0 updated" in result.output
    assert TOKEN not in result.output


def test_second_push_updates_and_creates_nothing(grafana: FakeGrafana) -> None:
    assert push(grafana.url).exit_code == 0
    before = (grafana.posts("/api/folders"), dict(grafana.folders), sorted(grafana.dashboards))
    result = push(grafana.url)
    assert result.exit_code == 0, result.output
    assert (
        grafana.posts("/api/folders"),
        dict(grafana.folders),
        sorted(grafana.dashboards),
    ) == before
    assert set(grafana.versions.values()) == {2}
    assert f"0 dashboard(s) created, {len(grafana.dashboards)} updated" in result.output
    assert "found" in result.output


def test_an_existing_folder_with_the_title_is_reused(grafana: FakeGrafana) -> None:
    grafana.folders["abc123"] = "Risk"
    result = push(grafana.url, TOKEN, "--folder", "Risk")
    assert result.exit_code == 0, result.output
    assert grafana.posts("/api/folders") == 0
    assert {body["folderUid"] for body in grafana.dashboards.values()} == {"abc123"}


def test_a_rejected_token_is_a_clear_error_without_the_token(grafana: FakeGrafana) -> None:
    result = push(grafana.url, "wrong-token")
    assert result.exit_code == 1
    assert "401 Unauthorized" in result.output
    assert grafana.url in result.output
    assert "wrong-token" not in result.output
    assert not grafana.dashboards


def test_a_validation_failure_names_the_dashboard(grafana: FakeGrafana) -> None:
    grafana.reject["mm-risk-desk"] = "Dashboard title cannot be empty"
    result = push(grafana.url)
    assert result.exit_code == 1
    assert "mm-risk-desk (Merchant Monitor · Risk desk)" in result.output
    assert "Dashboard title cannot be empty" in result.output
    assert "(400)" in result.output


def test_an_unreachable_host_is_a_clear_error() -> None:
    with socket.socket() as probe:  # a free port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = push(f"http://127.0.0.1:{port}")
    assert result.exit_code == 1
    assert f"cannot reach Grafana at http://127.0.0.1:{port}" in result.output
    assert TOKEN not in result.output


def test_credentials_in_the_url_are_not_echoed(grafana: FakeGrafana) -> None:
    url = grafana.url.replace("http://", "http://admin:pw@")
    result = push(url)
    assert result.exit_code == 0, result.output
    assert "admin:pw" not in result.output
