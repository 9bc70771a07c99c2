"""Output topics: records reach the producer in order, with no yield between them."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.outbound import DeliveryFailures, DirectTopic


class _Producer:
    """Like aiokafka behind Faust: ``send`` returns a delivery future without suspending."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, key: bytes, value: bytes, *_: Any) -> asyncio.Future[Any]:
        self.records.append((topic, key, value))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


class _App:
    def __init__(self) -> None:
        self.producer = _Producer()


class _Topic:
    def __init__(self, name: str) -> None:
        self.app = _App()
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


def test_records_go_out_in_order_without_yielding_and_failures_are_kept() -> None:
    async def scenario() -> tuple[list[Any], int, DeliveryFailures]:
        failures = DeliveryFailures()
        topic = _Topic("pos.loan.limits.v1")
        direct = DirectTopic(topic, failures)
        ticks = 0

        async def spin() -> None:  # counts every turn the event loop gets meanwhile
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        spinner = asyncio.create_task(spin())
        await asyncio.sleep(0)
        before = ticks
        for i in range(500):
            await direct.send(key=f"M{i}".encode(), value=b"v")
        turns = ticks - before
        futures = topic.app.producer.futures
        futures[0].set_result(None)
        futures[7].set_exception(OSError("broker gone"))
        futures[9].cancel()
        await asyncio.sleep(0)  # done-callbacks run
        spinner.cancel()
        return topic.app.producer.records, turns, failures

    records, turns, failures = asyncio.run(scenario())
    assert [key for _, key, _ in records] == [f"M{i}".encode() for i in range(500)]
    assert {name for name, _, _ in records} == {"pos.loan.limits.v1"}
    assert turns == 0  # the batch task could not run in between
    assert failures.count == 2
    assert bool(failures)
    assert "broker gone" in failures.describe()


def test_no_failure_reads_false() -> None:
    assert not DeliveryFailures()
