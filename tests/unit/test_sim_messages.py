"""Messages: event-time order across topics, merchant keys, payloads valid against the models."""

from __future__ import annotations

import random
from collections import defaultdict
from functools import cache

import orjson

from schemas import topics
from schemas.inputs import MerchantProfile
from schemas.topics import TOPICS_BY_NAME
from streams.sim import Scenario, Simulation, simulate
from streams.sim.payloads import Message

SAMPLE_PER_TOPIC = 400


@cache
def _sim() -> tuple[Simulation, list[Message]]:
    simulation = simulate(Scenario.default().resized(merchants=120, days=40), 4)
    return simulation, list(simulation.messages())


def test_every_event_once_in_event_time_order() -> None:
    simulation, messages = _sim()
    assert len(messages) == sum(simulation.counts().values())
    times = [m[3] for m in messages]
    assert times == sorted(times)
    assert all(t.tzinfo is not None and t.utcoffset().total_seconds() == 0 for t in times[:100])
    by_topic: dict[str, int] = defaultdict(int)
    for topic, *_ in messages:
        by_topic[topic] += 1
    assert by_topic == simulation.counts()


def test_a_sample_of_every_topic_validates_and_is_keyed_by_merchant() -> None:
    _, messages = _sim()
    rng = random.Random(1)
    by_topic: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_topic[message[0]].append(message)
    assert set(by_topic) == {
        topics.POS_TRANSACTIONS,
        topics.ACCOUNT_TRANSACTIONS,
        topics.MERCHANT_PROFILES,
        topics.LOAN_EVENTS,
    }
    for topic, items in by_topic.items():
        model = TOPICS_BY_NAME[topic].model
        for _, key, value, event_time in rng.sample(items, min(SAMPLE_PER_TOPIC, len(items))):
            event = model.model_validate_json(value)
            assert key.decode() == event.merchant_id  # type: ignore[attr-defined]
            stamp = getattr(event, "updated_at", None) or event.event_time  # type: ignore[attr-defined]
            assert stamp == event_time
            assert set(orjson.loads(value)) == set(model.model_fields)


def test_every_kind_and_category_occurs() -> None:
    _, messages = _sim()
    kinds = {orjson.loads(v)["kind"] for t, _, v, _ in messages if t == topics.POS_TRANSACTIONS}
    assert kinds == {"approved", "declined", "refund", "chargeback", "reversal"}
    loans = {orjson.loads(v)["kind"] for t, _, v, _ in messages if t == topics.LOAN_EVENTS}
    assert loans == {"disbursed", "repayment_due", "repaid", "overdue"}


def test_profiles_come_before_a_merchants_first_event() -> None:
    _, messages = _sim()
    seen_profile: set[bytes] = set()
    for topic, key, _, _ in messages:
        if topic == topics.MERCHANT_PROFILES:
            seen_profile.add(key)
        else:
            assert key in seen_profile, (topic, key)


def test_profiles_are_validated_models() -> None:
    simulation, _ = _sim()
    profiles = simulation.profiles
    assert len(profiles) == 120
    assert all(isinstance(p, MerchantProfile) for p in profiles)
    assert all(p.pos_loan_outstanding_fen <= p.pos_loan_facility_fen for p in profiles)
    regions = set(simulation.scenario.population.regions)
    assert {p.region for p in profiles} <= regions
    assert all(p.grid_id.startswith(p.region) for p in profiles)
