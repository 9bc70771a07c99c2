"""End to end through the real broker, a real worker process and the real warehouse engine."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from kafka import KafkaProducer

from schemas import topics
from streams.broker import LocalBroker
from streams.warehouse import open_warehouse
from tests.fixtures.worker import run_worker_over_backlog

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
POS_KINDS = ("approved", "approved", "approved", "declined", "refund", "chargeback", "reversal")
CATEGORIES_CREDIT = ("pos_settlement", "transfer_in", "other")
CATEGORIES_DEBIT = ("transfer_out", "payroll", "tax", "utility", "fee", "loan_repayment_other")


def _events(seed: int, merchants: int, days: int) -> list[tuple[str, dict[str, object]]]:
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    out: list[tuple[str, dict[str, object]]] = []
    for m in range(merchants):
        merchant = f"M{m:04d}"
        balance = 500_000
        for d in range(days):
            for i in range(rng.randint(0, 6)):
                # Times spread over the whole UTC day, so many fall on the next Beijing date.
                when = start + timedelta(days=d, seconds=rng.randint(0, 86_399))
                out.append(
                    (
                        topics.POS_TRANSACTIONS,
                        {
                            "txn_id": f"P{m}-{d}-{i}",
                            "merchant_id": merchant,
                            "terminal_id": f"T{m}",
                            "event_time": when.isoformat(),
                            "amount_fen": rng.randint(1, 2_000_000),
                            "kind": rng.choice(POS_KINDS),
                            "card_token": f"tok{rng.randrange(10**9):09d}x",
                            "card_type": "debit",
                            "channel": "chip",
                            "mcc": "5411",
                        },
                    )
                )
            for i in range(rng.randint(0, 3)):
                credit = rng.random() < 0.5
                amount = rng.randint(1, 300_000)
                balance += amount if credit else -amount
                when = start + timedelta(days=d, seconds=rng.randint(0, 86_399))
                out.append(
                    (
                        topics.ACCOUNT_TRANSACTIONS,
                        {
                            "txn_id": f"A{m}-{d}-{i}",
                            "account_id": f"ACC{m}",
                            "merchant_id": merchant,
                            "event_time": when.isoformat(),
                            "direction": "credit" if credit else "debit",
                            "amount_fen": amount,
                            "balance_after_fen": balance,
                            "category": rng.choice(
                                CATEGORIES_CREDIT if credit else CATEGORIES_DEBIT
                            ),
                        },
                    )
                )
    out.sort(key=lambda item: str(item[1]["event_time"]))
    return out


def _expected(events: list[tuple[str, dict[str, object]]]) -> dict[tuple[str, str], dict[str, int]]:
    """Per merchant and Beijing date, computed naively from the raw payloads."""
    sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    last_booking: dict[tuple[str, str], tuple[datetime, str]] = {}
    for topic, doc in events:
        when = datetime.fromisoformat(str(doc["event_time"]))
        key = (str(doc["merchant_id"]), when.astimezone(SHANGHAI).date().isoformat())
        row = sums[key]
        amount = int(str(doc["amount_fen"]))
        if topic == topics.POS_TRANSACTIONS:
            kind = str(doc["kind"])
            if kind in ("declined", "reversal"):
                row[f"pos_{kind}_count"] += 1
            else:
                row[f"pos_{kind}_count"] += 1
                row[f"pos_{kind}_amount_fen"] += amount
            continue
        direction = str(doc["direction"])
        row[f"acct_{direction}_count"] += 1
        row[f"acct_{direction}_amount_fen"] += amount
        if doc["category"] == "pos_settlement":
            row["acct_settlement_amount_fen"] += amount
        # End-of-day balance: the balance after the day's last booking (time, then txn id).
        order = (when, str(doc["txn_id"]))
        if key not in last_booking or order > last_booking[key]:
            last_booking[key] = order
            row["acct_end_balance_fen"] = int(str(doc["balance_after_fen"]))
    return sums


@pytest.mark.parametrize("order", ["event_time", "pos_backlog_first"])
def test_warehouse_totals_equal_published_events(
    fresh_broker: LocalBroker, tmp_path: Path, order: str
) -> None:
    """Exact totals, whether the topics are filled in event-time order or one after the other.

    ``pos_backlog_first`` publishes every POS event before any account event: the worker then
    reads one input far ahead of the other, and must still put every event in its day.
    """
    events = _events(seed=11, merchants=40, days=12)
    if order == "pos_backlog_first":
        events.sort(key=lambda item: item[0] != topics.POS_TRANSACTIONS)
    account = next(doc for topic, doc in events if topic == topics.ACCOUNT_TRANSACTIONS)
    bad = [
        (topics.POS_TRANSACTIONS, b"M0001", b"{not json"),
        (topics.POS_TRANSACTIONS, b"M0002", orjson.dumps({"txn_id": "x", "merchant_id": "M0002"})),
        # A record keyed by another merchant would split state across partitions: refused.
        (topics.ACCOUNT_TRANSACTIONS, b"M0003", orjson.dumps({**account, "merchant_id": "M0004"})),
    ]
    producer = KafkaProducer(bootstrap_servers=fresh_broker.bootstrap_servers, linger_ms=5)
    for topic, doc in events:
        producer.send(topic, key=str(doc["merchant_id"]).encode(), value=orjson.dumps(doc))
    for topic, key, value in bad:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    settings = run_worker_over_backlog(fresh_broker, tmp_path, "pipeline-test")

    expected = _expected(events)
    with open_warehouse(settings) as warehouse:
        rows = warehouse.query("SELECT * FROM merchant_daily FINAL ORDER BY merchant_id, day")
        metrics = warehouse.query("SELECT DISTINCT metric FROM pipeline_metrics ORDER BY metric")
        dead = warehouse.query(
            "SELECT reason, count() AS n FROM dead_letters FINAL GROUP BY reason ORDER BY reason"
        )
    got = {(r["merchant_id"], r["day"].isoformat()): r for r in rows}
    assert set(expected) <= set(got)
    for key, sums in expected.items():
        for column, value in sums.items():
            assert got[key][column] == value, (key, column)
    # Days a merchant was silent are closed too (so silence is visible): all their counts are 0.
    silent = [row for key, row in got.items() if key not in expected]
    count_columns = [c for c in rows[0] if c.endswith("_count")]
    assert all(row[c] == 0 for row in silent for c in count_columns)
    expected_metrics = {"consumer_lag", "events_per_s", "sink_buffer_rows", "days_closed_total"}
    assert expected_metrics <= {m["metric"] for m in metrics}
    assert {r["reason"]: r["n"] for r in dead} == {
        "invalid_json": 1,
        "validation": 1,
        "key_mismatch": 1,
    }


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_state_survives_a_worker_restart(
    fresh_broker: LocalBroker, tmp_path: Path, store: str
) -> None:
    """Half the history, stop, the other half, stop: totals as if it had run once.

    Business days straddle the cut (UTC evening events belong to the next Beijing date), so an
    open day's totals must come back from the table after the restart: from the changelog alone
    (memory store) or from the local RocksDB files plus the changelog's tail (the production
    store). Both depend on true changelog end offsets, which the local tansu reports short; the
    worker probes them (MONITOR_BROKER_PROBE_END_OFFSETS, streams/compat.py).
    """
    events = _events(seed=3, merchants=24, days=10)
    cut = datetime(2026, 3, 6, tzinfo=UTC).isoformat()
    # Each half in event-time order, as a partition's log is (the alignment relies on it; the
    # generator writes merchant by merchant, so one merchant's days would run ahead of the next).
    by_time = sorted(events, key=lambda item: str(item[1]["event_time"]))
    first = [item for item in by_time if str(item[1]["event_time"]) < cut]
    second = [item for item in by_time if str(item[1]["event_time"]) >= cut]
    producer = KafkaProducer(bootstrap_servers=fresh_broker.bootstrap_servers, linger_ms=5)
    for batch in (first, second):
        for topic, doc in batch:
            producer.send(topic, key=str(doc["merchant_id"]).encode(), value=orjson.dumps(doc))
        producer.flush()
        settings = run_worker_over_backlog(
            fresh_broker, tmp_path, f"restart-{store}", table_store=store
        )
    producer.close()

    expected = _expected(events)
    with open_warehouse(settings) as warehouse:
        rows = warehouse.query("SELECT * FROM merchant_daily FINAL")
        late = warehouse.query("SELECT count() AS n FROM dead_letters FINAL")
    got = {(r["merchant_id"], r["day"].isoformat()): r for r in rows}
    for key, sums in expected.items():
        for column, value in sums.items():
            assert got[key][column] == value, (key, column)
    assert late == [{"n": 0}]
