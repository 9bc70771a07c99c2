"""Hostile records on every input topic, mixed into real traffic: the worker refuses each with a
reason, counts every good record exactly once, and keeps running."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from schemas import topics
from streams.broker import LocalBroker
from streams.codec import Rejected
from streams.processor import DECODERS
from streams.verify import verify
from streams.warehouse import open_warehouse
from tests.fixtures.fuzz import hostile_records
from tests.fixtures.worker import run_worker_over_backlog
from tests.integration.test_pipeline import _events

pytestmark = pytest.mark.integration


def test_hostile_input_is_dead_lettered_and_good_input_counted_once(
    fresh_broker: LocalBroker, tmp_path: Path
) -> None:
    good = _events(seed=21, merchants=30, days=8)
    hostile = hostile_records(600, seed=8)
    producer = KafkaProducer(bootstrap_servers=fresh_broker.bootstrap_servers, linger_ms=5)
    step = max(len(good) // len(hostile), 1)
    for i, (topic, doc) in enumerate(good):
        producer.send(topic, key=str(doc["merchant_id"]).encode(), value=orjson.dumps(doc))
        if i % 50 == 0:  # a transaction sent twice (a producer retry): counted once
            producer.send(topic, key=str(doc["merchant_id"]).encode(), value=orjson.dumps(doc))
        if i % step == 0 and hostile:
            h_topic, key, value, _ = hostile.pop()
            producer.send(h_topic, key=key, value=value)
    for h_topic, key, value, _ in hostile:
        producer.send(h_topic, key=key, value=value)
    producer.flush()
    producer.close()

    settings = run_worker_over_backlog(fresh_broker, tmp_path, "fuzz")  # asserts a clean exit
    with open_warehouse(settings) as warehouse:
        result = verify(fresh_broker.bootstrap_servers, warehouse, settings.business_timezone)
        dead = warehouse.query(
            "SELECT source_topic, reason, count() AS n FROM dead_letters FINAL "
            "GROUP BY source_topic, reason"
        )
    assert result.ok, "\n".join(result.lines())
    # and verify notices a day counted wrong (a newer version of one row, one sale more)
    with open_warehouse(settings) as warehouse:
        [row] = warehouse.query(
            "SELECT * FROM merchant_daily FINAL WHERE pos_approved_count > 0 "
            "ORDER BY merchant_id, day LIMIT 1"
        )
        row.update(pos_approved_count=row["pos_approved_count"] + 1, version=row["version"] + 10)
        warehouse.insert("merchant_daily", [row])
        broken = verify(fresh_broker.bootstrap_servers, warehouse, settings.business_timezone)
    assert not broken.ok
    assert len(broken.mismatches) == 1
    assert "pos_approved_count" in broken.mismatches[0]
    assert result.duplicates > 0
    assert result.dead_lettered > 0
    # every hostile record the boundary refuses is on the dead-letter table, by topic
    refused = Counter(
        topic
        for topic, key, value, _ in hostile_records(600, seed=8)
        if isinstance(DECODERS[topic].decode(key, value), Rejected)
        and not (topic == topics.MERCHANT_PROFILES and value is None)  # a compaction delete
    )
    by_topic = Counter()
    for row in dead:
        by_topic[row["source_topic"]] += row["n"]
        assert row["reason"] in {
            "invalid_json",
            "validation",
            "key_mismatch",
            "oversized",
            "empty",
            "future",
            "late",
            "unknown_task",
        }, row
    for topic, n in refused.items():
        assert by_topic[topic] >= n, (topic, by_topic[topic], n)
