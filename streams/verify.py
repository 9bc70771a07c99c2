"""Reconcile the warehouse with the source topics: every record counted exactly once.

Reads both transaction topics from the beginning to their true end, decodes each record with the
worker's own boundary validation, leaves out the records the worker refused (the
``dead_letters`` table names them by topic, partition and offset), counts a repeated transaction
id once, and sums per merchant and business day. Those sums must equal ``merchant_daily``
exactly. It then checks that replays after crashes left no duplicates: at most one open alert
per merchant and type, one open task per merchant and type, limit versions numbered 1..N with
one content per version.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from detectors.features import BusinessCalendar
from schemas import topics
from schemas.inputs import PosTransaction
from streams.codec import Rejected
from streams.compat import probe_end_offsets
from streams.processor import DECODERS
from streams.progress import ProgressLine
from streams.warehouse import Warehouse

log = logging.getLogger(__name__)

SOURCES = (topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS)
#: merchant_daily columns recomputed from the records (the end-of-day balance is left out: it
#: depends on booking order within a day, which the pipeline tests check separately).
COLUMNS = (
    "pos_approved_count",
    "pos_approved_amount_fen",
    "pos_declined_count",
    "pos_refund_count",
    "pos_refund_amount_fen",
    "pos_chargeback_count",
    "pos_chargeback_amount_fen",
    "pos_reversal_count",
    "acct_credit_count",
    "acct_credit_amount_fen",
    "acct_debit_count",
    "acct_debit_amount_fen",
    "acct_settlement_amount_fen",
)
Key = tuple[str, date]
#: Column names are our own constants above, never outside input.
_DAILY_SQL = f"SELECT merchant_id, day, {', '.join(COLUMNS)} FROM merchant_daily FINAL"  # noqa: S608


@dataclass
class Reconciliation:
    """What ``verify`` found; ``ok`` when nothing is missing, extra, different or duplicated."""

    records: int = 0
    counted: int = 0
    dead_lettered: int = 0
    refused_here: int = 0
    duplicates: int = 0
    merchant_days: int = 0
    mismatches: list[str] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.integrity and self.refused_here == 0

    def lines(self) -> list[str]:
        out = [
            f"source records read            {self.records:>12,}",
            f"  counted                      {self.counted:>12,}",
            f"  refused by the worker        {self.dead_lettered:>12,}  (dead_letters)",
            f"  repeated transaction ids     {self.duplicates:>12,}  (counted once)",
            f"  refused here, not by worker  {self.refused_here:>12,}",
            f"merchant-days compared         {self.merchant_days:>12,}",
            f"merchant-days that differ      {len(self.mismatches):>12,}",
            f"duplicate alerts/tasks/limits  {len(self.integrity):>12,}",
        ]
        out += [f"  {m}" for m in self.mismatches[:20]]
        out += [f"  {m}" for m in self.integrity[:20]]
        out.append("verdict: " + ("EXACT" if self.ok else "DIFFERENT"))
        return out


def _refused(warehouse: Warehouse) -> set[tuple[str, int, int]]:
    rows = warehouse.query(
        "SELECT source_topic, partition, offset FROM dead_letters FINAL "
        "WHERE source_topic IN {topics:Array(String)}",
        {"topics": list(SOURCES)},
    )
    return {(r["source_topic"], int(r["partition"]), int(r["offset"])) for r in rows}


def _read(bootstrap_servers: list[str], progress: bool) -> Iterable[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in SOURCES
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = probe_end_offsets(bootstrap_servers, consumer.end_offsets(tps))
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        line = ProgressLine("read", "records", enabled=progress, total=sum(ends.values()))
        remaining = {tp for tp in tps if ends[tp] > 0}
        done = 0
        while remaining:
            for tp, records in consumer.poll(timeout_ms=1000, max_records=20_000).items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield record
                        done += 1
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            line.update(done)
        line.update(done, final=True)
    finally:
        consumer.close()


def source_totals(
    bootstrap_servers: list[str],
    refused: set[tuple[str, int, int]],
    timezone: str,
    result: Reconciliation,
    progress: bool = False,
) -> dict[Key, Counter[str]]:
    """Per merchant and business day, the sums of every record the worker accepted."""
    calendar = BusinessCalendar(timezone)
    seen: set[tuple[str, str, str]] = set()
    sums: dict[Key, Counter[str]] = defaultdict(Counter)
    for record in _read(bootstrap_servers, progress):
        result.records += 1
        if (record.topic, record.partition, record.offset) in refused:
            result.dead_lettered += 1
            continue
        event = DECODERS[record.topic].decode(record.key, record.value)
        if isinstance(event, Rejected):
            result.refused_here += 1  # the worker should have dead-lettered it
            continue
        identity = (record.topic, event.merchant_id, event.txn_id)
        if identity in seen:
            result.duplicates += 1
            continue
        seen.add(identity)
        result.counted += 1
        key = (event.merchant_id, calendar.date_of_day(calendar.day_of(event.event_time)))
        row = sums[key]
        if isinstance(event, PosTransaction):
            kind = event.kind.value
            row[f"pos_{kind}_count"] += 1
            if kind not in ("declined", "reversal"):
                row[f"pos_{kind}_amount_fen"] += event.amount_fen
        else:
            direction = event.direction.value
            row[f"acct_{direction}_count"] += 1
            row[f"acct_{direction}_amount_fen"] += event.amount_fen
            if event.category.value == "pos_settlement":
                row["acct_settlement_amount_fen"] += event.amount_fen
    return sums


def _compare(
    expected: dict[Key, Counter[str]], warehouse: Warehouse, result: Reconciliation
) -> None:
    rows = warehouse.query(_DAILY_SQL)
    found = {(r["merchant_id"], r["day"]): r for r in rows}
    result.merchant_days = len(set(found) | set(expected))
    for key in sorted(set(found) | set(expected)):
        want = expected.get(key, Counter())
        got = found.get(key)
        if got is None:
            result.mismatches.append(f"{key[0]} {key[1]}: missing from merchant_daily")
            continue
        diff = [f"{c} {got[c]} != {want[c]}" for c in COLUMNS if int(got[c]) != want[c]]
        if diff:
            result.mismatches.append(f"{key[0]} {key[1]}: " + "; ".join(diff[:3]))


_OPEN_ALERTS = """
SELECT merchant_id, alert_type, count() AS n
FROM (
    SELECT merchant_id, alert_type, alert_id, argMax(status, version) AS status
    FROM alerts FINAL GROUP BY merchant_id, alert_type, alert_id
)
WHERE status IN ('open', 'acknowledged')
GROUP BY merchant_id, alert_type HAVING n > 1
"""
_ALERT_CONFLICTS = """
SELECT merchant_id, alert_id, version, uniqExact(status, severity, round(score, 6)) AS n
FROM alerts GROUP BY merchant_id, alert_id, version HAVING n > 1
"""
_OPEN_TASKS = """
SELECT merchant_id, task_type, count() AS n FROM outreach_tasks FINAL
WHERE status = 'open' GROUP BY merchant_id, task_type HAVING n > 1
"""
_LIMIT_CONFLICTS = """
SELECT merchant_id, version, uniqExact(limit_fen, eligible) AS n
FROM pos_loan_limits GROUP BY merchant_id, version HAVING n > 1
"""
_LIMIT_GAPS = """
SELECT merchant_id, count() AS versions, max(version) AS top
FROM (SELECT DISTINCT merchant_id, version FROM pos_loan_limits)
GROUP BY merchant_id HAVING versions != top
"""


def _integrity(warehouse: Warehouse, result: Reconciliation) -> None:
    for row in warehouse.query(_OPEN_ALERTS):
        result.integrity.append(
            f"{row['merchant_id']}: {row['n']} open {row['alert_type']} alerts at once"
        )
    for row in warehouse.query(_ALERT_CONFLICTS):
        result.integrity.append(
            f"{row['merchant_id']}: alert {row['alert_id']} v{row['version']} written "
            f"{row['n']} different ways"
        )
    for row in warehouse.query(_OPEN_TASKS):
        result.integrity.append(
            f"{row['merchant_id']}: {row['n']} open {row['task_type']} tasks at once"
        )
    for row in warehouse.query(_LIMIT_CONFLICTS):
        result.integrity.append(
            f"{row['merchant_id']}: limit version {row['version']} written {row['n']} ways"
        )
    for row in warehouse.query(_LIMIT_GAPS):
        result.integrity.append(
            f"{row['merchant_id']}: {row['versions']} limit versions numbered up to {row['top']}"
        )


def verify(
    bootstrap_servers: list[str], warehouse: Warehouse, timezone: str, progress: bool = False
) -> Reconciliation:
    """Recompute from the topics, compare with the warehouse, check for duplicates."""
    result = Reconciliation()
    expected = source_totals(bootstrap_servers, _refused(warehouse), timezone, result, progress)
    _compare(expected, warehouse, result)
    _integrity(warehouse, result)
    return result
