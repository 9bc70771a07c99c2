"""Staged table writes (streams/durability.py): nothing reaches a table before ``commit``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.streams import _current_event

from streams.durability import StagedWrites
from streams.processor import in_partition


class _Table(dict[bytes, bytes]):
    """A Faust-like table that records the partition of the event behind each write."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.partitions: dict[bytes, int] = {}
        self.recover_callbacks: list[Any] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        event = _current_event.get(None)
        assert event is not None, "written outside an event context"
        self.partitions[key] = event().message.partition
        super().__setitem__(key, value)

    def on_recover(self, callback: Any) -> Any:
        self.recover_callbacks.append(callback)
        return callback


def _staged() -> tuple[StagedWrites, _Table, Any]:
    staged = StagedWrites()
    table = _Table("merchant-state")
    return staged, table, staged.wrap(table)


def test_writes_wait_for_commit_and_are_read_back_meanwhile() -> None:
    staged, table, proxy = _staged()
    with in_partition(0):
        table[b"old"] = b"0"  # committed earlier
    with in_partition(3):
        proxy[b"M1"] = b"v1"
    assert b"M1" not in table
    assert proxy.get(b"M1") == b"v1"
    assert proxy[b"M1"] == b"v1"
    assert b"M1" in proxy
    assert dict(proxy.items()) == {b"old": b"0", b"M1": b"v1"}

    taken = staged.take()
    assert b"M1" not in table
    assert proxy.get(b"M1") == b"v1", "taken writes stay readable until committed"
    assert asyncio.run(staged.commit(taken)) == 1
    assert table[b"M1"] == b"v1"
    assert table.partitions[b"M1"] == 3, "committed on the partition of the event behind it"
    assert staged.staged == 0


def test_commit_writes_only_what_was_taken() -> None:
    staged, table, proxy = _staged()
    with in_partition(1):
        proxy[b"M1"] = b"v1"
    taken = staged.take()
    with in_partition(1):
        proxy[b"M1"] = b"v2"  # a newer state, staged while the flush ran
        proxy[b"M2"] = b"w1"
    asyncio.run(staged.commit(taken))
    assert table == {b"M1": b"v1"}, "the newer writes wait for the next flush"
    assert proxy.get(b"M1") == b"v2"
    assert proxy.get(b"M2") == b"w1"
    asyncio.run(staged.commit(staged.take()))
    assert table == {b"M1": b"v2", b"M2": b"w1"}


def test_revoked_partitions_lose_their_staged_writes() -> None:
    staged = StagedWrites()
    merchants = _Table("merchant-state")
    queues = _Table("manager-queue")
    m, q = staged.wrap(merchants), staged.wrap(queues)
    with in_partition(0):
        m[b"M0"] = b"a"
        q[b"A0"] = b"q"
    with in_partition(1):
        m[b"M1"] = b"b"
        q[b"A1"] = b"r"
    taken = staged.take()
    with in_partition(1):
        m[b"M1"] = b"c"
    # Merchant partition 1 and queue partition 0 are revoked.
    staged.forget({1}, queues_table="manager-queue", queue_partitions={0})
    assert m.get(b"M1") is None
    assert q.get(b"A0") is None
    assert asyncio.run(staged.commit(taken)) == 2, (
        "the revoked partitions' taken writes are skipped"
    )
    assert merchants == {b"M0": b"a"}
    assert queues == {b"A1": b"r"}


def test_a_revocation_during_a_commit_drops_the_rest_of_its_partition() -> None:
    staged, table, proxy = _staged()
    for i in range(6):
        with in_partition(i % 2):
            proxy[b"M%d" % i] = b"v"
    taken = staged.take()

    async def commit_while_partition_1_is_revoked() -> int:
        committing = asyncio.create_task(staged.commit(taken, yield_every=2))
        await asyncio.sleep(0)  # the commit wrote M0 and is at its first yield
        staged.forget({1})
        return await committing

    assert asyncio.run(commit_while_partition_1_is_revoked()) == 3
    assert sorted(table) == [b"M0", b"M2", b"M4"], "only partition 0, and M1 was never written"


def test_write_outside_an_event_context_is_refused() -> None:
    _, table, proxy = _staged()
    token = _current_event.set(None)  # type: ignore[arg-type]
    try:
        with pytest.raises(RuntimeError, match="outside of agent/stream"):
            proxy[b"M1"] = b"v"
    finally:
        _current_event.reset(token)
    assert b"M1" not in table


def test_recovery_callbacks_reach_the_table() -> None:
    _, table, proxy = _staged()

    async def seed() -> None:
        return None

    proxy.on_recover(seed)
    assert table.recover_callbacks == [seed]
    assert proxy.name == "merchant-state"
