"""The HTML report's rendering: self-contained, escaped, and explicit when there is no data."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from streams.report import AlertLine, ReportData, Section, _daily, line_chart_svg, render_html

NOW = datetime(2024, 7, 1, 8, 0, tzinfo=UTC)
DAYS = [date(2024, 6, 1) + timedelta(days=n) for n in range(30)]
HOSTILE = "<script>alert(\"x\")</script> & 'quoted' 餐馆"


def _data(sections: list[Section]) -> ReportData:
    return ReportData(
        generated_at=NOW,
        merchant_days=30,
        merchants=1,
        first_day=DAYS[0],
        last_day=DAYS[-1],
        portfolio=[(day, 100_000 * (n + 1)) for n, day in enumerate(DAYS)],
        sections=sections,
    )


def _self_contained(html: str) -> None:
    assert "<script" not in html.lower()
    assert not re.search(r"\s(src|href)=", html), "no external assets"
    assert html.count("<svg") == html.count("</svg>")


def test_an_empty_warehouse_says_no_data() -> None:
    html = render_html(ReportData(generated_at=NOW))
    assert "No data: the warehouse holds no merchant-days yet." in html
    _self_contained(html)


def test_without_alerts_the_portfolio_is_shown_and_the_absence_said() -> None:
    html = render_html(_data([]))
    assert "No alerts have been raised yet." in html
    assert html.count("<svg") == 1
    _self_contained(html)


def test_text_from_the_warehouse_is_escaped() -> None:
    alert = AlertLine("credit", "high", "open", 0.91, DAYS[20], (HOSTILE, "amount_sum_7d"))
    section = Section(
        "m-1",
        name=HOSTILE,
        facts=HOSTILE,
        open_alerts=1,
        exposure_fen=123_456_00,
        series=[(day, 5_000) for day in DAYS],
        alerts=[alert],
    )
    html = render_html(_data([section]))
    _self_contained(html)
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "¥123,456" in html
    assert "2024-06-21" in html
    assert html.count("<svg") == 2


def test_chart_has_a_point_per_day_and_skips_marks_outside_it() -> None:
    series = [(day, 0) for day in DAYS]  # all zero: no division by zero
    svg = line_chart_svg(
        series, [(DAYS[3], "#c62828", "inside"), (date(2024, 1, 1), "red", "out")], label="x"
    )
    points = re.search(r'points="([^"]+)"', svg)
    assert points is not None
    assert len(points.group(1).split()) == len(DAYS)
    assert "inside" in svg
    assert ">out<" not in svg
    assert line_chart_svg([], label="x") == ""


def test_days_without_activity_count_as_zero() -> None:
    filled = _daily([(DAYS[0], 5), (DAYS[3], 7)], DAYS[0], DAYS[4])
    assert filled == [(DAYS[0], 5), (DAYS[1], 0), (DAYS[2], 0), (DAYS[3], 7), (DAYS[4], 0)]
