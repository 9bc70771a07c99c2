"""Small factories for queries, panels, variables and annotations on the ClickHouse datasource."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from schemas.settings import Settings

#: The provisioned ClickHouse datasource (deploy/grafana/provisioning/datasources/clickhouse.yaml).
DATASOURCE_UID = "merchant-monitor-clickhouse"
DATASOURCE_TYPE = "grafana-clickhouse-datasource"
DATASOURCE: dict[str, str] = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
#: Folder of the dashboards.
FOLDER_TITLE = "Merchant Monitor"
FOLDER_UID = "merchant-monitor"
#: Folder of the alert rules. Not the dashboards' folder: alert-rule file provisioning names its
#: folder by title only and runs before dashboard provisioning, so sharing the title would create
#: a second folder of the same name (grafana/grafana#125079).
ALERT_FOLDER_TITLE = "Merchant Monitor alerts"
#: Dashboard JSON schema version written; Grafana migrates older versions forward on load.
SCHEMA_VERSION = 39
#: A business day is a calendar day in this zone (the default of MONITOR_BUSINESS_TIMEZONE); daily
#: points are drawn at its midnight.
BUSINESS_TIMEZONE: str = Settings.model_fields["business_timezone"].default
#: Where every dashboard links a merchant id to (the drill-down's uid and its variable).
MERCHANT_DASHBOARD_UID = "mm-merchant"
MERCHANT_LINK = (
    f"/d/{MERCHANT_DASHBOARD_UID}/merchant-drill-down?var-merchant=${{__value.raw}}"
    "&${__url_time_range}"
)

Json = dict[str, Any]


class Format(IntEnum):
    """The ClickHouse plugin's query format (sqlutil.FormatQueryOption)."""

    #: Long results (time, label columns, values) become one series per label set.
    TIME_SERIES = 0
    #: Rows as returned; also what alerting needs for labelled numbers.
    TABLE = 1


@dataclass(frozen=True)
class Query:
    """One SQL query of a panel, variable, annotation or alert, and the columns it returns."""

    sql: str
    columns: tuple[str, ...]
    format: Format = Format.TABLE
    ref_id: str = "A"

    @property
    def raw_sql(self) -> str:
        """The SQL as Grafana stores it: dedented, no surrounding blank lines."""
        return textwrap.dedent(self.sql).strip()

    def target(self) -> Json:
        """The panel target (query model) of the ClickHouse plugin, SQL editor mode."""
        return {
            "datasource": dict(DATASOURCE),
            "editorType": "sql",
            "format": int(self.format),
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


@dataclass(frozen=True)
class Panel:
    """A panel: its kind, what it shows and why, its queries and its size on the grid."""

    kind: str
    title: str
    description: str
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    field_config: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Variable:
    """A query variable (first column the value, an optional second the label) or, with
    ``values`` instead of a query, a custom variable whose first value is the default."""

    name: str
    label: str
    query: Query | None = None
    values: tuple[str, ...] = ()
    multi: bool = False
    include_all: bool = False
    description: str = ""


@dataclass(frozen=True)
class Annotation:
    """Events drawn on every time-series panel: the query returns time, text and tags."""

    name: str
    query: Query
    color: str = "red"


@dataclass(frozen=True)
class Dashboard:
    """A dashboard as code; ``to_json`` lays the panels out and numbers them."""

    uid: str
    title: str
    description: str
    module: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = ("merchant-monitor",)
    variables: tuple[Variable, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    time_from: str = "now-30d"
    refresh: str = "5m"

    def panel_id(self, title: str) -> int:
        """The id ``to_json`` gives the panel with this title (ids follow panel order)."""
        for number, panel in enumerate(self.panels, start=1):
            if panel.title == title:
                return number
        raise KeyError(f"dashboard {self.uid} has no panel titled {title!r}")


# --- field config helpers ---------------------------------------------------------------------


def thresholds(*steps: tuple[float, str], base: str = "green") -> Json:
    """Absolute threshold steps: ``base`` below the first value, then each (value, colour)."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}]
        + [{"color": color, "value": value} for value, color in steps],
    }


def _defaults(
    unit: str, decimals: int | None, steps: Json | None, custom: Json | None = None
) -> Json:
    defaults: Json = {"unit": unit, "color": {"mode": "thresholds" if steps else "palette-classic"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    if steps:
        defaults["thresholds"] = steps
    if custom:
        defaults["custom"] = custom
    return defaults


def _overrides(units: Mapping[str, str], links: Mapping[str, str]) -> list[Json]:
    overrides: list[Json] = [
        {"matcher": {"id": "byName", "options": column}, "properties": [{"id": "unit", "value": u}]}
        for column, u in sorted(units.items())
    ]
    overrides += [
        {
            "matcher": {"id": "byName", "options": column},
            "properties": [{"id": "links", "value": [{"title": "Open", "url": url}]}],
        }
        for column, url in sorted(links.items())
    ]
    return overrides


_LEGEND = {"displayMode": "list", "placement": "bottom", "showLegend": True}
_TOOLTIP = {"mode": "multi", "sort": "desc"}


# --- panel factories ----------------------------------------------------------------------------


def stat(
    title: str,
    description: str,
    query: Query,
    *,
    unit: str = "short",
    decimals: int | None = 0,
    steps: Json | None = None,
    width: int = 6,
    height: int = 4,
) -> Panel:
    """A single number (the last value of each numeric column)."""
    return Panel(
        kind="stat",
        title=title,
        description=description,
        queries=(query,),
        width=width,
        height=height,
        field_config={"defaults": _defaults(unit, decimals, steps), "overrides": []},
        options={
            "colorMode": "value" if steps else "none",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        },
    )


def timeseries(
    title: str,
    description: str,
    *queries: Query,
    unit: str = "short",
    decimals: int | None = None,
    bars: bool = False,
    stacked: bool = False,
    steps: Json | None = None,
    width: int = 12,
    height: int = 8,
) -> Panel:
    """Lines (or bars) over time; threshold steps, when given, are drawn as dashed lines."""
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 10,
        "lineInterpolation": "stepAfter" if bars else "linear",
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
        "thresholdsStyle": {"mode": "dashed" if steps else "off"},
    }
    return Panel(
        kind="timeseries",
        title=title,
        description=description,
        queries=queries,
        width=width,
        height=height,
        field_config={"defaults": _defaults(unit, decimals, steps, custom), "overrides": []},
        options={"legend": dict(_LEGEND), "tooltip": dict(_TOOLTIP)},
    )


def step_series(
    title: str, description: str, query: Query, *, unit: str, width: int = 12, height: int = 8
) -> Panel:
    """A time series drawn as steps: values that hold until the next change (limits, stages)."""
    panel = timeseries(title, description, query, unit=unit, width=width, height=height)
    defaults = dict(panel.field_config["defaults"])
    defaults["custom"] = {**defaults["custom"], "lineInterpolation": "stepAfter"}
    return replace(panel, field_config={"defaults": defaults, "overrides": []})


def table(
    title: str,
    description: str,
    query: Query,
    *,
    units: Mapping[str, str] | None = None,
    links: Mapping[str, str] | None = None,
    width: int = 24,
    height: int = 9,
) -> Panel:
    """Rows as returned, filterable; per-column units and data links."""
    return Panel(
        kind="table",
        title=title,
        description=description,
        queries=(query,),
        width=width,
        height=height,
        field_config={
            "defaults": _defaults("short", None, None, {"align": "auto", "filterable": True}),
            "overrides": _overrides(units or {}, links or {}),
        },
        options={"cellHeight": "sm", "footer": {"show": False}, "showHeader": True},
    )


def barchart(
    title: str,
    description: str,
    query: Query,
    *,
    x_field: str,
    unit: str = "short",
    horizontal: bool = False,
    stacked: bool = False,
    width: int = 12,
    height: int = 8,
) -> Panel:
    """Bars per category (the ``x_field`` column), one bar group per numeric column."""
    return Panel(
        kind="barchart",
        title=title,
        description=description,
        queries=(query,),
        width=width,
        height=height,
        field_config={"defaults": _defaults(unit, None, None), "overrides": []},
        options={
            "barWidth": 0.8,
            "groupWidth": 0.7,
            "legend": dict(_LEGEND),
            "orientation": "horizontal" if horizontal else "auto",
            "showValue": "auto",
            "stacking": "normal" if stacked else "none",
            "tooltip": dict(_TOOLTIP),
            "xField": x_field,
            "xTickLabelRotation": 0,
        },
    )


def bargauge(
    title: str,
    description: str,
    query: Query,
    *,
    unit: str,
    maximum: float,
    steps: Json,
    width: int = 12,
    height: int = 8,
) -> Panel:
    """One horizontal gauge per row, named by the row's first text column."""
    defaults = _defaults(unit, 0, steps)
    defaults.update({"min": 0, "max": maximum})
    return Panel(
        kind="bargauge",
        title=title,
        description=description,
        queries=(query,),
        width=width,
        height=height,
        field_config={"defaults": defaults, "overrides": []},
        options={
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": [], "fields": "", "values": True},
            "showUnfilled": True,
            "valueMode": "color",
        },
    )


# --- SQL snippets shared by several dashboards ---------------------------------------------------

_TOKEN = re.compile(r"@[A-Z_]+@")


def var_filter(variable: str, column: str) -> str:
    """The condition of a multi-value variable with All: ``1=1`` when All is selected."""
    return f"$__conditionalAll({column} IN (${{{variable}:singlequote}}), ${variable})"


def sql(text: str, **parts: str) -> str:
    """SQL with ``@NAME@`` tokens replaced by snippets of our own code (never outside input).

    Always known: ``@TZ@`` (the business time zone, quoted), ``@REGION@`` (the region variable's
    condition on ``region``) and ``@END_DAY@`` (the business day the time range ends on).

    >>> sql("SELECT toDate(now(), @TZ@) AS d WHERE @X@", X="1=1")
    "SELECT toDate(now(), 'Asia/Shanghai') AS d WHERE 1=1"
    """
    known = {
        "TZ": f"'{BUSINESS_TIMEZONE}'",
        "REGION": var_filter("region", "region"),
        "END_DAY": f"toDate($__toTime, '{BUSINESS_TIMEZONE}')",
    }
    # Parts may contain tokens themselves (a shared subquery): substitute until nothing changes.
    for _ in range(4):
        before = text
        for name, value in [*parts.items(), *known.items()]:
            text = text.replace(f"@{name}@", value)
        if text == before:
            break
    leftover = _TOKEN.search(text)
    if leftover:
        raise ValueError(f"unknown SQL token {leftover.group(0)}")
    return text


def day_time(column: str = "day") -> str:
    """A Date column as the DateTime of the business day's midnight, aliased ``time``."""
    return f"toDateTime({column}, '{BUSINESS_TIMEZONE}') AS time"


REGION_VARIABLE = Variable(
    name="region",
    label="Region",
    query=Query(
        "SELECT DISTINCT region FROM merchant_profiles FINAL ORDER BY region",
        columns=("region",),
    ),
    multi=True,
    include_all=True,
    description="Regions to include; All for the whole portfolio.",
)

#: Link from a ``merchant_id`` column to the merchant drill-down.
MERCHANT_LINKS = {"merchant_id": MERCHANT_LINK}
