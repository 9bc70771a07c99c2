"""Workarounds for the local tansu broker: end offsets reported short, fetch waits held.

Kafka's ListOffsets "latest" is the offset after the last record. The tansu broker we run
locally answers with the base offset of the last record batch instead, so the end looks up to a
batch short (measured: 49,894 of 50,000 records). Faust rebuilds a table by reading its changelog
up to that end, so a restarted worker lost the last batch of every changelog partition, and a
RocksDB store whose persisted offset lay past the short end refused to start (ConsistencyError).

With ``MONITOR_BROKER_PROBE_END_OFFSETS`` on (the local broker's runs set it), the end offsets
Faust asks for are checked by reading from the reported end: every record found there moves the
end past it. One short fetch per partition, only when Faust asks (recovery, rebalances). A real
Kafka cluster reports correct ends; leave the setting off there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from kafka import KafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

_installed: dict[str, Any] = {}


def probe_end_offsets(
    bootstrap_servers: list[str], reported: Mapping[TP, int], *, log_level: int = logging.INFO
) -> dict[TP, int]:
    """The true end offset (last offset + 1) of each partition, reading from the reported one.

    Corrections are logged at ``log_level`` (callers that poll pass ``logging.DEBUG``)."""
    ends = {tp: int(end) for tp, end in reported.items() if end is not None}
    if not ends:
        return dict(reported)  # type: ignore[arg-type]
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        consumer_timeout_ms=1000,
    )
    try:
        kafka_tps = {TopicPartition(tp.topic, tp.partition): tp for tp in ends}
        consumer.assign(list(kafka_tps))
        for ktp, tp in kafka_tps.items():
            consumer.seek(ktp, ends[tp])
        idle = 0
        while idle < 2:
            batches = consumer.poll(timeout_ms=200, max_records=10_000)
            if not batches:
                idle += 1
                continue
            idle = 0
            for ktp, records in batches.items():
                tp = kafka_tps[ktp]
                ends[tp] = max(ends[tp], records[-1].offset + 1)
    finally:
        consumer.close()
    moved = {tp: (reported[tp], end) for tp, end in ends.items() if end != reported[tp]}
    if moved:
        log.log(log_level, "end offsets corrected by probing: %s", moved)
    return {**reported, **ends}


def install_end_offset_probe(bootstrap_servers: list[str]) -> None:
    """Make Faust's consumer probe every end offset it asks for (idempotent, per process)."""
    if "original" in _installed:
        _installed["servers"] = bootstrap_servers
        return
    original = AIOKafkaConsumerThread.highwaters
    _installed["original"] = original
    _installed["servers"] = bootstrap_servers

    async def highwaters(self: AIOKafkaConsumerThread, *partitions: TP) -> Mapping[TP, int]:
        reported = await original(self, *partitions)
        return await asyncio.to_thread(probe_end_offsets, _installed["servers"], reported)

    AIOKafkaConsumerThread.highwaters = highwaters  # type: ignore[method-assign]


#: The fetch wait Faust hard-codes for its worker consumer (faust.transport.drivers.aiokafka).
FAUST_FETCH_MAX_WAIT_MS = 1500


def install_fetch_max_wait(wait_ms: int) -> None:
    """Give Faust's worker consumer a fetch wait of ``wait_ms`` instead of its fixed 1500 ms.

    Kafka answers a fetch as soon as one byte is there, so the wait only paces idle fetches.
    The local tansu holds a fetch until the wait runs out even when records arrive (measured
    with a plain consumer at 1,000 events/s: delivery p50 about 390 ms at 1500 ms, 40 ms at
    100 ms), which puts the wait into every event's latency. Idempotent; the last value wins.
    """
    _installed["fetch_max_wait_ms"] = wait_ms
    if "create_worker_consumer" in _installed:
        return
    original = AIOKafkaConsumerThread._create_worker_consumer
    _installed["create_worker_consumer"] = original

    def create(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = original(self, transport)
        # Read by AIOKafkaConsumer.start() when it builds its Fetcher, after this returns.
        consumer._fetch_max_wait_ms = _installed["fetch_max_wait_ms"]
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]
