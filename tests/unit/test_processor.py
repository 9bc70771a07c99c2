"""The batch processor: a merchant's state is written once per flush, and the events behind it
are acknowledged only after that write (the worker's crash safety rests on this order)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

import streams.processor as processor_module
from detectors.features import (
    FeatureParams,
    day_totals,
    decode_ids,
    decode_state,
    encode_ids,
    encode_state,
)
from schemas import topics
from schemas.inputs import PosTransaction
from streams.codec import encode
from streams.processor import (
    BatchProcessor,
    ids_value,
    split_ids_value,
    split_state_value,
    state_value,
)
from streams.sink import WarehouseSink

PARAMS = FeatureParams()
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


class _Stream:
    """Records what the processor acknowledges (on the consumer, in the worker)."""

    def __init__(self) -> None:
        self.acked: list[Any] = []

    def ack(self, records: list[Any]) -> None:
        self.acked.extend(records)


class _Topic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


class _Writer:
    def insert(self, table: str, rows: list[Any]) -> int:
        return len(rows)


class _Table(dict[bytes, bytes]):
    """A dict that counts writes (each one is a changelog record in the worker)."""

    writes = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def _sales(first: int, count: int, *, hours: float = 1.0, merchant: str = "M1") -> Iterator[Any]:
    for i in range(first, first + count):
        sale = PosTransaction(
            txn_id=f"{merchant}-t{i}",
            merchant_id=merchant,
            terminal_id="T1",
            event_time=START + timedelta(hours=hours * i),
            amount_fen=1_000 + i,
            kind="approved",
            card_token="tok00001x",
            channel="chip",
            mcc="5812",
        )
        message = SimpleNamespace(
            topic=topics.POS_TRANSACTIONS,
            key=merchant.encode(),
            value=encode(sale),
            partition=0,
            offset=i,
        )
        yield message


def _processor(
    table: _Table,
    dead_letters: _Topic,
    stream: _Stream,
    ids: _Table | None = None,
    sink: WarehouseSink | None = None,
) -> BatchProcessor:
    return BatchProcessor(
        SimpleNamespace(consumer=None),  # type: ignore[arg-type]
        table,  # type: ignore[arg-type]
        _Table() if ids is None else ids,  # type: ignore[arg-type]
        WarehouseSink(_Writer(), max_buffer_rows=10_000) if sink is None else sink,
        dead_letters,  # type: ignore[arg-type]
        PARAMS,
        max_skew_s=43_200,
        align_idle_s=0.0,  # both inputs count as caught up: everything is released at once
        idle_s=300.0,
        max_future_s=1e12,
        cache_size=100,
        wall_clock=lambda: START.timestamp() + 30 * 86_400,
        ack=stream.ack,
    )


def _fail_step_on(monkeypatch: pytest.MonkeyPatch, txn_id: str) -> None:
    """Make the step function raise (a bug) on one transaction id."""
    real_step = processor_module.step

    def failing_step(state: Any, event: Any, params: FeatureParams) -> Any:
        if event.txn_id == txn_id:
            raise RuntimeError("a bug")
        return real_step(state, event, params)

    monkeypatch.setattr(processor_module, "step", failing_step)


def _decoded(table: _Table, key: bytes) -> Any:
    """The feature state of a merchant-state table value (without its ids)."""
    return decode_state(split_state_value(table[key])[2])


def _events_of_day(table: _Table) -> int:
    state = _decoded(table, b"M1")
    return day_totals(state, PARAMS.calendar.day_of(START)).event_count


def test_applied_events_are_acknowledged_after_their_state_is_written() -> None:
    table, stream = _Table(), _Stream()
    processor = _processor(table, _Topic(), stream)
    for first in (0, 4):  # two batches of the same open day
        asyncio.run(processor.process(list(_sales(first, 4))))
    asyncio.run(processor.acknowledge(processor.take_done()))  # the flush
    assert stream.acked == []
    assert table.writes == 0

    asyncio.run(processor.tick())  # the timer writes each changed state once
    asyncio.run(processor.acknowledge(processor.take_done()))  # the flush
    assert len(stream.acked) == 8
    assert table.writes == 1
    assert _events_of_day(table) == 8


def test_a_day_close_waits_for_the_timer_like_any_other_change() -> None:
    # The detector states of the closed days are written by the same flush (streams/app.py).
    table, stream = _Table(), _Stream()
    processor = _processor(table, _Topic(), stream)
    asyncio.run(processor.process(list(_sales(0, 4, hours=12.0))))  # days 0 and 1
    # Days 2 to 5: the watermark passes day 1 + lateness (3 days), so days 0 and 1 close.
    asyncio.run(processor.process(list(_sales(4, 8, hours=12.0))))
    assert processor.counters.days_closed == 2
    asyncio.run(processor.acknowledge(processor.take_done()))  # a flush before the timer's
    assert stream.acked == []
    assert table.writes == 0
    asyncio.run(processor.write_states())  # the timer (or the shutdown)
    asyncio.run(processor.acknowledge(processor.take_done()))  # the flush
    assert len(stream.acked) == 12
    assert table.writes == 1
    assert _decoded(table, b"M1").closed_through == PARAMS.calendar.day_of(START) + 1


class _RowWriter:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def insert(self, table: str, rows: list[Any]) -> int:
        self.rows += [(table, dict(r)) for r in rows]
        return len(rows)


def test_open_day_rows_are_built_once_per_flush_from_the_latest_state() -> None:
    writer = _RowWriter()
    sink = WarehouseSink(writer, max_buffer_rows=10_000)
    processor = _processor(_Table(), _Topic(), _Stream(), sink=sink)
    day0 = PARAMS.calendar.day_of(START)
    for first in (0, 2, 4):  # three batches of one open day
        asyncio.run(processor.process(list(_sales(first, 2, hours=1.0))))
    assert sink.buffered == 0  # nothing built per batch
    assert asyncio.run(sink.flush()) == 1
    [(table, row)] = writer.rows
    assert (table, row["version"], row["pos_approved_count"]) == ("merchant_daily", 12, 6)
    # Day 0 touched again, then closed (the watermark passes it + lateness) before the next
    # flush: its closed row (odd version) is the only row that flush writes for it.
    writer.rows.clear()
    asyncio.run(processor.process(list(_sales(6, 2, hours=1.0))))
    asyncio.run(processor.process(list(_sales(30, 2, hours=12.0))))  # 15 days later
    assert processor.counters.days_closed > 0
    asyncio.run(sink.flush())
    day0_rows = [r for _, r in writer.rows if r["day"] == PARAMS.calendar.date_of_day(day0)]
    assert [r["version"] for r in day0_rows] == [2 * 8 + 1]


def test_a_failed_batch_keeps_the_days_closed_since_the_last_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table, stream, dead_letters = _Table(), _Stream(), _Topic()
    processor = _processor(table, dead_letters, stream)
    asyncio.run(processor.process(list(_sales(0, 4, hours=12.0))))
    asyncio.run(processor.process(list(_sales(4, 8, hours=12.0))))  # closes days 0 and 1
    assert processor.counters.days_closed == 2
    _fail_step_on(monkeypatch, "M1-t12")
    asyncio.run(processor.process(list(_sales(12, 1, hours=12.0))))
    assert processor.counters.dead_letters["internal_error"] == 1
    asyncio.run(processor.write_states())
    state = _decoded(table, b"M1")
    # The state written holds every day closed (each went to the detectors once): none of
    # them closes again.
    assert state.closed_through - state.first_day + 1 == processor.counters.days_closed
    asyncio.run(processor.tick())
    assert state.closed_through - state.first_day + 1 == processor.counters.days_closed
    assert day_totals(state, PARAMS.calendar.day_of(START)).event_count == 2


def test_a_failed_batch_keeps_the_unwritten_events_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table, stream, dead_letters = _Table(), _Stream(), _Topic()
    processor = _processor(table, dead_letters, stream)
    asyncio.run(processor.process(list(_sales(0, 4))))  # applied, not written yet
    _fail_step_on(monkeypatch, "M1-t5")
    asyncio.run(processor.process(list(_sales(4, 2))))
    assert len(dead_letters.sent) == 2  # t4 and t5: the merchant's events of that batch
    asyncio.run(processor.acknowledge(processor.take_done()))  # the flush
    assert len(stream.acked) == 2
    assert processor.counters.dead_letters["internal_error"] == 2

    asyncio.run(processor.tick())
    asyncio.run(processor.acknowledge(processor.take_done()))  # the flush
    assert len(stream.acked) == 6
    assert _events_of_day(table) == 4  # the first batch survived, the failed one left no trace


def test_a_first_batch_of_many_days_closes_them_for_silent_merchants_too() -> None:
    # A worker starting on a backlog may take days of events in its first batch: the partition
    # clock starts at the earliest of them, not at the batch's watermark.
    table, stream = _Table(), _Stream()
    processor = _processor(table, _Topic(), stream)
    quiet = list(_sales(0, 1, merchant="M2"))  # one sale on day 0, then silence
    asyncio.run(processor.process(quiet + list(_sales(0, 9, hours=24.0))))  # M1: days 0 to 8
    asyncio.run(processor.write_states())
    day0 = PARAMS.calendar.day_of(START)
    # Day 8 is the newest: days through 8 - 3 (lateness) - 1 are final, for both merchants.
    assert _decoded(table, b"M2").closed_through == day0 + 4
    assert _decoded(table, b"M1").closed_through == day0 + 4


def test_transaction_ids_live_in_their_own_table_written_only_when_they_change() -> None:
    table, ids, stream = _Table(), _Table(), _Stream()
    processor = _processor(table, _Topic(), stream, ids)
    asyncio.run(processor.process(list(_sales(0, 4))))
    asyncio.run(processor.tick())
    assert (table.writes, ids.writes) == (1, 1)
    assert _decoded(table, b"M1").seen == {}  # the feature state is without them
    assert len(decode_state_with_ids(table, ids).seen) == 4

    # A write of M1's state whose ids did not change (here: after a duplicate) leaves the
    # ids table alone; a new merchant's ids are written.
    twice = [SimpleNamespace(**{**vars(m), "offset": 13}) for m in _sales(3, 1)]  # t3 again
    asyncio.run(processor.process(twice + list(_sales(4, 1, merchant="M2"))))
    asyncio.run(processor.tick())
    assert table.writes == 3  # M1 again, and M2
    assert ids.writes == 2  # M2's first ids; M1's are unchanged and not written again
    assert ids[b"M1"] == ids_value((3, -1), encode_ids(decode_state_with_ids(table, ids)))

    # After a restart (a new processor on the same tables) the ids still catch a transaction
    # sent twice: t2 and t3 again at new offsets, and t5 new.
    sales = list(_sales(2, 2)) + list(_sales(5, 1))
    again = [SimpleNamespace(**{**vars(m), "offset": 20 + i}) for i, m in enumerate(sales)]
    restarted = _processor(table, _Topic(), _Stream(), ids)
    asyncio.run(restarted.process(again))
    assert restarted.counters.duplicates == 2
    asyncio.run(restarted.tick())
    assert _events_of_day(table) == 5
    assert len(decode_state_with_ids(table, ids).seen) == 5


def test_ids_seeded_inside_a_state_are_written_to_their_table_at_the_first_flush() -> None:
    # A bootstrap seeds states encoded with their ids (streams/bootstrap.py).
    table, ids, stream = _Table(), _Table(), _Stream()
    seeding = _processor(_Table(), _Topic(), stream, _Table())
    asyncio.run(seeding.process(list(_sales(0, 3))))
    table[b"M1"] = state_value(0, encode_state(seeding._cache[b"M1"]))
    processor = _processor(table, _Topic(), stream, ids)
    asyncio.run(processor.process(list(_sales(1, 3))))  # t1, t2 seen; t3 new
    assert processor.counters.duplicates == 2
    asyncio.run(processor.tick())
    assert len(decode_state_with_ids(table, ids).seen) == 4


def decode_state_with_ids(table: _Table, ids: _Table) -> Any:
    state = _decoded(table, b"M1")
    decode_ids(split_ids_value(ids[b"M1"])[1], state)
    return state


class _Consumer:
    """Faust's consumer as the processor reads it: log-end offsets and read offsets."""

    def __init__(self, highwater: dict[Any, int], read: dict[Any, int]) -> None:
        self._highwater, self._read_offset = highwater, read

    def highwater(self, tp: Any) -> int:
        return self._highwater[tp]


def test_an_input_with_nothing_left_after_a_restart_holds_nothing_back() -> None:
    # Restarted with every account record committed: the account input hands over nothing,
    # and the broker's log end (100) equals the committed offset the consumer was sought to.
    account, pos = TP(topics.ACCOUNT_TRANSACTIONS, 0), TP(topics.POS_TRANSACTIONS, 0)
    table, stream = _Table(), _Stream()
    processor = _processor(table, _Topic(), stream)
    processor.app = SimpleNamespace(  # type: ignore[assignment]
        consumer=_Consumer({account: 100, pos: 4}, {account: 100, pos: 3})
    )
    asyncio.run(processor.process(list(_sales(0, 4))))
    asyncio.run(processor.tick())
    assert processor.counters.applied == 4
    assert _events_of_day(table) == 4
    assert processor.lag_by_partition() == {0: 0}

    # Records that do wait beyond the read offset hold the POS input back, as before.
    waiting = _processor(_Table(), _Topic(), _Stream())
    waiting.app = SimpleNamespace(  # type: ignore[assignment]
        consumer=_Consumer({account: 150, pos: 4}, {account: 100, pos: 3})
    )
    asyncio.run(waiting.process(list(_sales(0, 4))))
    asyncio.run(waiting.tick())
    assert waiting.counters.applied == 0
    assert waiting.lag_by_partition() == {0: 49}


def test_events_the_written_state_holds_are_skipped_when_re_delivered() -> None:
    # Faust commits offsets after the states are written: a crash in between re-delivers
    # events the restored states already hold, whose days may have closed since.
    table, ids, stream = _Table(), _Table(), _Stream()
    processor = _processor(table, _Topic(), stream, ids)
    asyncio.run(processor.process(list(_sales(0, 4))))
    asyncio.run(processor.tick())
    assert split_state_value(table[b"M1"])[1] == (3, -1)  # POS offsets through 3; no account

    restarted = _processor(table, _Topic(), _Stream(), ids)
    asyncio.run(restarted.process(list(_sales(2, 4))))  # offsets 2 to 5
    assert restarted.counters.skipped_redelivered == 2
    assert restarted.counters.duplicates == 0  # not even looked at
    asyncio.run(restarted.tick())
    assert _events_of_day(table) == 6


def test_a_crash_between_two_states_of_one_flush_loses_and_repeats_nothing() -> None:
    # Two merchants' states are written by one flush, and days close in it (their ids are
    # forgotten). A crash lands M1's new state but not M2's: after the restart, every event is
    # re-delivered; M1's are skipped (its marks say its state holds them) and M2's applied
    # again; none is refused as late.
    day0 = PARAMS.calendar.day_of(START)
    table, ids, stream = _Table(), _Table(), _Stream()
    processor = _processor(table, _Topic(), stream, ids)
    first = list(_sales(0, 2, hours=12.0)) + list(_sales(2, 2, hours=12.0, merchant="M2"))
    asyncio.run(processor.process(first))
    asyncio.run(processor.tick())
    before = dict(table), dict(ids)
    later = list(_sales(4, 8, hours=12.0)) + list(_sales(12, 8, hours=12.0, merchant="M2"))
    asyncio.run(processor.process(later))
    asyncio.run(processor.tick())
    assert _decoded(table, b"M1").closed_through >= day0 + 1  # day 0's ids are forgotten
    table[b"M2"], ids[b"M2"] = before[0][b"M2"], before[1][b"M2"]  # M2's writes were lost

    dead_letters = _Topic()
    restarted = _processor(table, dead_letters, _Stream(), ids)
    asyncio.run(restarted.process(first + later))
    asyncio.run(restarted.tick())
    assert dead_letters.sent == []
    assert restarted.counters.skipped_redelivered == 2 + 8 + 2  # M1's all, M2's first flush
    assert restarted.counters.applied == 8
    for key, sales in ((b"M1", first[:2] + later[:8]), (b"M2", first[2:] + later[8:])):
        state = _decoded(table, key)
        counted = sum(
            day_totals(state, day).event_count for day in range(state.first_day, day0 + 10)
        )
        assert counted == len(sales), key


def test_a_merchants_marks_stay_below_its_first_held_event() -> None:
    # An event held back (the account input may still precede it) is not in the state written
    # meanwhile: the mark of its input stays below it, so a crash re-delivers and applies it.
    account, pos = TP(topics.ACCOUNT_TRANSACTIONS, 0), TP(topics.POS_TRANSACTIONS, 0)
    table, stream = _Table(), _Stream()
    processor = _processor(table, _Topic(), stream)
    asyncio.run(processor.process(list(_sales(0, 2))))
    asyncio.run(processor.tick())
    caught_up = processor.app
    processor.app = SimpleNamespace(  # type: ignore[assignment]
        consumer=_Consumer({account: 150, pos: 5}, {account: 100, pos: 4})
    )
    asyncio.run(processor.process(list(_sales(2, 3))))  # held: account records are waiting
    processor.counters.applied = 0
    asyncio.run(processor.write_states())
    assert processor.counters.applied == 0
    assert split_state_value(table[b"M1"])[1] == (1, -1)
    processor.app = caught_up
    asyncio.run(processor.tick())  # released and written
    assert processor.counters.applied == 3
    assert split_state_value(table[b"M1"])[1] == (4, -1)


def test_ids_written_by_a_flush_whose_state_was_lost_do_not_make_its_events_duplicates() -> None:
    # The state and the ids are two records: a crash (or a changelog restore on another
    # worker) can land a flush's ids without its state. The ids then hold the ids of events
    # the state does not; they are re-delivered and must be applied, not taken for copies.
    table, ids, stream = _Table(), _Table(), _Stream()
    processor = _processor(table, _Topic(), stream, ids)
    asyncio.run(processor.process(list(_sales(0, 2))))
    asyncio.run(processor.tick())
    first_state = table[b"M1"]
    asyncio.run(processor.process(list(_sales(2, 3))))
    asyncio.run(processor.tick())
    table[b"M1"] = first_state  # the second flush's state was lost, its ids landed
    assert split_ids_value(ids[b"M1"])[0] == (4, -1)

    restarted = _processor(table, _Topic(), _Stream(), ids)
    asyncio.run(restarted.process(list(_sales(0, 5)) + list(_sales(30, 1, hours=0.01))))
    assert restarted.counters.skipped_redelivered == 2
    assert restarted.counters.duplicates == 0
    asyncio.run(restarted.tick())
    assert _events_of_day(table) == 6
    assert len(decode_state_with_ids(table, ids).seen) == 6
    # A real copy of a transaction is still caught once the state has caught up.
    copy = [SimpleNamespace(**{**vars(m), "offset": 40}) for m in _sales(3, 1)]
    asyncio.run(restarted.process(copy))
    assert restarted.counters.duplicates == 1


def test_a_timer_tick_waits_for_the_batch_under_way() -> None:
    # A batch awaits a dead letter's send in the middle of applying what it released; a tick
    # in between would apply newer held events or close days under it.
    async def scenario() -> tuple[bool, bool]:
        gate = asyncio.Event()

        class _SlowTopic(_Topic):
            async def send(self, key: bytes, value: bytes) -> None:
                await gate.wait()
                await super().send(key, value)

        processor = _processor(_Table(), _SlowTopic(), _Stream())
        await processor.process(list(_sales(0, 12, hours=12.0)))  # closes days 0 to 2
        late = next(_sales(0, 1))  # day 0 again, closed: dead-lettered as late
        late.offset, late.value = 99, late.value.replace(b"M1-t0", b"M1-t99")
        batch = asyncio.create_task(processor.process([late]))
        await asyncio.sleep(0)  # the batch starts, takes the lock and waits on its send
        assert processor.lock.locked()
        tick = asyncio.create_task(processor.tick())
        await asyncio.sleep(0.05)
        tick_ran_meanwhile = tick.done()
        gate.set()
        await asyncio.gather(batch, tick)
        return tick_ran_meanwhile, processor.counters.dead_letters["late"] == 1

    assert asyncio.run(scenario()) == (False, True)
