"""Render every dashboard and provisioning file; write them, or check the committed ones."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from dashboards import (
    account_managers,
    alerts,
    merchant,
    model_health,
    pipeline,
    portfolio,
    risk_desk,
)
from dashboards.common import (
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    FOLDER_TITLE,
    FOLDER_UID,
    Dashboard,
    Json,
)
from dashboards.grafana_json import generated_note, to_json

log = logging.getLogger(__name__)

#: Every dashboard module, in the order of the folder listing.
MODULES = (portfolio, risk_desk, merchant, account_managers, model_health, pipeline)
#: Where Grafana's container finds the dashboard files (docker-compose mounts them there).
DASHBOARDS_PATH = "/var/lib/grafana/dashboards"
#: Marker of every generated file (JSON key or YAML comment): only such files are ever removed.
MARKER = "__generated"

DATASOURCE_FILE = "provisioning/datasources/clickhouse.yaml"
PROVIDER_FILE = "provisioning/dashboards/monitor.yaml"
RULES_FILE = "provisioning/alerting/merchant-monitor-rules.yaml"


def default_output() -> Path:
    """deploy/grafana of the repository this package runs from."""
    return Path(__file__).resolve().parent.parent / "deploy" / "grafana"


def dashboards() -> list[Dashboard]:
    """Every dashboard, built from its module."""
    return [module.build() for module in MODULES]


def dump_json(document: Any) -> str:
    """JSON with sorted keys and two-space indents: stable text, readable diffs."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def dump_yaml(document: Any, module: str) -> str:
    """A YAML file whose body is JSON (JSON is YAML 1.2 flow style), under a generated header.

    Without a YAML library in the environment, this keeps every file parseable by any JSON
    parser once the comment lines are dropped, which is how the tests validate them.
    """
    header = f"# {MARKER}: {generated_note(module)}\n"
    return header + dump_json(document)


def load_yaml(text: str) -> Any:
    """The document of a file written by :func:`dump_yaml` (comment lines dropped)."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return json.loads(body)


def datasource_file() -> Json:
    """The ClickHouse datasource: official plugin, read-only user, password from the env."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "editable": False,
                "isDefault": True,
                "jsonData": {
                    "defaultDatabase": "merchant_monitor",
                    "host": "clickhouse",
                    "port": 8123,
                    "protocol": "http",
                    "secure": False,
                    "username": "grafana_reader",
                },
                "name": "ClickHouse (Merchant Monitor)",
                "orgId": 1,
                "secureJsonData": {"password": "$CLICKHOUSE_READER_PASSWORD"},
                "type": DATASOURCE_TYPE,
                "uid": DATASOURCE_UID,
            }
        ],
    }


def provider_file() -> Json:
    """The file provider that loads the dashboards into the Merchant Monitor folder."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "allowUiUpdates": False,
                "disableDeletion": True,
                "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID,
                "name": "merchant-monitor",
                "options": {"foldersFromFilesStructure": False, "path": DASHBOARDS_PATH},
                "orgId": 1,
                "type": "file",
                "updateIntervalSeconds": 60,
            }
        ],
    }


def render_files() -> dict[str, str]:
    """Relative path under deploy/grafana -> file text, for every generated file."""
    files = {f"dashboards/{d.uid}.json": dump_json(to_json(d)) for d in dashboards()}
    files[DATASOURCE_FILE] = dump_yaml(datasource_file(), __name__)
    files[PROVIDER_FILE] = dump_yaml(provider_file(), __name__)
    files[RULES_FILE] = dump_yaml(alerts.rules_file(), alerts.__name__)
    return files


def _stale(out: Path, files: dict[str, str]) -> list[Path]:
    """Generated files under ``out`` that the code no longer produces."""
    candidates = [*out.glob("dashboards/*.json"), *out.glob("provisioning/*/*.yaml")]
    return sorted(
        path
        for path in candidates
        if path.relative_to(out).as_posix() not in files
        and MARKER in path.read_text(encoding="utf-8")[:300]
    )


def write(out: Path) -> list[Path]:
    """Write every changed file under ``out`` and remove stale generated ones; returns changes."""
    files = render_files()
    changed = []
    for relative, text in sorted(files.items()):
        path = out / relative
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        log.info("wrote %s", path)
        changed.append(path)
    for path in _stale(out, files):
        path.unlink()
        log.info("removed stale generated file %s", path)
        changed.append(path)
    return changed


def check(out: Path) -> list[str]:
    """Why the files under ``out`` differ from a fresh render (empty when they are current)."""
    files = render_files()
    problems = []
    for relative, text in sorted(files.items()):
        path = out / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{relative}: differs from the code")
    problems += [
        f"{p.relative_to(out).as_posix()}: stale (no longer generated)" for p in _stale(out, files)
    ]
    return problems
