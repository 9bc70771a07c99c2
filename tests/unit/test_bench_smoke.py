"""The benchmark report writer: required keys and nulls from fake numbers (nothing is timed)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report

META = {
    "date": "2026-01-01 00:00 UTC",
    "nproc": 2,
    "python": "3.11.7",
    "command": "python -m bench",
    "runs": 3,
    "merchants": 10,
    "days": 5,
    "partitions": 4,
    "events": 1000,
    "pos_events": 900,
    "account_events": 100,
    "warehouse_rows": 100,
}
FAKE = {
    "raw_consumer": [100.0, 120.0, 110.0],
    "faust_noop": [40.0, 50.0, 45.0],
    "faust_naive_table": [10.0, 12.0, 11.0],
    "pipeline": [20.0, 22.0, 24.0],
}


def _doc(warehouse: list[float] | None) -> dict[str, object]:
    return report.build(
        META, FAKE, {"faust_noop": [60.0]}, [5.0, 6.0, 7.0], [8.0, 9.0, 10.0], [600, 700], warehouse
    )


def test_report_has_every_required_key_with_medians_and_ratios(tmp_path: Path) -> None:
    doc = _doc([1.0, 3.0, 2.0])
    out, md = tmp_path / "bench.json", tmp_path / "docs" / "benchmarks.md"
    report.write(doc, out, md)
    loaded = json.loads(out.read_text())
    assert set(report.REQUIRED_KEYS) <= set(loaded)
    assert set(loaded["throughput_eps"]) == set(report.THROUGHPUT_KEYS)
    assert loaded["throughput_eps"]["pipeline"] == 22.0
    assert loaded["throughput_ratios"]["pipeline_over_naive"] == 2.0
    assert loaded["detail"]["throughput_eps"]["raw_consumer"]["min"] == 100.0
    assert loaded["warehouse_rows_per_s"] == 2.0
    assert loaded["latency_ms"] == dict.fromkeys(report.LATENCY_KEYS)
    assert loaded["limit_api_ms"] == {"p50": None, "p99": None}
    text = md.read_text()
    assert "2 CPUs" in text
    assert "`latency_ms`: null, not measured" in text


def test_a_missing_measurement_is_null_with_a_reason() -> None:
    doc = _doc(None)
    assert doc["warehouse_rows_per_s"] is None
    assert str(doc["not_measured"]["warehouse_rows_per_s"]).startswith("not measured")  # type: ignore[index]
