"""Latency matching, the open-loop request plan and the report's new keys, from plain values."""

from __future__ import annotations

from bench import report
from bench.api import request_plan
from bench.common import quantile, summary_ms
from bench.latency import INPUT_TOPICS, Reached, Written, closable_at, latencies
from bench.scaleout import _shared

POS, ACCT = INPUT_TOPICS


def _reached() -> Reached:
    reached = Reached()
    # partition 0: POS reaches day 14 at t=10, account only at t=12 (the later one decides)
    for ts, day in [(1.0, 10), (5.0, 13), (10.0, 14), (11.0, 15)]:
        reached.add(POS, 0, ts, day)
    for ts, day in [(2.0, 10), (12.0, 14)]:
        reached.add(ACCT, 0, ts, day)
    return reached


def test_a_day_is_closable_when_both_inputs_passed_it() -> None:
    # lateness 3: day 10 closes when the watermark reaches day 14
    assert closable_at(_reached(), 0, 10, 3) == (10.0, 12.0)
    assert closable_at(_reached(), 0, 11, 3) is None  # account never reached day 15
    assert closable_at(_reached(), 1, 10, 3) is None  # nothing on partition 1


def test_latency_runs_from_the_trigger_to_the_first_write_inside_the_window() -> None:
    rows = [
        Written(12.5, "m1", 10, ("m1", "a", 1)),
        Written(13.0, "m1", 10, ("m1", "a", 1)),  # written again later: the first write counts
        Written(12.9, "m2", 10, ("m2", "b", 1)),
        Written(20.0, "m3", 10, ("m3", "c", 1)),  # merchant of an unknown partition: skipped
        Written(30.0, "m1", 11, ("m1", "a", 2)),  # its day never became closable: skipped
    ]
    partitions = {"m1": 0, "m2": 0}
    got = latencies(rows, _reached(), partitions, 3, (11.0, 13.0))
    assert sorted(round(x, 3) for x in got) == [0.5, 0.9]
    assert latencies(rows, _reached(), partitions, 3, (0.0, 11.0)) == []
    first = latencies(rows, _reached(), partitions, 3, (0.0, 11.0), from_first=True)
    assert sorted(round(x, 3) for x in first) == [2.5, 2.9]


def test_nearest_rank_quantiles() -> None:
    values = [float(v) for v in range(1, 41)]
    assert quantile(values, 0.5) == 20.0
    assert quantile(values, 0.99) == 40.0
    assert summary_ms([0.001, 0.002]) == {"n": 2, "min": 1.0, "p50": 1.0, "p99": 2.0, "max": 2.0}
    assert summary_ms([])["p99"] is None


def test_request_plan_is_reproducible_and_mixes_in_unknown_ids() -> None:
    plan = request_plan(["M1", "M2", "M3"], 2000, seed=3)
    assert plan == request_plan(["M1", "M2", "M3"], 2000, seed=3)
    unknown = [p for p in plan if p not in {"M1", "M2", "M3"}]
    assert 50 <= len(unknown) <= 160
    assert {"M1", "M2", "M3"} <= set(plan)


def test_merchants_in_more_than_one_warehouse_are_counted() -> None:
    assert _shared([{"a", "b"}, {"c"}]) == 0
    assert _shared([{"a", "b"}, {"b", "c"}, {"c"}]) == 2


def _latency_run(p99_5k: float) -> dict[str, dict[str, object]]:
    def fig(p50: float, p99: float, n: int = 10) -> dict[str, object]:
        return {"n": n, "p50": p50, "p99": p99, "max": p99}

    def rate(p50: float, p99: float) -> dict[str, object]:
        figures: dict[str, object] = {key: fig(p50, p99) for key, _ in report.LATENCY_FIGURES}
        figures["achieved_input_eps"] = 990.0
        figures["caught_up_after_publish_s"] = 0.5
        return figures

    return {"1000": rate(800.0, 1500.0), "5000": rate(900.0, p99_5k)}


def _api_run(p99: float, load: float | None) -> dict[str, object]:
    return {
        "n": 100,
        "p50": 1.0,
        "p99": p99,
        "max": p99,
        "requested_rps": 500.0,
        "achieved_rps": 499.0,
        "status": {"200": 90, "404": 10},
        "errors": 0,
        "client_send_lag_p99_ms": 1.0,
        "load_eps": load,
    }


def test_report_fills_latency_api_scale_out_and_targets() -> None:
    doc = report.build(
        {
            "date": "d",
            "nproc": 2,
            "python": "3.11",
            "runs": 3,
            "merchants": 1,
            "days": 1,
            "events": 1,
            "pos_events": 1,
            "account_events": 0,
            "partitions": 4,
        },
        {"raw_consumer": [9.0], "faust_noop": [5.0], "faust_naive_table": [1.0], "pipeline": [3.0]},
        {},
        [1.0],
        [1.0],
        None,
        None,
        latency=[_latency_run(1900.0), _latency_run(2500.0), _latency_run(2100.0)],
        api={
            "idle": [_api_run(2.0, None), _api_run(3.0, None), _api_run(4.0, None)],
            "load": [_api_run(300.0, 1000.0)],
        },
        scale_out=[
            {"one_eps": 100.0, "two_eps": 150.0, "check": {"correct": True}},
            {"one_eps": 100.0, "two_eps": 170.0, "check": {"correct": False}},
        ],
        tables={
            "merchant-state": {
                "keyed_by": "merchant",
                "keys": 3,
                "records": 9,
                "record_bytes": 5000,
                "p50": 900,
                "p99": 2000,
                "max": 2100,
                "mean": 1000.0,
            }
        },
    )
    assert doc["latency_ms"] == {
        "p50_1k": 800.0,
        "p99_1k": 1500.0,
        "p50_5k": 900.0,
        "p99_5k": 2100.0,
    }
    assert doc["detail"]["latency_ms"]["5000"]["alert_row"]["p99"]["max"] == 2500.0
    assert doc["limit_api_ms"] == {"p50": 1.0, "p99": 3.0}
    assert doc["limit_api_ms_under_load"]["p99"] == 300.0
    assert doc["scale_out"]["ratio"] == 1.6
    assert doc["scale_out"]["correct"] is False  # one incorrect run makes it false
    assert "latency_ms" not in doc["not_measured"]
    met = {t["key"]: t["met"] for t in doc["targets"]}
    assert met == {
        "pipeline_eps": False,
        "pipeline_over_naive": True,
        "p99_5k": False,
        "merchant_state_max": False,
        "api_p99": True,
        "api_p99_load": False,
        "scale_out_correct": False,
        "backtest_eps": False,
    }
    text = report.markdown(doc)
    assert "## Latency: event publication to its alert row in the warehouse" in text
    assert "| idle | 1.0 | 3.0 (2.0-4.0) |" in text
    assert "| full pipeline, one worker (events/s) | >= 8,000 | 3.0 | **no** |" in text
