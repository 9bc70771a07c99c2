"""What the demo prints: totals from the warehouse, checked against the published events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import orjson

from schemas import topics
from schemas.common import FEN_PER_CNY
from streams.warehouse import Warehouse


@dataclass
class Totals:
    """Portfolio totals that the warehouse must reproduce exactly."""

    events: int = 0
    merchants: int = 0
    pos_approved_count: int = 0
    pos_approved_amount_fen: int = 0
    pos_refund_amount_fen: int = 0
    pos_declined_count: int = 0
    acct_credit_amount_fen: int = 0
    acct_debit_amount_fen: int = 0
    acct_settlement_amount_fen: int = 0

    def matches(self, other: Totals) -> bool:
        return all(
            getattr(self, f.name) == getattr(other, f.name)
            for f in fields(self)
            if f.name != "events"
        )


def expected_totals(messages: Iterable[tuple[str, bytes, bytes, datetime]]) -> Totals:
    """Totals computed straight from the published messages, without any pipeline code."""
    totals = Totals()
    merchants = set()
    for topic, key, value, _ in messages:
        if topic not in (topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS):
            continue
        totals.events += 1
        merchants.add(key)
        doc = orjson.loads(value)
        amount = doc["amount_fen"]
        if topic == topics.POS_TRANSACTIONS:
            if doc["kind"] == "approved":
                totals.pos_approved_count += 1
                totals.pos_approved_amount_fen += amount
            elif doc["kind"] == "refund":
                totals.pos_refund_amount_fen += amount
            elif doc["kind"] == "declined":
                totals.pos_declined_count += 1
        elif doc["direction"] == "credit":
            totals.acct_credit_amount_fen += amount
            if doc["category"] == "pos_settlement":
                totals.acct_settlement_amount_fen += amount
        else:
            totals.acct_debit_amount_fen += amount
    totals.merchants = len(merchants)
    return totals


_TOTALS_SQL = """
SELECT
    uniqExact(merchant_id) AS merchants,
    sum(pos_approved_count) AS pos_approved_count,
    sum(pos_approved_amount_fen) AS pos_approved_amount_fen,
    sum(pos_refund_amount_fen) AS pos_refund_amount_fen,
    sum(pos_declined_count) AS pos_declined_count,
    sum(acct_credit_amount_fen) AS acct_credit_amount_fen,
    sum(acct_debit_amount_fen) AS acct_debit_amount_fen,
    sum(acct_settlement_amount_fen) AS acct_settlement_amount_fen,
    count() AS merchant_days
FROM merchant_daily FINAL
"""


def warehouse_totals(warehouse: Warehouse) -> Totals:
    """The same totals, summed over the ``merchant_daily`` table."""
    row = warehouse.query(_TOTALS_SQL)[0]
    return Totals(**{f.name: int(row[f.name]) for f in fields(Totals) if f.name != "events"})


_DECLINERS_SQL = """
SELECT merchant_id,
       sumIf(pos_approved_amount_fen, day > max_day - 14) AS last_14d_fen,
       sumIf(pos_approved_amount_fen, day <= max_day - 14 AND day > max_day - 42) / 2
           AS prior_14d_fen
FROM merchant_daily FINAL
CROSS JOIN (SELECT max(day) AS max_day FROM merchant_daily) AS m
GROUP BY merchant_id
HAVING prior_14d_fen > 0
ORDER BY last_14d_fen / prior_14d_fen ASC, merchant_id
LIMIT {limit:UInt32}
"""


def _cny(fen: int | float) -> str:
    return f"{fen / FEN_PER_CNY:,.2f}"


def render_summary(
    warehouse: Warehouse, found: Totals, expected: Totals, simulation: Any | None = None
) -> str:
    """A readable report: totals (warehouse vs published), steepest decliners, dead letters."""
    lines = ["", "What the warehouse holds (merchant_daily)", "-" * 64]
    lines.append(f"{'':34}{'warehouse':>15}{'published':>15}")
    rows = [
        ("merchants", found.merchants, expected.merchants, str),
        ("approved POS transactions", found.pos_approved_count, expected.pos_approved_count, str),
        (
            "approved POS turnover, CNY",
            found.pos_approved_amount_fen,
            expected.pos_approved_amount_fen,
            _cny,
        ),
        ("refunds, CNY", found.pos_refund_amount_fen, expected.pos_refund_amount_fen, _cny),
        ("declined POS attempts", found.pos_declined_count, expected.pos_declined_count, str),
        (
            "account credits, CNY",
            found.acct_credit_amount_fen,
            expected.acct_credit_amount_fen,
            _cny,
        ),
        (
            "  of which POS settlement, CNY",
            found.acct_settlement_amount_fen,
            expected.acct_settlement_amount_fen,
            _cny,
        ),
        ("account debits, CNY", found.acct_debit_amount_fen, expected.acct_debit_amount_fen, _cny),
    ]
    for label, got, want, fmt in rows:
        mark = "" if got == want else "   <-- differs"
        lines.append(f"{label:34}{fmt(got):>15}{fmt(want):>15}{mark}")
    verdict = "match exactly" if found.matches(expected) else "DO NOT MATCH"
    lines.append(f"warehouse totals and published events {verdict}")
    decliners = warehouse.query(_DECLINERS_SQL, {"limit": 5})
    if decliners:
        lines += ["", "Steepest turnover declines (last 14 days vs the 28 before, per 14 days)"]
        for row in decliners:
            lines.append(
                f"  {row['merchant_id']:24} {_cny(row['last_14d_fen']):>14} CNY "
                f"from {_cny(row['prior_14d_fen']):>14} CNY"
            )
    alerts = warehouse.query(
        "SELECT alert_type, severity, uniqExact(alert_id) AS n FROM alerts FINAL "
        "GROUP BY alert_type, severity ORDER BY alert_type, severity"
    )
    lines.append("")
    lines.append("Alerts raised by the detectors (distinct alerts by type and severity)")
    if alerts:
        for row in alerts:
            lines.append(f"  {row['alert_type']:12} {row['severity']:8} {row['n']:>6}")
    else:
        lines.append("  none")
    if simulation is not None:
        planted = Counter(label.trajectory for label in simulation.labels)
        lines.append("Trajectories planted by the simulator (ground truth, for comparison)")
        lines.append("  " + ", ".join(f"{name}={n}" for name, n in sorted(planted.items())))
    lines += _actions_lines(warehouse)
    dead = warehouse.query(
        "SELECT reason, count() AS n FROM dead_letters FINAL GROUP BY reason ORDER BY reason"
    )
    lines.append("")
    lines.append("dead letters: " + (", ".join(f"{r['reason']}={r['n']}" for r in dead) or "none"))
    return "\n".join(lines)


def _actions_lines(warehouse: Warehouse) -> list[str]:
    """Outreach tasks by type and status, and the POS-loan limits now in force."""
    lines = ["", "Outreach tasks for account managers (by type: open, queued, done)"]
    tasks = warehouse.query(
        "SELECT task_type, countIf(status = 'open') AS open, countIf(status = 'queued') AS queued, "
        "countIf(status = 'done') AS done, uniqExact(manager_id) AS managers "
        "FROM outreach_tasks FINAL GROUP BY task_type ORDER BY task_type"
    )
    for row in tasks:
        lines.append(
            f"  {row['task_type']:22} {row['open']:>6} open {row['queued']:>6} queued "
            f"{row['done']:>6} done   ({row['managers']} managers)"
        )
    if not tasks:
        lines.append("  none")
    limits = warehouse.query(
        "SELECT countIf(eligible) AS eligible, count() AS merchants, "
        "sum(limit_fen) AS total_fen, max(version) AS max_version "
        "FROM pos_loan_limits_current"
    )
    versions = warehouse.query("SELECT count() AS n FROM pos_loan_limits FINAL")
    if limits and limits[0]["merchants"]:
        row = limits[0]
        lines += [
            "",
            f"POS-loan limits: {row['eligible']} of {row['merchants']} merchants eligible, "
            f"CNY {_cny(row['total_fen'])} in total; {versions[0]['n']} versions kept for audit",
        ]
    return lines
