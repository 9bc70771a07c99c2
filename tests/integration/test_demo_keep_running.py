"""`merchant-monitor demo --keep-running`: the printed API answers, Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_demo_keeps_the_api_up_until_interrupted(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "streams", "demo", "--merchants", "30", "--days", "70"]
    command += ["--workdir", str(tmp_path / "demo"), "--keep-running"]
    env = {**os.environ, "MONITOR_DATA_DIR": str(tmp_path)}
    env.pop("MONITOR_API_TOKEN", None)
    demo = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        # A terminal's Ctrl-C reaches a process whose SIGINT is not ignored; a test suite
        # started as a background job inherits "ignored", and Python then installs no
        # KeyboardInterrupt handler, so the child gets the terminal's default back.
        preexec_fn=_default_sigint,
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 300
        while not any(line.startswith("Ctrl-C stops") for line in lines):
            line = demo.stdout.readline()
            assert line or demo.poll() is None, "demo ended early:\n" + "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "demo did not start its API:\n" + "".join(lines)
        text = "".join(lines)
        base = re.search(r"^HTTP API: (\S+)$", text, re.MULTILINE)
        token = re.search(r"^bearer token: (\S+)$", text, re.MULTILINE)
        example = re.search(r"(http://\S+/merchants/\S+/limit)", text)
        assert base, text
        assert token, text
        assert example, text
        request = urllib.request.Request(
            example.group(1), headers={"Authorization": f"Bearer {token.group(1)}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
        assert response.status == 200
        assert body["limit_fen"] >= 0
        assert body["reasons"]
        assert "warehouse totals and published events match exactly" in text
        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest = demo.communicate(timeout=90)[0]
        assert demo.returncode == 0, text + rest
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
