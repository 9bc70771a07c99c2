"""Simulated events published to the real broker arrive, valid, keyed and in order."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer

from schemas import topics
from schemas.settings import Settings
from schemas.topics import TOPICS_BY_NAME
from streams.broker import LocalBroker
from streams.commands.simulate import command
from streams.sim import Scenario, Simulation, simulate
from streams.sim.publish import publish

pytestmark = pytest.mark.integration

SIM_TOPICS = [
    topics.MERCHANT_PROFILES,
    topics.LOAN_EVENTS,
    topics.ACCOUNT_TRANSACTIONS,
    topics.POS_TRANSACTIONS,
]


def _id(topic: str, event: object) -> str:
    if topic == topics.MERCHANT_PROFILES:
        return f"{event.merchant_id}@{event.updated_at.isoformat()}"  # type: ignore[attr-defined]
    if topic == topics.LOAN_EVENTS:
        return str(event.event_id)  # type: ignore[attr-defined]
    return str(event.txn_id)  # type: ignore[attr-defined]


def test_published_messages_arrive_valid_and_in_order(broker: LocalBroker) -> None:
    # A window no other test uses, so that its ids are unique in the shared broker.
    scenario = Scenario.default().starting(date(2024, 6, 3)).resized(merchants=40, days=8)
    simulation = simulate(scenario, 13)
    expected = {topic: {} for topic in SIM_TOPICS}
    for topic, key, value, _ in simulation.messages():
        event = TOPICS_BY_NAME[topic].model.model_validate_json(value)
        expected[topic][_id(topic, event)] = key

    counts = publish(simulation, broker.bootstrap_servers, progress=False)
    assert counts == {t: len(ids) for t, ids in expected.items() if ids}

    consumer = KafkaConsumer(
        *SIM_TOPICS,
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5_000,
    )
    found: dict[str, dict[str, bytes]] = defaultdict(dict)
    last_time: dict[tuple[str, int], object] = {}
    try:
        for record in consumer:
            event = TOPICS_BY_NAME[record.topic].model.model_validate_json(record.value)
            ident = _id(record.topic, event)
            if ident not in expected[record.topic]:
                continue  # another test's event
            found[record.topic][ident] = record.key
            assert record.key == event.merchant_id.encode()  # type: ignore[attr-defined]
            # Within a partition, our events arrive in event-time order.
            stamp = getattr(event, "updated_at", None) or event.event_time  # type: ignore[attr-defined]
            previous = last_time.get((record.topic, record.partition))
            assert previous is None or previous <= stamp
            last_time[(record.topic, record.partition)] = stamp
    finally:
        consumer.close()
    for topic in SIM_TOPICS:
        assert found[topic] == expected[topic], topic


def test_cli_publishes_with_compressed_event_time(broker: LocalBroker, tmp_path: Path) -> None:
    settings = Settings(broker_url=broker.url)
    args = ["--seed", "3", "--merchants", "10", "--days", "2", "--start", "2024-07-01"]
    began = time.monotonic()
    result = CliRunner().invoke(
        command,
        [
            *args,
            "--to-kafka",
            "--compress-minutes",
            "0.04",
            "--out",
            str(tmp_path / "sim"),
            "--quiet",
        ],
        obj=settings,
    )
    elapsed = time.monotonic() - began
    assert result.exit_code == 0, result.output
    # Two days in 0.04 minutes: the last events (late on day two) go out after about 2 s.
    assert elapsed > 1.5
    published = Simulation.read(tmp_path / "sim").counts()
    assert f"published {sum(published.values()):,} messages" in result.output
