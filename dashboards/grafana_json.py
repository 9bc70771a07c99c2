"""Grafana's JSON model of a dashboard: panels laid out on the grid, variables, annotations."""

from __future__ import annotations

from collections.abc import Sequence

from dashboards.common import (
    DATASOURCE,
    SCHEMA_VERSION,
    Annotation,
    Dashboard,
    Format,
    Json,
    Panel,
    Variable,
)


def _layout(panels: Sequence[Panel]) -> list[Json]:
    """Panels flowed left to right on Grafana's 24-column grid, wrapping to a new row."""
    placed: list[Json] = []
    x = y = row_height = 0
    for number, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        placed.append(
            {
                "datasource": dict(DATASOURCE),
                "description": panel.description,
                "fieldConfig": dict(panel.field_config),
                "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
                "id": number,
                "options": dict(panel.options),
                "targets": [query.target() for query in panel.queries],
                "title": panel.title,
                "type": panel.kind,
            }
        )
        x += panel.width
        row_height = max(row_height, panel.height)
    return placed


def _custom_variable(variable: Variable) -> Json:
    first = variable.values[0]
    return {
        "current": {"selected": True, "text": first, "value": first},
        "description": variable.description,
        "hide": 0,
        "includeAll": False,
        "label": variable.label,
        "multi": False,
        "name": variable.name,
        "options": [
            {"selected": value == first, "text": value, "value": value} for value in variable.values
        ],
        "query": ",".join(variable.values),
        "skipUrlSync": False,
        "type": "custom",
    }


def _variable(variable: Variable) -> Json:
    if variable.query is None:
        return _custom_variable(variable)
    text = variable.query.raw_sql
    return {
        "current": {},
        "datasource": dict(DATASOURCE),
        "definition": text,
        "description": variable.description,
        "hide": 0,
        "includeAll": variable.include_all,
        "label": variable.label,
        "multi": variable.multi,
        "name": variable.name,
        "options": [],
        "query": {"editorType": "sql", "format": int(Format.TABLE), "rawSql": text},
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "sort": 0,
        "type": "query",
    }


def _annotation(annotation: Annotation) -> Json:
    return {
        "datasource": dict(DATASOURCE),
        "enable": True,
        "hide": False,
        "iconColor": annotation.color,
        "name": annotation.name,
        "target": annotation.query.target(),
    }


_BUILT_IN_ANNOTATIONS: Json = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def generated_note(module: str) -> str:
    """The header every generated file carries."""
    return (
        f"Generated from {module} by `merchant-monitor dashboards render`; "
        "edit the code, not this file."
    )


def to_json(dashboard: Dashboard) -> Json:
    """The dashboard as Grafana's JSON model, with a generated-file header field."""
    return {
        "__generated": generated_note(dashboard.module),
        "annotations": {
            "list": [dict(_BUILT_IN_ANNOTATIONS)] + [_annotation(a) for a in dashboard.annotations]
        },
        "description": dashboard.description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
                "tags": ["merchant-monitor"],
                "title": "Merchant Monitor",
                "type": "dashboards",
            }
        ],
        "panels": _layout(dashboard.panels),
        "refresh": dashboard.refresh,
        "schemaVersion": SCHEMA_VERSION,
        "tags": list(dashboard.tags),
        "templating": {"list": [_variable(v) for v in dashboard.variables]},
        "time": {"from": dashboard.time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": dashboard.title,
        "uid": dashboard.uid,
        "version": 1,
    }
