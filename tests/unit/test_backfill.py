"""Backfill pieces: reading history like the worker, the bootstrap files, seeding, skipping."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from click.testing import CliRunner
from faust.streams import current_event
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from detectors.actions import ActionState
from detectors.features import (
    BusinessCalendar,
    FeatureParams,
    MerchantState,
    close_through,
    decode_state,
    step_account,
    step_pos,
)
from detectors.pipeline import MonitorModels, MonitorParams
from detectors.state import DetectorState
from schemas import topics
from schemas.inputs import PosTransaction
from schemas.settings import Settings
from streams.backfill import backfill
from streams.bootstrap import (
    MANIFEST,
    MODELS_FILE,
    STATES_FILE,
    Bootstrap,
    BootstrapError,
    partition_of,
    seed_table,
)
from streams.codec import encode
from streams.commands.backfill import command
from streams.errors import InputFileError
from streams.history import account_columns, from_simulation, run
from streams.history_files import Loaded, read_accounts
from streams.processor import BatchProcessor, split_state_value
from streams.sim import Scenario, Simulation, simulate
from streams.sim.files import topic_file
from streams.sink import WarehouseSink

PARAMS = FeatureParams()


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Simulation, Path]:
    simulation = simulate(Scenario.default().resized(merchants=25, days=30), seed=11)
    directory = tmp_path_factory.mktemp("sim")
    simulation.write(directory)
    return simulation, directory


def _files(directory: Path) -> tuple[list[Path], list[Path]]:
    return (
        [directory / topic_file(topics.POS_TRANSACTIONS)],
        [directory / topic_file(topics.ACCOUNT_TRANSACTIONS)],
    )


class _Writer:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def insert(self, table: str, rows: list[Any]) -> int:
        self.rows.setdefault(table, []).extend(dict(r) for r in rows)
        return len(rows)


# -- partitioning ----------------------------------------------------------------------------


def test_partition_of_matches_the_producers_default_partitioners() -> None:
    rng = random.Random(3)
    for _ in range(500):
        merchant = "".join(rng.choice("ABCMN0123456789-_商户") for _ in range(rng.randint(1, 20)))
        count = rng.randint(1, 64)
        everyone = list(range(count))
        key = merchant.encode()
        expected = DefaultPartitioner()(key, everyone, everyone)
        assert partition_of(merchant, count) == expected
        # kafka-python (the simulator's and replay's producer) hashes the same way.
        assert (kafka_python_murmur2(key) & 0x7FFFFFFF) % count == expected


# -- reading the history like the worker ------------------------------------------------------


def test_account_files_keep_the_event_time_like_the_worker(
    sim_files: tuple[Simulation, Path],
) -> None:
    simulation, directory = sim_files
    loaded = Loaded()
    got = read_accounts(_files(directory)[1], PARAMS, loaded)
    ids = list(loaded.merchants)
    want = account_columns(simulation.table(topics.ACCOUNT_TRANSACTIONS), ids, PARAMS)
    for name in ("merchant", "day", "code", "amount_fen", "balance_fen", "time_us", "lender"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    assert got.txn_id == want.txn_id


def test_account_csv_rows_order_bookings_by_time_then_file_order(tmp_path: Path) -> None:
    path = tmp_path / "acct.csv"
    path.write_text(
        "merchant_id,event_time,direction,category,amount,balance_after\n"
        "M1,2026-03-02T10:00:00+08:00,credit,transfer_in,5,105\n"
        "M1,2026-03-02T09:00:00+08:00,credit,transfer_in,5,100\n"
        "M1,20260303,debit,fee,1,99\n"
        "M1,20260303,debit,fee,1,98\n",
        encoding="utf-8",
    )
    cols = read_accounts([path], PARAMS, Loaded())
    ten = datetime(2026, 3, 2, 2, tzinfo=UTC)
    assert cols.time_us[0] == int(ten.timestamp()) * 1_000_000
    assert cols.time_us[1] < cols.time_us[0]
    assert cols.time_us[2] < cols.time_us[3]  # bare dates: file order


# -- the backfill ---------------------------------------------------------------------------------


def _backfill(directory: Path, out: Path, through: date, writer: _Writer | None = None) -> Any:
    pos, acct = _files(directory)
    return backfill(
        pos, acct, through, out, PARAMS, insert=writer.insert if writer else None, progress=False
    )


def test_backfill_writes_states_models_manifest_and_rows(
    sim_files: tuple[Simulation, Path], tmp_path: Path
) -> None:
    simulation, directory = sim_files
    through = simulation.start + timedelta(days=14)
    writer = _Writer()
    report = _backfill(directory, tmp_path / "out", through, writer)

    bootstrap = Bootstrap.open(tmp_path / "out", PARAMS)
    assert bootstrap.through == through
    assert bootstrap.manifest["counts"]["events"] == report.events
    assert report.events + report.events_after_through == sum(
        simulation.counts()[t] for t in (topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS)
    )
    through_day = BusinessCalendar.day_of_date(through)
    everyone = set(range(4))
    states = list(bootstrap.states(everyone, 4))
    assert len(states) == report.merchants > 0
    limits = 0
    for key, partition, feature, detector, action, limit in states:
        assert partition == partition_of(key.decode(), 4)
        state = decode_state(feature)
        assert state.closed_through == through_day  # every day through it closed, silent too
        assert DetectorState.decode(detector).first_day >= 0
        # the limit policy's turnover history comes along, and the last published limit
        kept = ActionState.decode(action)
        assert kept.limit.observed_days > 0
        if limit is not None:
            limits += 1
            published = orjson.loads(limit)
            assert published["merchant_id"] == key.decode()
            assert (published["version"], published["limit_fen"]) == (
                kept.limit.version,
                kept.limit.limit_fen,
            )
    assert len(writer.rows.get("pos_loan_limits", [])) >= limits  # every version, for audit
    MonitorModels.from_bytes((tmp_path / "out" / MODELS_FILE).read_bytes())

    daily = writer.rows["merchant_daily"]
    assert len(daily) == report.merchant_days
    assert all(r["version"] % 2 == 1 for r in daily)  # closed rows, the worker's convention
    assert max(r["day"] for r in daily) == through
    applied = sum(r["version"] // 2 for r in daily)
    assert applied <= report.events  # duplicates count once
    assert {"model_metrics"} <= writer.rows.keys()


def test_backfilled_limits_come_with_their_history_and_last_version(tmp_path: Path) -> None:
    simulation = simulate(Scenario.default().resized(merchants=20, days=130), seed=4)
    simulation.write(tmp_path / "sim")
    writer = _Writer()
    through = simulation.start + timedelta(days=120)
    _backfill(tmp_path / "sim", tmp_path / "out", through, writer)
    bootstrap = Bootstrap.open(tmp_path / "out", PARAMS)
    seeded = [row for row in bootstrap.states(set(range(4)), 4) if row[5] is not None]
    assert seeded, "four months of turnover earn some merchants a limit"
    versions = {(r["merchant_id"], r["version"]) for r in writer.rows["pos_loan_limits"]}
    for key, _, _, _, action, limit in seeded:
        published = orjson.loads(limit)
        kept = ActionState.decode(action).limit
        assert kept.version == published["version"] >= 1
        # every version up to the seeded one went to the warehouse
        assert {(key.decode(), v) for v in range(1, kept.version + 1)} <= versions


def test_backfill_then_live_events_equals_the_whole_history(
    sim_files: tuple[Simulation, Path], tmp_path: Path
) -> None:
    """The worker's continuation, without Faust: decode the bootstrap states, apply only the
    events after the through day, close: the totals equal one run over the whole history."""
    simulation, directory = sim_files
    through = simulation.start + timedelta(days=11)
    through_day = BusinessCalendar.day_of_date(through)
    _backfill(directory, tmp_path / "out", through)
    bootstrap = Bootstrap.open(tmp_path / "out", PARAMS)
    states = {k.decode(): decode_state(f) for k, _, f, *_ in bootstrap.states({0}, 1)}

    history = from_simulation(simulation, PARAMS)
    ids = history.merchant_ids
    pos, acct = history.pos, history.account
    assert acct is not None
    live: list[tuple[int, int, int, bool]] = []  # (day, order, index, is_pos)
    live += [(int(d), 1, i, True) for i, d in enumerate(pos.day) if d > through_day]
    live += [(int(d), 0, i, False) for i, d in enumerate(acct.day) if d > through_day]
    totals: dict[tuple[str, int], Any] = {}
    for day, _, i, is_pos in sorted(live):
        mid = ids[int(pos.merchant[i] if is_pos else acct.merchant[i])]
        state = states.get(mid)
        if state is None:
            state = states[mid] = MerchantState(mid, day)
        if is_pos:
            kind, amount, card, txn = (
                int(pos.kind[i]),
                int(pos.amount_fen[i]),
                pos.card[i],
                pos.txn[i],
            )
            result = step_pos(state, day, kind, amount, card, txn, PARAMS)
        else:
            booking = (int(acct.code[i]), int(acct.amount_fen[i]), int(acct.balance_fen[i]))
            extra = (int(acct.time_us[i]), acct.txn_id[i], int(acct.lender[i]))
            result = step_account(state, day, *booking, *extra, PARAMS)
        assert result.status.value != "late"
        totals.update({(mid, s.day): s.totals for s in result.closed})  # closed by step
    last = int(max(pos.day.max(), acct.day.max()))
    for mid, state in states.items():
        _, snaps = close_through(state, last, PARAMS, with_features=False)
        totals.update({(mid, s.day): s.totals for s in snaps})

    whole: dict[tuple[str, int], Any] = {}
    run(
        history,
        PARAMS,
        MonitorParams(),
        MonitorModels(),
        features_on=lambda merchant, day: False,
        on_snapshot=lambda s: whole.__setitem__((s.merchant_id, s.day), s.totals),
    )
    after = {k: v for k, v in whole.items() if k[1] > through_day}
    assert after
    assert totals == after


def test_backfill_refuses_a_through_day_beyond_the_history(
    sim_files: tuple[Simulation, Path], tmp_path: Path
) -> None:
    simulation, directory = sim_files
    with pytest.raises(InputFileError, match="before --through"):
        _backfill(directory, tmp_path / "out", simulation.end + timedelta(days=3))
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_command_reports_bad_rows_and_refuses_files_without_columns(tmp_path: Path) -> None:
    pos = tmp_path / "pos.csv"
    pos.write_text(
        "merchant_id,event_time,amount\nM1,20260105,12.50\nM1,notadate,1\nM2,20260106,3\n",
        encoding="utf-8",
    )
    settings = Settings(data_dir=tmp_path / "data")  # type: ignore[call-arg]
    args = ["--pos", str(pos), "--through", "2026-01-06", "--out", str(tmp_path / "bs")]
    result = CliRunner().invoke(command, [*args, "--no-warehouse", "--no-progress"], obj=settings)
    assert result.exit_code == 0, result.output
    assert "bad rows 1" in result.output
    assert (tmp_path / "bs" / "rejects.csv").exists()
    assert Bootstrap.open(tmp_path / "bs", PARAMS).manifest["merchants"] == 2

    bad = tmp_path / "bad.csv"
    bad.write_text("merchant,when,amount\nM1,20260105,1\n", encoding="utf-8")
    args[1] = str(bad)
    result = CliRunner().invoke(command, [*args, "--no-warehouse"], obj=settings)
    assert result.exit_code != 0
    assert isinstance(result.exception, InputFileError)
    assert "missing column(s) ['event_time', 'merchant_id']" in str(result.exception)


# -- verifying --------------------------------------------------------------------------------


@pytest.fixture
def bootstrap_dir(sim_files: tuple[Simulation, Path], tmp_path: Path) -> Path:
    simulation, directory = sim_files
    _backfill(directory, tmp_path / "bs", simulation.start + timedelta(days=9))
    return tmp_path / "bs"


def test_open_refuses_a_damaged_or_foreign_directory(bootstrap_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BootstrapError, match=r"no manifest\.json"):
        Bootstrap.open(tmp_path / "elsewhere", PARAMS)
    with pytest.raises(BootstrapError, match="business_timezone"):
        Bootstrap.open(bootstrap_dir, FeatureParams(business_timezone="Europe/Paris"))
    data = bytearray((bootstrap_dir / STATES_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bootstrap_dir / STATES_FILE).write_bytes(bytes(data))
    with pytest.raises(BootstrapError, match="does not match its sha256"):
        Bootstrap.open(bootstrap_dir, PARAMS)
    manifest = json.loads((bootstrap_dir / MANIFEST).read_text())
    manifest["format"] = "merchant-monitor-bootstrap/99"
    (bootstrap_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BootstrapError, match="format"):
        Bootstrap.open(bootstrap_dir, PARAMS)


def test_models_are_installed_only_where_none_exist(bootstrap_dir: Path, tmp_path: Path) -> None:
    bootstrap = Bootstrap.open(bootstrap_dir, PARAMS)
    target = tmp_path / "models" / MODELS_FILE
    assert bootstrap.install_models(target)
    assert target.read_bytes() == (bootstrap_dir / MODELS_FILE).read_bytes()
    target.write_bytes(b"newer")
    assert not bootstrap.install_models(target)
    assert target.read_bytes() == b"newer"


def test_skip_instant_is_the_start_of_the_day_after_through(bootstrap_dir: Path) -> None:
    bootstrap = Bootstrap.open(bootstrap_dir, PARAMS)
    calendar = PARAMS.calendar
    assert calendar.day_of_epoch_seconds(bootstrap.skip_before_s) == bootstrap.through_day + 1
    assert calendar.day_of_epoch_seconds(bootstrap.skip_before_s - 1) == bootstrap.through_day


# -- seeding -------------------------------------------------------------------------------------


class _Table(dict[bytes, bytes]):
    """Records the partition each write was made for (what Faust's changelog would use)."""

    def __init__(self) -> None:
        super().__init__()
        self.partitions: dict[bytes, int] = {}

    def __setitem__(self, key: bytes, value: bytes) -> None:
        event = current_event()
        assert event is not None, "a table write outside any event would fail in Faust"
        self.partitions[key] = event.message.partition
        super().__setitem__(key, value)


def test_seeding_writes_only_missing_keys_on_their_partition(bootstrap_dir: Path) -> None:
    bootstrap = Bootstrap.open(bootstrap_dir, PARAMS)
    mine = {1, 3}
    entries = list(bootstrap.states(mine, 4))
    assert entries
    assert {p for _, p, *_ in entries} <= mine
    table = _Table()
    newer_key = entries[0][0]
    dict.__setitem__(table, newer_key, b"newer")
    written, kept = asyncio.run(seed_table(table, ((k, p, f) for k, p, f, *_ in entries)))
    assert (written, kept) == (len(entries) - 1, 1)
    assert table[newer_key] == b"newer"
    for key, partition, feature, *_ in entries[1:]:
        assert table[key] == feature
        assert table.partitions[key] == partition


# -- skipping in the worker's processor ---------------------------------------------------------


class _Stream:
    def __init__(self) -> None:
        self.acked: list[Any] = []

    def ack(self, records: list[Any]) -> None:
        self.acked.extend(records)


class _Topic:
    async def send(self, key: bytes, value: bytes) -> None:
        raise AssertionError("nothing should be dead-lettered")


def _sales(start: datetime, count: int) -> Iterator[Any]:
    for i in range(count):
        sale = PosTransaction(
            txn_id=f"t{i}",
            merchant_id="M1",
            terminal_id="T1",
            event_time=start + timedelta(hours=6 * i),
            amount_fen=1_000 + i,
            kind="approved",
            card_token="tok00001x",
            channel="chip",
            mcc="5812",
        )
        message = SimpleNamespace(
            topic=topics.POS_TRANSACTIONS, key=b"M1", value=encode(sale), partition=0, offset=i
        )
        yield message


def test_processor_skips_and_counts_events_of_backfilled_days() -> None:
    start = datetime(2026, 2, 28, 16, 30, tzinfo=UTC)  # 00:30 on 1 March in Shanghai
    skip_before = PARAMS.calendar.day_start_epoch_seconds(PARAMS.calendar.day_of(start) + 2)
    writer = _Writer()
    table: dict[bytes, bytes] = {}
    processor = BatchProcessor(
        SimpleNamespace(consumer=None),  # type: ignore[arg-type]
        table,  # type: ignore[arg-type]
        {},  # type: ignore[arg-type]
        WarehouseSink(writer, max_buffer_rows=10_000),
        _Topic(),  # type: ignore[arg-type]
        PARAMS,
        max_skew_s=43_200,
        align_idle_s=0.0,
        idle_s=300.0,
        max_future_s=1e12,
        cache_size=100,
        wall_clock=lambda: start.timestamp() + 30 * 86_400,
    )
    stream = _Stream()
    processor.ack = stream.ack
    processor.skip_before_s = skip_before
    events = list(_sales(start, 16))  # 4 a day over 4 days: the first 2 days are skipped
    asyncio.run(processor.process(events))
    assert processor.counters.skipped_backfilled == 8
    assert processor.counters.applied == 8
    asyncio.run(processor.acknowledge(processor.take_done()))  # the flush
    assert len(stream.acked) == 8  # the skipped ones; applied ones wait for their state's write
    asyncio.run(processor.tick())  # the timer writes changed states and acknowledges the rest
    asyncio.run(processor.acknowledge(processor.take_done()))  # the flush
    assert len(stream.acked) == 16
    state = decode_state(split_state_value(table[b"M1"])[2])
    assert state.first_day == PARAMS.calendar.day_of(start) + 2
