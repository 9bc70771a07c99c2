"""bench.json and docs/benchmarks.md from measured samples; unmeasured keys are null, with why."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

THROUGHPUT_KEYS = ("raw_consumer", "faust_noop", "faust_naive_table", "pipeline")
REQUIRED_KEYS = (
    "throughput_eps",
    "throughput_ratios",
    "latency_ms",
    "state_bytes_per_merchant",
    "warehouse_rows_per_s",
    "backtest_eps",
    "limit_api_ms",
    "simulator_eps",
    "scale_out",
)
LATENCY_KEYS = ("p50_1k", "p99_1k", "p50_5k", "p99_5k")
#: bench.json latency key suffix of each publication rate (events/s).
LATENCY_RATES = {"1000": "1k", "5000": "5k"}
NOT_MEASURED = {
    "latency_ms": "not measured: the latency step did not run or failed",
    "limit_api_ms": "not measured: the limit API step did not run or failed",
    "scale_out": "not measured: the scale-out step did not run or failed",
}
#: Targets of the issues: (key in _targets, what, comparison, bound).
TARGETS = (
    ("pipeline_eps", "full pipeline, one worker (events/s)", ">=", 8000.0),
    ("pipeline_over_naive", "pipeline / naive Faust table", ">=", 2.5),
    ("p99_5k", "p99 latency at 5,000 events/s (ms)", "<=", 2000.0),
    (
        "merchant_state_max",
        "serialized state per merchant: largest `merchant-state` value, key included (bytes)",
        "<=",
        2048.0,
    ),
    ("api_p99", "limit API p99 at 500 requests/s, worker idle (ms)", "<=", 20.0),
    ("api_p99_load", "limit API p99 at 500 requests/s, worker consuming a stream (ms)", "<=", 20.0),
    ("scale_out_correct", "two workers: each merchant on one worker, totals exact", "==", True),
    ("backtest_eps", "backtest, load included (events/s)", ">=", 150_000.0),
)


def spread(values: Sequence[float | None]) -> dict[str, Any] | None:
    """Median, min, max and every run, rounded for reading; None when no run has a value."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "runs": [round(v, 1) for v in values],
    }


def percentile(values: Sequence[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build(
    meta: Mapping[str, Any],
    throughput: Mapping[str, Sequence[float]],
    processing: Mapping[str, Sequence[float]],
    backtest: Sequence[float],
    simulator: Sequence[float],
    state_bytes: Sequence[int] | None,
    warehouse: Sequence[float] | None,
    not_measured: Mapping[str, str] | None = None,
    *,
    latency: Sequence[Mapping[str, Mapping[str, Any]]] | None = None,
    api: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    scale_out: Sequence[Mapping[str, Any]] | None = None,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
    backtest_one_process: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The bench.json document: headline medians at the issue's keys, details beside them.

    ``latency``: per run, per rate ("1000", "5000"), the figures of bench.latency.run_once;
    ``api``: per condition ("idle", "load"), per run, ApiRun.figures(); ``scale_out``: per run,
    {"one_eps", "two_eps", "check": {...}} (bench.scaleout); ``tables``: the worker's table
    sizes read from its changelogs (bench.tables.changelog_sizes).
    """
    reasons = dict(NOT_MEASURED)
    reasons.update(not_measured or {})
    eps = {k: round(statistics.median(throughput[k]), 1) for k in THROUGHPUT_KEYS}
    ratios = {
        f"pipeline_over_{name}": round(eps["pipeline"] / eps[key], 3)
        for name, key in (
            ("naive", "faust_naive_table"),
            ("noop", "faust_noop"),
            ("raw", "raw_consumer"),
        )
    }
    doc: dict[str, Any] = {
        "run": dict(meta),
        "throughput_eps": eps,
        "throughput_ratios": ratios,
        "latency_ms": dict.fromkeys(LATENCY_KEYS),
        "state_bytes_per_merchant": None,
        "warehouse_rows_per_s": None,
        "backtest_eps": round(statistics.median(backtest), 1),
        "limit_api_ms": {"p50": None, "p99": None},
        "scale_out": None,
        "simulator_eps": round(statistics.median(simulator), 1),
        "detail": {
            "throughput_eps": {k: spread(throughput[k]) for k in THROUGHPUT_KEYS},
            "processing_eps": {k: spread(v) for k, v in processing.items() if v},
            "backtest_eps": spread(backtest),
            "backtest_eps_one_process": spread(backtest_one_process or []),
            "simulator_eps": spread(simulator),
        },
    }
    if state_bytes:
        doc["state_bytes_per_merchant"] = {
            "median": int(statistics.median(state_bytes)),
            "p99": percentile(state_bytes, 0.99),
            "max": max(state_bytes),
            "merchants": len(state_bytes),
        }
    else:
        reasons.setdefault("state_bytes_per_merchant", "not measured: the step failed")
    if warehouse:
        doc["warehouse_rows_per_s"] = round(statistics.median(warehouse), 1)
        doc["detail"]["warehouse_rows_per_s"] = spread(warehouse)
    else:
        reasons.setdefault("warehouse_rows_per_s", "not measured: the step failed")
    if latency:
        _add_latency(doc, latency)
        reasons.pop("latency_ms", None)
        missing = [k for k, v in doc["latency_ms"].items() if v is None]
        if missing:
            reasons["latency_ms"] = (
                f"partly not measured ({', '.join(missing)}): no alert row had its trigger "
                "published inside that rate's window (run longer or with more merchants)"
            )
    if api and api.get("idle"):
        _add_api(doc, api)
        reasons.pop("limit_api_ms", None)
    if scale_out:
        _add_scale_out(doc, scale_out)
        reasons.pop("scale_out", None)
    if tables:
        doc["table_bytes_per_key"] = dict(tables)
    doc["targets"] = _targets(doc)
    doc["not_measured"] = {k: v for k, v in reasons.items() if k in REQUIRED_KEYS}
    return doc


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


#: The latency figures of each rate, in the order the document shows them.
LATENCY_FIGURES = (
    ("broker_delivery", "broker alone: publication to a plain consumer"),
    ("day_closed", "publication to the day closing in the worker"),
    ("alert_topic", "publication to the alert on merchant.alerts.v1"),
    ("alert_row", "publication to the alert row in the warehouse (headline)"),
    ("alert_row_from_first_input", "the same, from the first input past the day"),
    ("closed_day_row", "publication to the closed merchant_daily row in the warehouse"),
)


def _add_latency(doc: dict[str, Any], runs: Sequence[Mapping[str, Mapping[str, Any]]]) -> None:
    detail: dict[str, Any] = {}
    for rate, suffix in LATENCY_RATES.items():
        per_run = [r[rate] for r in runs if rate in r]
        if not per_run:
            continue
        figures: dict[str, Any] = {}
        for key, _ in LATENCY_FIGURES:
            stats = [r[key] for r in per_run if key in r]
            lows = [s["min"] for s in stats if s.get("min") is not None]
            figures[key] = {
                "p50": spread([s["p50"] for s in stats]),
                "p99": spread([s["p99"] for s in stats]),
                "n": [s["n"] for s in stats],
                "min": min(lows) if lows else None,
            }
        for key in ("achieved_input_eps", "caught_up_after_publish_s"):
            figures[key] = spread([r.get(key) for r in per_run])
        detail[rate] = figures
        doc["latency_ms"][f"p50_{suffix}"] = _median([r["alert_row"]["p50"] for r in per_run])
        doc["latency_ms"][f"p99_{suffix}"] = _median([r["alert_row"]["p99"] for r in per_run])
    doc["detail"]["latency_ms"] = detail


def _add_api(doc: dict[str, Any], api: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    detail: dict[str, Any] = {}
    for condition, runs in api.items():
        if not runs:
            continue
        statuses: dict[str, int] = {}
        for r in runs:
            for status, n in r["status"].items():
                statuses[status] = statuses.get(status, 0) + n
        detail[condition] = {
            **{
                key: spread([r.get(key) for r in runs])
                for key in ("p50", "p99", "max", "achieved_rps", "client_send_lag_p99_ms")
            },
            "requests": sum(r["n"] for r in runs),
            "requested_rps": runs[0]["requested_rps"],
            "status": dict(sorted(statuses.items())),
            "errors": sum(r["errors"] for r in runs),
        }
        detail[condition]["load_eps"] = runs[0].get("load_eps")
    idle = api["idle"]
    doc["limit_api_ms"] = {
        "p50": _median([r["p50"] for r in idle]),
        "p99": _median([r["p99"] for r in idle]),
    }
    if api.get("load"):
        doc["limit_api_ms_under_load"] = {
            "p50": _median([r["p50"] for r in api["load"]]),
            "p99": _median([r["p99"] for r in api["load"]]),
            "load_eps": api["load"][0].get("load_eps"),
        }
    doc["detail"]["limit_api_ms"] = detail


def _add_scale_out(doc: dict[str, Any], runs: Sequence[Mapping[str, Any]]) -> None:
    one = [r["one_eps"] for r in runs]
    two = [r["two_eps"] for r in runs]
    ratios = [t / o for o, t in zip(one, two, strict=True)]
    checks = [r["check"] for r in runs]
    doc["scale_out"] = {
        "one_worker_eps": _median(one),
        "two_workers_eps": _median(two),
        "ratio": round(statistics.median(ratios), 3),
        "correct": all(c.get("correct") is True for c in checks),
    }
    doc["detail"]["scale_out"] = {
        "one_worker_eps": spread(one),
        "two_workers_eps": spread(two),
        "ratio": {
            k: (round(v, 3) if k != "runs" else [round(x, 3) for x in v])
            for k, v in (spread(ratios) or {}).items()
        },
        "publish_s": [r.get("publish_s") for r in runs],
        "checks": checks,
    }


def _targets(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    under_load = doc.get("limit_api_ms_under_load") or {}
    scale = doc.get("scale_out") or {}
    measured = {
        "pipeline_eps": doc["throughput_eps"]["pipeline"],
        "pipeline_over_naive": doc["throughput_ratios"]["pipeline_over_naive"],
        "p99_5k": doc["latency_ms"]["p99_5k"],
        "merchant_state_max": (doc.get("table_bytes_per_key") or {})
        .get("merchant-state", {})
        .get("max"),
        "api_p99": doc["limit_api_ms"]["p99"],
        "api_p99_load": under_load.get("p99"),
        "scale_out_correct": scale.get("correct"),
        "backtest_eps": doc["backtest_eps"],
    }
    out = []
    for key, what, op, bound in TARGETS:
        value = measured[key]
        met = None
        if value is not None:
            met = {">=": value >= bound, "<=": value <= bound, "==": value == bound}[op]
        shown = "true" if bound is True else f"{bound:,g}"
        out.append(
            {"key": key, "what": what, "target": f"{op} {shown}", "measured": value, "met": met}
        )
    return out


def markdown(doc: Mapping[str, Any]) -> str:
    """docs/benchmarks.md: what was measured, how, and the figures of this one run."""
    from bench.report_md import render  # the renderer imports this module's constants

    return render(doc)


def write(doc: Mapping[str, Any], json_path: Path, md_path: Path) -> None:
    json_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown(doc))
