"""Baseline consumers run as child processes, and the broker delivery probe of bench/latency.py.

raw aiokafka, do-nothing Faust and naive Faust table are the throughput baselines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

STARTED = time.time()


class Counter:
    """Counts events and writes the child's own timings once the expected number arrived."""

    def __init__(self, expected: int, stats_path: Path) -> None:
        self.expected = expected
        self.stats_path = stats_path
        self.count = 0
        self.first: float | None = None
        self.done = False

    def add(self, n: int) -> None:
        if self.first is None:
            self.first = time.time()
        self.count += n
        if not self.done and self.count >= self.expected:
            self.done = True
            last = time.time()
            first = self.first
            stats = {
                "events": self.count,
                "startup_s": first - STARTED,
                "processing_s": last - first,
            }
            self.stats_path.write_text(json.dumps(stats))


async def raw_consumer(args: argparse.Namespace, counter: Counter) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *args.topics,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
        fetch_max_wait_ms=args.fetch_wait_ms,
    )
    await consumer.start()
    try:
        while not counter.done:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            n = 0
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
                n += len(records)
            if n:
                await consumer.commit()
                counter.add(n)
    finally:
        await consumer.stop()


async def delivery_probe(args: argparse.Namespace, stop: asyncio.Event) -> None:
    """Publication-to-delivery delay of the broker alone: a plain aiokafka consumer with the
    worker's fetch wait (``--fetch-wait-ms``) reading new records; on SIGTERM it writes
    (publication time, seconds until delivered) of every record to ``--stats``."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *args.topics,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=args.fetch_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    seen: list[tuple[float, float]] = []
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batches.values():
                seen.extend((r.timestamp / 1000.0, now - r.timestamp / 1000.0) for r in records)
    finally:
        await consumer.stop()
        args.stats.write_text(json.dumps(seen))


def run_probe(args: argparse.Namespace) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await delivery_probe(args, stop)

    asyncio.run(main())


def faust_app(args: argparse.Namespace, counter: Counter) -> Any:
    import faust

    from streams.compat import install_fetch_max_wait

    install_fetch_max_wait(args.fetch_wait_ms)  # the same wait as our worker's

    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=str(Path(args.workdir) / "faust"),
        topic_partitions=args.partitions,
        key_serializer="json",
        value_serializer="json",
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=3.0,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=0.5,
        web_enabled=False,
        consumer_max_fetch_size=4 * 1024 * 1024,
        stream_buffer_maxsize=32_768,
    )
    source = app.topic(
        *args.topics,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    if args.kind == "faust_batch_noop":
        from streams.intake import BatchIntake

        app.topics.add(source)
        intake = BatchIntake(app, args.topics)

        @app.task
        async def batch_noop() -> None:
            async for records in intake.batches(5000):
                intake.ack(records)
                counter.add(len(records))

    elif args.kind == "faust_noop":

        @app.agent(source, name="noop")
        async def noop(stream: Any) -> None:
            async for values in stream.take(5000, within=0.2):
                counter.add(len(values))

    else:
        sums = app.Table(
            "merchant-sums",
            default=int,
            partitions=args.partitions,
            key_type=str,
            value_type=int,
        )

        @app.agent(source, name="naive")
        async def naive(stream: Any) -> None:
            async for value in stream:
                doc = json.loads(value)
                merchant = doc["merchant_id"]
                sums[merchant] = sums[merchant] + int(doc["amount_fen"])
                counter.add(1)

    return app


def main() -> None:
    from streams.broker import LOCAL_FETCH_MAX_WAIT_MS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "kind",
        choices=[
            "raw_consumer",
            "faust_noop",
            "faust_batch_noop",
            "faust_naive_table",
            "delivery_probe",
        ],
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topics", nargs="+", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--expected", type=int, default=0)
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=LOCAL_FETCH_MAX_WAIT_MS,
        help="every consumer's fetch wait (the worker's on the local broker)",
    )
    parser.add_argument("--workdir", default=".")
    args = parser.parse_args()
    if args.kind == "delivery_probe":
        run_probe(args)
        return
    counter = Counter(args.expected, args.stats)
    if args.kind == "raw_consumer":
        asyncio.run(raw_consumer(args, counter))
        return
    import faust

    app = faust_app(args, counter)
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
