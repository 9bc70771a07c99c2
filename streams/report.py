"""A self-contained HTML report of the most flagged merchants' turnover and alerts."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path
from zoneinfo import ZoneInfo

from schemas.common import FEN_PER_CNY
from schemas.settings import Settings
from streams.warehouse import Warehouse

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE: str = Settings.model_fields["business_timezone"].default
SEVERITY_COLOURS = {"high": "#c62828", "medium": "#ef6c00", "low": "#1565c0"}

_HAS_TABLE = (
    "SELECT count() AS n FROM system.tables "
    "WHERE database = currentDatabase() AND name = {table:String}"
)
_SPAN = """
SELECT count() AS merchant_days, uniqExact(merchant_id) AS merchants,
    min(day) AS first_day, max(day) AS last_day
FROM merchant_daily FINAL
"""
_PORTFOLIO = """
SELECT day, sum(pos_approved_amount_fen) AS turnover_fen
FROM merchant_daily FINAL
WHERE day >= {since:Date}
GROUP BY day
ORDER BY day
"""
#: The latest version of each alert decides its status, score and exposure.
_TOP = """
SELECT merchant_id, count() AS alerts, countIf(last_status != 'resolved') AS open_alerts,
    max(last_exposure_fen) AS exposure_fen
FROM
(
    SELECT merchant_id, alert_id, argMax(status, version) AS last_status,
        argMax(exposure_fen, version) AS last_exposure_fen
    FROM alerts
    GROUP BY merchant_id, alert_id
)
GROUP BY merchant_id
ORDER BY open_alerts DESC, alerts DESC, exposure_fen DESC, merchant_id
LIMIT {top_n:UInt32}
"""
_ALERTS = """
SELECT merchant_id, alert_id, argMax(alert_type, version) AS kind,
    argMax(severity, version) AS last_severity, argMax(status, version) AS last_status,
    argMax(score, version) AS last_score, min(opened_at) AS first_opened,
    argMax(reasons_json, version) AS last_reasons
FROM alerts
WHERE has({ids:Array(String)}, merchant_id)
GROUP BY merchant_id, alert_id
ORDER BY merchant_id, first_opened, alert_id
"""
_SERIES = """
SELECT merchant_id, day, pos_approved_amount_fen AS turnover_fen
FROM merchant_daily FINAL
WHERE has({ids:Array(String)}, merchant_id) AND day >= {since:Date}
ORDER BY merchant_id, day
"""
_PROFILES = """
SELECT merchant_id, name, industry, region, grid_id
FROM merchant_profiles FINAL
WHERE has({ids:Array(String)}, merchant_id)
"""


@dataclass(frozen=True)
class AlertLine:
    """One alert of a merchant, at its latest version."""

    alert_type: str
    severity: str
    status: str
    score: float
    opened_day: date
    reasons: tuple[str, ...]


@dataclass
class Section:
    """One flagged merchant: who it is, its daily turnover and its alerts."""

    merchant_id: str
    name: str = ""
    facts: str = ""
    open_alerts: int = 0
    exposure_fen: int = 0
    series: list[tuple[date, int]] = field(default_factory=list)
    alerts: list[AlertLine] = field(default_factory=list)


@dataclass
class ReportData:
    """Everything the report shows."""

    generated_at: datetime
    merchant_days: int = 0
    merchants: int = 0
    first_day: date | None = None
    last_day: date | None = None
    portfolio: list[tuple[date, int]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


def _has_table(warehouse: Warehouse, table: str) -> bool:
    return bool(warehouse.query(_HAS_TABLE, {"table": table})[0]["n"])


def _daily(rows: Sequence[tuple[date, int]], since: date, until: date) -> list[tuple[date, int]]:
    """One point per calendar day; a day without a row (no activity) is zero."""
    by_day = dict(rows)
    return [
        (since + timedelta(n), by_day.get(since + timedelta(n), 0))
        for n in range((until - since).days + 1)
    ]


def _reasons(reasons_json: str) -> tuple[str, ...]:
    try:
        reasons = json.loads(reasons_json)
    except json.JSONDecodeError:
        return ()
    ranked = sorted(reasons, key=lambda r: -float(r.get("contribution", 0.0)))
    return tuple(str(r.get("feature", "")) for r in ranked if isinstance(r, dict))


def collect(
    warehouse: Warehouse, top_n: int = 10, days: int = 90, timezone: str = DEFAULT_TIMEZONE
) -> ReportData:
    """Read the report's data: the portfolio's turnover and the ``top_n`` most flagged merchants."""
    data = ReportData(generated_at=datetime.now(UTC))
    if not _has_table(warehouse, "merchant_daily"):
        return data
    span = warehouse.query(_SPAN)[0]
    if not span["merchant_days"]:
        return data
    data.merchant_days, data.merchants = span["merchant_days"], span["merchants"]
    data.first_day, data.last_day = span["first_day"], span["last_day"]
    since = max(data.first_day, data.last_day - timedelta(days=days - 1))
    rows = warehouse.query(_PORTFOLIO, {"since": since})
    data.portfolio = _daily([(r["day"], r["turnover_fen"]) for r in rows], since, data.last_day)
    if not _has_table(warehouse, "alerts"):
        return data
    top = warehouse.query(_TOP, {"top_n": top_n})
    sections = {
        r["merchant_id"]: Section(
            r["merchant_id"], open_alerts=r["open_alerts"], exposure_fen=r["exposure_fen"]
        )
        for r in top
    }
    if not sections:
        return data
    ids = list(sections)
    if _has_table(warehouse, "merchant_profiles"):
        for r in warehouse.query(_PROFILES, {"ids": ids}):
            section = sections[r["merchant_id"]]
            section.name = r["name"]
            section.facts = f"{r['industry']} · region {r['region']} · grid {r['grid_id']}"
    zone = ZoneInfo(timezone)
    for r in warehouse.query(_ALERTS, {"ids": ids}):
        sections[r["merchant_id"]].alerts.append(
            AlertLine(
                alert_type=r["kind"],
                severity=r["last_severity"],
                status=r["last_status"],
                score=float(r["last_score"]),
                opened_day=r["first_opened"].astimezone(zone).date(),
                reasons=_reasons(r["last_reasons"]),
            )
        )
    per_merchant: dict[str, list[tuple[date, int]]] = {mid: [] for mid in ids}
    for r in warehouse.query(_SERIES, {"ids": ids, "since": since}):
        per_merchant[r["merchant_id"]].append((r["day"], r["turnover_fen"]))
    for mid, section in sections.items():
        section.series = _daily(per_merchant[mid], since, data.last_day)
    data.sections = list(sections.values())
    return data


def _cny(fen: float) -> str:
    return f"¥{fen / FEN_PER_CNY:,.0f}"


def line_chart_svg(
    series: Sequence[tuple[date, int]],
    marks: Sequence[tuple[date, str, str]] = (),
    *,
    label: str,
    width: int = 760,
    height: int = 200,
) -> str:
    """An inline SVG line chart of daily amounts in fen; ``marks`` are (day, colour, tooltip)."""
    if not series:
        return ""
    left, right, top, bottom = 80, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    first, last = series[0][0], series[-1][0]
    span = max((last - first).days, 1)
    peak = max(value for _, value in series) or 1

    def x(day: date) -> float:
        return left + (day - first).days / span * plot_w

    def y(value: float) -> float:
        return top + plot_h - value / peak * plot_h

    points = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in series)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="axis"/>',
        f'<text x="{left - 6}" y="{top + 10}" text-anchor="end">{escape(_cny(peak))}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">¥0</text>',
        f'<text x="{left}" y="{height - 8}">{first.isoformat()}</text>',
        f'<text x="{width - right}" y="{height - 8}" text-anchor="end">{last.isoformat()}</text>',
    ]
    for day, colour, tooltip in marks:
        if first <= day <= last:
            parts.append(
                f'<line x1="{x(day):.1f}" y1="{top}" x2="{x(day):.1f}" y2="{top + plot_h}" '
                f'stroke="{escape(colour)}" stroke-width="2" stroke-dasharray="4 3">'
                f"<title>{escape(tooltip)}</title></line>"
            )
    parts.append(f'<polyline points="{points}" class="turnover"/>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#212121;max-width:60rem}
h1{font-size:1.5rem}
h2{font-size:1.15rem;margin-top:2.5rem;border-top:1px solid #ddd;padding-top:1rem}
.meta,.facts{color:#616161}.empty{padding:1rem;background:#f5f5f5}
svg text{font-size:11px;fill:#616161}svg .axis{stroke:#9e9e9e}
svg .turnover{fill:none;stroke:#2e7d32;stroke-width:1.5}
table{border-collapse:collapse;margin-top:.5rem;font-size:.9rem}
th,td{border-bottom:1px solid #eee;padding:.25rem .6rem;text-align:left}
.sev{font-weight:600}
"""


def _section_html(section: Section) -> str:
    marks = [
        (
            a.opened_day,
            SEVERITY_COLOURS.get(a.severity, "#757575"),
            f"{a.opened_day} {a.alert_type} alert, {a.severity}, {a.status}",
        )
        for a in section.alerts
    ]
    title = section.merchant_id + (f" · {section.name}" if section.name else "")
    rows = "".join(
        f"<tr><td>{a.opened_day.isoformat()}</td><td>{escape(a.alert_type)}</td>"
        f'<td class="sev" style="color:{SEVERITY_COLOURS.get(a.severity, "#757575")}">'
        f"{escape(a.severity)}</td><td>{escape(a.status)}</td><td>{a.score:.2f}</td>"
        f"<td>{escape(', '.join(a.reasons[:3]))}</td></tr>"
        for a in section.alerts
    )
    return (
        f"<section><h2>{escape(title)}</h2>"
        f'<p class="facts">{escape(section.facts)}{" · " if section.facts else ""}'
        f"{len(section.alerts)} alert(s), {section.open_alerts} open · exposure "
        f"{escape(_cny(section.exposure_fen))}</p>"
        + line_chart_svg(section.series, marks, label=f"Daily POS turnover of {title}")
        + "<table><thead><tr><th>opened</th><th>type</th><th>severity</th><th>status</th>"
        f"<th>score</th><th>strongest reasons</th></tr></thead><tbody>{rows}</tbody></table>"
        "</section>"
    )


def render_html(data: ReportData) -> str:
    """The report as one HTML document: inline CSS and SVG, no scripts, every value escaped."""
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Merchant Monitor · most flagged merchants</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Merchant Monitor: most flagged merchants</h1>"
        f'<p class="meta">Generated {data.generated_at:%Y-%m-%d %H:%M} UTC from the warehouse.</p>'
    )
    if not data.merchant_days or data.first_day is None or data.last_day is None:
        body = '<p class="empty">No data: the warehouse holds no merchant-days yet.</p>'
        return head + body + "</body></html>\n"
    body = (
        f'<p class="meta">{data.merchants:,} merchants, {data.merchant_days:,} merchant-days from '
        f"{data.first_day.isoformat()} to {data.last_day.isoformat()}.</p>"
        "<h2>Portfolio: daily POS turnover</h2>"
        + line_chart_svg(data.portfolio, label="Daily POS turnover of the portfolio")
    )
    if not data.sections:
        body += '<p class="empty">No alerts have been raised yet.</p>'
    else:
        legend = " ".join(
            f'<span class="sev" style="color:{colour}">{name}</span>'
            for name, colour in SEVERITY_COLOURS.items()
        )
        body += (
            f"<p>Dashed lines mark the day an alert opened, coloured by severity: {legend}. "
            "Merchants are ranked by open alerts, then all alerts, then exposure.</p>"
            + "".join(_section_html(s) for s in data.sections)
        )
    return head + body + "</body></html>\n"


def write_report(
    warehouse: Warehouse, path: Path, top_n: int = 10, *, timezone: str = DEFAULT_TIMEZONE
) -> Path:
    """Write the HTML report of the ``top_n`` most flagged merchants to ``path``; returns it."""
    data = collect(warehouse, top_n=top_n, timezone=timezone)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    log.info("wrote report of %d merchant(s) to %s", len(data.sections), path)
    return path
