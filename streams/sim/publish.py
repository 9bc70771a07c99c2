"""Publishing events to Kafka in event-time order, with rate control and time compression."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from streams.errors import BrokerError
from streams.progress import ProgressLine
from streams.sim.payloads import Message
from streams.sim.simulation import Simulation

log = logging.getLogger(__name__)

#: Producer settings for throughput: big batches, a short linger, one request in flight per
#: broker so that a retry can never reorder a merchant's events within its partition.
PRODUCER_CONFIG: dict[str, object] = {
    # Every replica acknowledges; a retry after a lost acknowledgement may still write a record
    # twice (idempotence is off: not every Kafka-protocol broker supports it), which the worker
    # absorbs with its transaction-id de-duplication. One request in flight keeps the order.
    "acks": "all",
    "enable_idempotence": False,
    "linger_ms": 20,
    "batch_size": 512 * 1024,
    "max_in_flight_requests_per_connection": 1,
    "retries": 5,
    "max_block_ms": 15_000,
    "request_timeout_ms": 30_000,
}
#: Do not sleep for less than this: the pacing keeps up on average, not per message.
_MIN_SLEEP_S = 0.005


class Pacer:
    """Holds messages back to a target rate and/or event-time compression (D days in M minutes)."""

    def __init__(
        self,
        rate_eps: float | None,
        compress_minutes: float | None,
        event_span: timedelta | None,
        event_origin: datetime | None,
    ) -> None:
        if rate_eps is not None and rate_eps <= 0:
            raise ValueError("rate_eps must be > 0")
        self.rate_eps = rate_eps
        self.speedup: float | None = None
        if compress_minutes is not None:
            if compress_minutes <= 0:
                raise ValueError("compress_minutes must be > 0")
            if event_span is None:
                raise ValueError("compress_minutes needs the event-time span of the source")
            self.speedup = event_span.total_seconds() / (compress_minutes * 60.0)
        self.origin = event_origin
        self.started = time.monotonic()

    def wait(self, sent: int, event_time: datetime) -> None:
        target = self.started
        if self.rate_eps is not None:
            target = max(target, self.started + sent / self.rate_eps)
        if self.speedup is not None:
            if self.origin is None:
                self.origin = event_time
            lag = (event_time - self.origin).total_seconds() / self.speedup
            target = max(target, self.started + lag)
        delay = target - time.monotonic()
        if delay > _MIN_SLEEP_S:
            time.sleep(delay)


def publish(
    source: Simulation | Iterable[Message],
    bootstrap_servers: list[str],
    *,
    rate_eps: float | None = None,
    compress_minutes: float | None = None,
    progress: bool = True,
    total: int | None = None,
    event_span: timedelta | None = None,
    event_origin: datetime | None = None,
) -> dict[str, int]:
    """Send every message, keyed by merchant, in the order given; flush; count per topic.

    A :class:`Simulation` brings its own total, span and origin (its first local midnight) for
    the ETA and for ``compress_minutes`` (its D days are played in M minutes); a plain iterable
    of messages needs ``event_span`` for compression (the origin defaults to its first event).
    """
    if isinstance(source, Simulation):
        total = sum(source.counts().values())
        event_span = timedelta(days=source.days)
        messages: Iterable[Message] = source.messages()
        event_origin = event_origin or source.window_start_utc
    else:
        messages = source
    pacer = Pacer(rate_eps, compress_minutes, event_span, event_origin)
    line = ProgressLine(
        "published", "messages", enabled=progress, total=total, span=event_span, origin=event_origin
    )
    producer = _producer(bootstrap_servers)
    counts: dict[str, int] = {}
    failures: list[BaseException] = []
    sent = 0
    event_time: datetime | None = None
    try:
        for topic, key, value, event_time in messages:
            pacer.wait(sent, event_time)
            future = producer.send(topic, key=key, value=value)
            future.add_errback(failures.append)
            counts[topic] = counts.get(topic, 0) + 1
            sent += 1
            if line.origin is None:
                line.origin = event_time
            line.update(sent, event_time)
        producer.flush()
    except KafkaTimeoutError as exc:
        raise BrokerError(
            f"timed out sending to {bootstrap_servers} ({exc}); do the topics exist? "
            "(`merchant-monitor topics create` or `merchant-monitor broker`)"
        ) from exc
    except KafkaError as exc:
        raise BrokerError(f"publishing to {bootstrap_servers} failed: {exc}") from exc
    finally:
        producer.close()
    line.update(sent, event_time, final=True)
    if failures:
        raise BrokerError(f"{len(failures)} of {sent} messages were not delivered: {failures[0]}")
    log.info("published %d messages: %s", sent, counts)
    return counts


def _producer(bootstrap_servers: list[str]) -> KafkaProducer:
    try:
        return KafkaProducer(bootstrap_servers=bootstrap_servers, **PRODUCER_CONFIG)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the broker at {bootstrap_servers}: {exc}") from exc
