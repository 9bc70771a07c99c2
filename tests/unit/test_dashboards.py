"""Dashboards as code: the committed files are current, well formed and consistent."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dashboards import render
from dashboards.common import (
    ALERT_FOLDER_TITLE,
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    FOLDER_TITLE,
    sql,
)
from dashboards.grafana_json import to_json
from dashboards.macros import ALL, MacroError, TimeRange, expand
from streams.commands.dashboards import command

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "deploy" / "grafana"
COMPOSE = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
#: Grafana's limit on uids of dashboards, folders and alert rules.
MAX_UID = 40
WINDOW = TimeRange(datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 6, 30, tzinfo=UTC))


def _file(relative: str) -> Any:
    text = (OUT / relative).read_text(encoding="utf-8")
    return render.load_yaml(text) if relative.endswith(".yaml") else json.loads(text)


def _dashboards() -> list[dict[str, Any]]:
    return [_file(f"dashboards/{d.uid}.json") for d in render.dashboards()]


# --- golden render --------------------------------------------------------------------------------


def test_committed_files_are_exactly_the_render() -> None:
    assert render.check(OUT) == [], "run `merchant-monitor dashboards render`"
    result = CliRunner().invoke(command, ["render", "--check"])
    assert result.exit_code == 0, result.output


def test_check_reports_edited_missing_and_stale_files(tmp_path: Path) -> None:
    shutil.copytree(OUT, tmp_path, dirs_exist_ok=True)
    edited = tmp_path / "dashboards" / "mm-portfolio.json"
    edited.write_text(edited.read_text().replace("Active merchants", "Active"), encoding="utf-8")
    (tmp_path / render.RULES_FILE).unlink()
    (tmp_path / "dashboards" / "mm-old.json").write_text('{"__generated": "x"}\n')
    (tmp_path / "dashboards" / "hand-made.json").write_text('{"title": "mine"}\n')

    result = CliRunner().invoke(command, ["render", "--check", "--out", str(tmp_path)])
    assert result.exit_code == 1
    for problem in ("mm-portfolio.json: differs", "rules.yaml: missing", "mm-old.json: stale"):
        assert problem in result.output
    assert "hand-made" not in result.output

    assert CliRunner().invoke(command, ["render", "--out", str(tmp_path)]).exit_code == 0
    assert render.check(tmp_path) == []
    assert not (tmp_path / "dashboards" / "mm-old.json").exists()
    assert (tmp_path / "dashboards" / "hand-made.json").exists()


def test_files_have_sorted_keys_and_a_generated_header() -> None:
    for relative, text in render.render_files().items():
        if relative.endswith(".json"):
            assert text.startswith('{\n  "__generated": "Generated from dashboards.')
            body = text
        else:
            header, body = text.split("\n", 1)
            assert header.startswith("# __generated: Generated from dashboards.")
        assert body == render.dump_json(json.loads(body)), relative


# --- dashboards -----------------------------------------------------------------------------------


def test_dashboard_uids_are_unique_and_stable() -> None:
    uids = [d["uid"] for d in _dashboards()]
    assert uids == [
        "mm-portfolio",
        "mm-risk-desk",
        "mm-merchant",
        "mm-account-managers",
        "mm-model-health",
        "mm-pipeline",
    ]
    assert all(len(uid) <= MAX_UID for uid in uids)


@pytest.mark.parametrize("dashboard", _dashboards(), ids=lambda d: d["uid"])
def test_every_panel_has_the_datasource_and_sql_targets(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert len({p["title"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID
            assert target["editorType"] == "sql"
            assert target["format"] in (0, 1)
            assert target["rawSql"].lstrip().upper().startswith(("SELECT", "WITH"))
            assert target["refId"]


@pytest.mark.parametrize("dashboard", _dashboards(), ids=lambda d: d["uid"])
def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0
        assert pos["x"] + pos["w"] <= 24
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


@pytest.mark.parametrize("dashboard", _dashboards(), ids=lambda d: d["uid"])
def test_every_variable_used_is_defined(dashboard: dict[str, Any]) -> None:
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    texts = [t["rawSql"] for p in dashboard["panels"] for t in p["targets"]]
    texts += [a["target"]["rawSql"] for a in dashboard["annotations"]["list"] if "target" in a]
    used = {m for text in texts for m in re.findall(r"\$\{?([A-Za-z]\w*)", text)}
    assert used <= defined, used - defined


def test_links_point_at_existing_dashboards() -> None:
    uids = {d["uid"] for d in _dashboards()}
    for dashboard in _dashboards():
        for panel in dashboard["panels"]:
            for override in panel["fieldConfig"].get("overrides", []):
                for prop in override["properties"]:
                    if prop["id"] == "links":
                        for link in prop["value"]:
                            assert link["url"].split("/")[2] in uids, link["url"]


# --- provisioning ---------------------------------------------------------------------------------


def test_datasource_is_the_read_only_clickhouse_user() -> None:
    document = _file(render.DATASOURCE_FILE)
    assert document["apiVersion"] == 1
    [source] = document["datasources"]
    assert (source["type"], source["uid"]) == (DATASOURCE_TYPE, DATASOURCE_UID)
    assert source["jsonData"]["username"] == "grafana_reader"
    assert source["jsonData"]["defaultDatabase"] == "merchant_monitor"
    assert source["secureJsonData"] == {"password": "$CLICKHOUSE_READER_PASSWORD"}
    users = ET.parse(ROOT / "deploy/clickhouse/users.d/monitor-users.xml").getroot()
    reader = users.find("users/grafana_reader")
    assert reader is not None
    assert reader.find("profile").text == "readonly"
    grafana_service = COMPOSE[COMPOSE.index("\n  grafana:") :]
    assert "CLICKHOUSE_READER_PASSWORD" in grafana_service


def test_dashboard_provider_reads_the_mounted_directory() -> None:
    document = _file(render.PROVIDER_FILE)
    [provider] = document["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == FOLDER_TITLE
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}" in COMPOSE
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning" in COMPOSE


def _rules() -> list[dict[str, Any]]:
    document = _file(render.RULES_FILE)
    assert document["apiVersion"] == 1
    for group in document["groups"]:
        # Its own folder: rule provisioning runs first and names folders by title only.
        assert group["folder"] == ALERT_FOLDER_TITLE != FOLDER_TITLE
        assert re.fullmatch(r"\d+[smh]", group["interval"])
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_are_well_formed() -> None:
    rules = _rules()
    assert {r["title"] for r in rules} == {
        "New high-severity credit alert",
        "Dormancy surge in a grid",
        "Pipeline lag over threshold",
        "Dead-letter growth",
    }
    assert len({r["uid"] for r in rules}) == len(rules)
    dashboards = {d["uid"]: {p["id"] for p in d["panels"]} for d in _dashboards()}
    for rule in rules:
        assert len(rule["uid"]) <= MAX_UID
        refs = [item["refId"] for item in rule["data"]]
        assert len(set(refs)) == len(refs)
        assert rule["condition"] == refs[-1]
        for item in rule["data"]:
            model = item["model"]
            assert model["refId"] == item["refId"]
            if item["datasourceUid"] == "__expr__":
                assert model["type"] in ("math", "threshold", "reduce")
                referenced = re.findall(r"\$([A-Z])", model["expression"]) or [model["expression"]]
                assert set(referenced) <= set(refs[: refs.index(item["refId"])])
            else:
                assert item["datasourceUid"] == DATASOURCE_UID
                assert model["datasource"]["uid"] == DATASOURCE_UID
                assert model["format"] == 1
                assert item["relativeTimeRange"]["from"] > 0
        [threshold] = [i["model"] for i in rule["data"] if i["model"].get("type") == "threshold"]
        assert len(threshold["conditions"]) == 1
        assert rule["noDataState"] in ("NoData", "Alerting", "OK")
        assert rule["execErrState"] in ("Error", "Alerting", "OK")
        # Labels are interpolated from the environment by file provisioning: no `$` there.
        assert "$" not in "".join(rule["labels"].values())
        assert rule["panelId"] in dashboards[rule["dashboardUid"]]


# --- macros and SQL tokens ------------------------------------------------------------------------


def test_macros_become_parameters_not_text() -> None:
    text, params = expand(
        "SELECT $__timeInterval(ts) AS t FROM x WHERE $__dateFilter(day) AND id = ${m:singlequote}"
        " AND ts < $__toTime AND $__conditionalAll(r IN (${r:singlequote}), $r)",
        WINDOW,
        {"m": "it's", "r": ALL},
    )
    assert "it's" not in text
    assert "2024" not in text
    assert text.endswith("AND 1=1")
    assert params == {
        "v_m": "it's",
        "__to_s": int(WINDOW.end.timestamp()),
        "__from_date": WINDOW.start.date(),
        "__to_date": WINDOW.end.date(),
        "__interval_s": 60,
    }


@pytest.mark.parametrize(
    ("text", "variables", "message"),
    [
        ("SELECT $nope", {}, "unknown macro or variable"),
        ("SELECT $__unknownMacro", {}, "unknown macro"),
        ("SELECT x IN (${r:singlequote})", {"r": ALL}, "All outside"),
        ("SELECT $__timeFilter(ts", {}, "unbalanced"),
        ("SELECT ${r:csv}", {"r": "a"}, "not supported"),
    ],
)
def test_macro_errors_are_explicit(text: str, variables: dict[str, str], message: str) -> None:
    with pytest.raises(MacroError, match=message):
        expand(text, WINDOW, variables)


def test_unknown_sql_token_is_an_error() -> None:
    with pytest.raises(ValueError, match="@NOPE@"):
        sql("SELECT @NOPE@")


def test_every_dashboard_panel_and_rule_is_documented() -> None:
    docs = (ROOT / "docs" / "dashboards.md").read_text(encoding="utf-8")
    titles = [d.uid for d in render.dashboards()]
    titles += [p.title for d in render.dashboards() for p in d.panels]
    titles += [rule["uid"] for rule in _rules()] + [rule["title"] for rule in _rules()]
    missing = [title for title in titles if title not in docs]
    assert not missing, f"add to docs/dashboards.md: {missing}"


def test_rendering_is_deterministic() -> None:
    assert [to_json(d) for d in render.dashboards()] == [to_json(d) for d in render.dashboards()]
