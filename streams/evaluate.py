"""The I/O side of the evaluation harness: daily series from a simulation, report and table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from detectors.evaluation import (
    DEFAULT_PARAMS,
    DailySeries,
    DetectorRun,
    EvaluationParams,
    evaluate,
    limit_changes,
    outreach_scores,
)
from schemas import topics
from streams.detection import (
    credit_extras,
    detect,
    detector_runs,
    lead_by_trajectory,
    seasonal_false_share,
)
from streams.errors import InputFileError
from streams.sim.calendar import day_starts_utc
from streams.sim.payloads import event_millis
from streams.sim.simulation import Simulation

_NOT_RUN = (
    "not measured: the report was given its own detectors, so the detectors' alerts and scores "
    "that the {} acts on were not computed"
)

#: (column, topic, filter column, filter value, summed column or None for a count)
_SERIES: tuple[tuple[str, str, str | None, str | None, str | None], ...] = (
    ("pos_approved_count", topics.POS_TRANSACTIONS, "kind", "approved", None),
    ("pos_approved_amount_fen", topics.POS_TRANSACTIONS, "kind", "approved", "amount_fen"),
    ("pos_declined_count", topics.POS_TRANSACTIONS, "kind", "declined", None),
    ("pos_refund_count", topics.POS_TRANSACTIONS, "kind", "refund", None),
    ("pos_refund_amount_fen", topics.POS_TRANSACTIONS, "kind", "refund", "amount_fen"),
    ("pos_chargeback_count", topics.POS_TRANSACTIONS, "kind", "chargeback", None),
    ("acct_credit_amount_fen", topics.ACCOUNT_TRANSACTIONS, "direction", "credit", "amount_fen"),
    ("acct_debit_amount_fen", topics.ACCOUNT_TRANSACTIONS, "direction", "debit", "amount_fen"),
    (
        "acct_settlement_amount_fen",
        topics.ACCOUNT_TRANSACTIONS,
        "category",
        "pos_settlement",
        "amount_fen",
    ),
    ("acct_returned_item_count", topics.ACCOUNT_TRANSACTIONS, "category", "returned_item", None),
    (
        "acct_loan_repayment_other_count",
        topics.ACCOUNT_TRANSACTIONS,
        "category",
        "loan_repayment_other",
        None,
    ),
    ("loan_overdue_count", topics.LOAN_EVENTS, "kind", "overdue", None),
)


class _Grid:
    """Maps events to (merchant, business day) cells of the window."""

    def __init__(self, simulation: Simulation) -> None:
        self.ids = pa.array(simulation.merchant_ids, type=pa.string())
        self.days = simulation.days
        pop = simulation.scenario.population
        self.starts = day_starts_utc(pop.start, pop.days, pop.timezone) * 1000

    def cells(self, topic: str, table: pa.Table) -> npt.NDArray[np.int64]:
        merchant = pc.index_in(table.column("merchant_id"), value_set=self.ids)
        if merchant.null_count:
            raise InputFileError(f"{topic} has events of merchants without a label")
        day = np.searchsorted(self.starts, event_millis(topic, table), side="right") - 1
        return np.asarray(merchant.to_numpy(zero_copy_only=False), np.int64) * self.days + day

    def total(
        self, cells: npt.NDArray[np.int64], weights: npt.NDArray[np.int64] | None
    ) -> npt.NDArray[np.int64]:
        size = len(self.ids) * self.days
        # float64 sums are exact below 2**53 fen (90 trillion yuan) per merchant-day.
        summed = np.bincount(cells, weights=weights, minlength=size)
        return np.round(summed).astype(np.int64).reshape(len(self.ids), self.days)


def daily_series(simulation: Simulation) -> DailySeries:
    """Per merchant-day totals of the simulation's events (the detectors' input)."""
    grid = _Grid(simulation)
    columns: dict[str, npt.NDArray[np.int64]] = {}
    for name, topic, key, value, summed in _SERIES:
        table = simulation.table(topic)
        if key is not None:
            table = table.filter(pc.equal(table.column(key), value))
        weights = table.column(summed).to_numpy() if summed else None
        columns[name] = grid.total(grid.cells(topic, table), weights)
    columns["acct_end_balance_fen"] = _end_balances(
        grid, simulation.table(topics.ACCOUNT_TRANSACTIONS)
    )
    return DailySeries(tuple(simulation.merchant_ids), simulation.start, columns)


def _end_balances(grid: _Grid, table: pa.Table) -> npt.NDArray[np.int64]:
    """Balance after the day's last booking, carried over days without bookings (0 before)."""
    cells = grid.cells(topics.ACCOUNT_TRANSACTIONS, table)
    balance = table.column("balance_after_fen").to_numpy()
    out = np.full(len(grid.ids) * grid.days, -1, dtype=np.int64)
    # Rows are in event-time order: the last row of a cell is its first in reversed order.
    reversed_cells = cells[::-1]
    unique, first = np.unique(reversed_cells, return_index=True)
    out[unique] = np.arange(cells.size)[::-1][first]
    rows = out.reshape(len(grid.ids), grid.days)
    filled = np.maximum.accumulate(np.where(rows >= 0, np.arange(grid.days), -1), axis=1)
    picked = np.take_along_axis(rows, np.maximum(filled, 0), axis=1)
    return np.where(filled >= 0, balance[np.maximum(picked, 0)], 0).astype(np.int64)


def evaluation_report(
    simulation: Simulation,
    detectors: Mapping[str, DetectorRun] | None = None,
    params: EvaluationParams = DEFAULT_PARAMS,
) -> dict[str, Any]:
    """report.json: every detector scored on its task, plus outreach and limit metrics."""
    series = daily_series(simulation)
    pop = simulation.scenario.population
    extras: dict[str, Any] = {}
    outreach: dict[str, Any] = {
        "precision_at_capacity": None,
        "note": _NOT_RUN.format("outreach policy"),
    }
    limits: dict[str, Any] = {
        "share_daily_changes_over_10pct": None,
        "note": _NOT_RUN.format("limit policy"),
    }
    if detectors is None:
        detection = detect(simulation)
        detectors = detector_runs(detection)
        borrowers = set(
            simulation.table(topics.LOAN_EVENTS).column("merchant_id").unique().to_pylist()
        )
        labels = simulation.labels
        extras = {
            "dormancy": {"seasonal_flagged_share": seasonal_false_share(detection, labels)},
            "churn": {
                "by_trajectory": lead_by_trajectory(
                    detection, labels, "churn", params.churn_grace_days
                )
            },
            "credit": credit_extras(detection, labels, borrowers, simulation.start, pop.days),
            "runner": {
                "merchant_days": detection.result.merchant_days,
                "seconds": round(detection.result.seconds, 1),
            },
        }
        actions = detection.actions
        outreach = outreach_scores(
            actions.worked, labels, (simulation.start, simulation.end), actions.managers
        )
        outreach["capacity_per_manager_day"] = actions.params.outreach.manager_capacity_per_day
        changes = limit_changes(actions.limits, 0.10)
        limits = {
            "share_daily_changes_over_10pct": changes["share_over"],
            "day_pairs": changes["day_pairs"],
            "rises_over_10pct": changes["rises_over"],
            "cuts_over_10pct": changes["cuts_over"],
            "merchants_with_a_limit": sum(1 for v in actions.limits.values() if any(v)),
        }
    scored = evaluate(series, simulation.labels, detectors, params)
    for task, extra in extras.items():
        if task in scored:
            scored[task]["extra"] = extra
    return {
        "detectors": scored,
        "runner": extras.get("runner"),
        "outreach": outreach,
        "limits": limits,
        "simulation": {
            "scenario": simulation.scenario.name,
            "seed": simulation.seed,
            "merchants": pop.merchants,
            "days": pop.days,
            "start": pop.start.isoformat(),
        },
        "definitions": {
            "dormancy_days": params.dormancy_days,
            "dormancy_grace_days": params.dormancy_grace_days,
            "churn_grace_days": params.churn_grace_days,
            "credit_grace_days": params.credit_grace_days,
            "reference": "docs/simulator.md, section 'Evaluation'",
        },
    }


def write_report(report: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _fmt(value: object, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def render_table(report: Mapping[str, Any]) -> str:
    """A readable table of the report."""
    header = (
        f"{'detector':30} {'task':9} {'precision':>9} {'recall':>7} {'lead d':>7} "
        f"{'FA/1000mm':>10}  source"
    )
    lines = [header, "-" * len(header)]
    for name, entry in report["detectors"].items():
        lines.append(
            f"{name:30} {entry['task']:9} {_fmt(entry['precision'], '.2f'):>9} "
            f"{_fmt(entry['recall'], '.2f'):>7} {_fmt(entry['median_lead_days'], '.1f'):>7} "
            f"{_fmt(entry['false_alerts_per_1000_merchant_months'], '.1f'):>10}  {entry['source']}"
        )
    lines.append("")
    outreach, limits = report["outreach"], report["limits"]
    if outreach["precision_at_capacity"] is None:
        lines.append(f"outreach precision at capacity: -  ({outreach.get('note', '')})")
    else:
        lines.append(
            f"outreach precision at capacity: {outreach['precision_at_capacity']:.2f} "
            f"({outreach['tasks_right']} right of {outreach['tasks_judged']} judged; "
            f"{outreach['tasks_opened']} tasks opened, "
            f"{_fmt(outreach['tasks_per_manager_week'], '.1f')} per manager-week)"
        )
        lines.append(
            f"  leaving merchants reached: {_fmt(outreach['leaving_reached'], '.2f')}; "
            f"defaulters reviewed before default: "
            f"{_fmt(outreach['defaulters_reviewed_before_default'], '.2f')}; "
            f"offers to troubled merchants: {outreach['offers_to_troubled']} of "
            f"{outreach['offers_opened']}"
        )
    if limits["share_daily_changes_over_10pct"] is None and "note" in limits:
        lines.append(f"limits, share of daily changes > 10%: -  ({limits['note']})")
    else:
        lines.append(
            f"limits, share of daily changes > 10%: "
            f"{_fmt(limits['share_daily_changes_over_10pct'], '.3f')} "
            f"({limits['rises_over_10pct']} rises, {limits['cuts_over_10pct']} cuts in "
            f"{limits['day_pairs']} day pairs of {limits['merchants_with_a_limit']} merchants "
            f"with a limit)"
        )
    return "\n".join(lines)
