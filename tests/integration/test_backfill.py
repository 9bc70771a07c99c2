"""Backfill days 1..25 from files, then a worker over ALL the events on the broker: every
merchant-day is counted exactly once, and the overlap is skipped, not dead-lettered."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

from detectors.features import DaySnapshot, FeatureParams
from detectors.pipeline import MonitorModels, MonitorParams
from schemas import topics
from schemas.settings import Settings
from streams.backfill import backfill
from streams.broker import LocalBroker
from streams.history import from_simulation, run
from streams.migrations import migrate
from streams.sim import Scenario, simulate
from streams.sim.files import topic_file
from streams.sim.publish import publish
from streams.warehouse import open_warehouse
from tests.fixtures.worker import run_worker_over_backlog

pytestmark = pytest.mark.integration

BACKFILL_DAYS = 25
TOTALS = (
    "pos_approved_count",
    "pos_approved_amount_fen",
    "pos_declined_count",
    "pos_refund_count",
    "pos_refund_amount_fen",
    "pos_chargeback_count",
    "pos_chargeback_amount_fen",
    "pos_reversal_count",
    "acct_credit_count",
    "acct_credit_amount_fen",
    "acct_debit_count",
    "acct_debit_amount_fen",
    "acct_settlement_amount_fen",
    "acct_end_balance_fen",
)


def _overlap_events(simulation: object, through: date, params: FeatureParams) -> int:
    """Transactions on the topics whose business day is on or before ``through``."""
    limit = params.calendar.day_start_epoch_seconds(params.calendar.day_of_date(through) + 1)
    count = 0
    for topic in (topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS):
        times = simulation.table(topic).column("event_time")  # type: ignore[attr-defined]
        seconds = pc.divide(times.cast("int64"), 1000)
        count += pc.sum(pc.less(seconds, limit)).as_py() or 0
    return count


def test_backfill_then_worker_counts_every_event_once(
    fresh_broker: LocalBroker, tmp_path: Path
) -> None:
    simulation = simulate(Scenario.default().resized(merchants=40, days=40), seed=5)
    files = tmp_path / "sim"
    simulation.write(files)
    through = simulation.start + timedelta(days=BACKFILL_DAYS - 1)
    data_dir = tmp_path / "data"
    params = FeatureParams.from_settings(Settings(data_dir=data_dir))  # type: ignore[call-arg]

    with open_warehouse(Settings(data_dir=data_dir)) as warehouse:  # type: ignore[call-arg]
        migrate(warehouse)
        report = backfill(
            [files / topic_file(topics.POS_TRANSACTIONS)],
            [files / topic_file(topics.ACCOUNT_TRANSACTIONS)],
            through,
            tmp_path / "bootstrap",
            params,
            insert=warehouse.insert,
            progress=False,
        )
    overlap = _overlap_events(simulation, through, params)
    assert report.events == overlap > 0
    assert report.events_after_through > 0

    # Every event goes to the broker, the backfilled days included.
    publish(simulation, fresh_broker.bootstrap_servers, progress=False)
    settings = run_worker_over_backlog(
        fresh_broker, data_dir, "backfill-test", bootstrap_dir=tmp_path / "bootstrap"
    )
    with open_warehouse(settings) as warehouse:
        rows = warehouse.query("SELECT * FROM merchant_daily FINAL")
        skipped = warehouse.query(
            "SELECT max(value) AS n FROM pipeline_metrics FINAL"
            " WHERE metric = 'skipped_backfilled_total'"
        )
        dead = warehouse.query("SELECT count() AS n FROM dead_letters FINAL")

    # The truth: the whole history in one in-process run.
    truth: dict[tuple[str, date], DaySnapshot] = {}
    run(
        from_simulation(simulation, params),
        params,
        MonitorParams(),
        MonitorModels(),
        features_on=lambda merchant, day: False,
        on_snapshot=lambda snap: truth.__setitem__((snap.merchant_id, snap.business_date), snap),
    )
    got = {(r["merchant_id"], r["day"]): r for r in rows}
    closed_by_worker = [day for (_, day), r in got.items() if r["version"] % 2 and day > through]
    last_closed = max(closed_by_worker)
    assert last_closed >= through + timedelta(days=10)
    # Nothing lost: every merchant-day with events, and every day closed so far (silent
    # merchants' days after the backfill included, which needs the seeded states), is there.
    expected = {
        key for key, snap in truth.items() if key[1] <= last_closed or snap.totals.event_count > 0
    }
    assert set(got) == expected
    # Nothing twice: the totals (and the carried-over balances) equal the full history's.
    for key in expected:
        want = truth[key].totals._asdict()
        assert {c: got[key][c] for c in TOTALS} == {c: want[c] for c in TOTALS}, key
    assert sum(r["pos_approved_amount_fen"] for r in rows) == sum(
        s.totals.pos_approved_amount_fen for s in truth.values()
    )
    # The overlap was skipped and counted, not dead-lettered as late.
    assert skipped[0]["n"] == overlap
    assert dead[0]["n"] == 0
    log = (data_dir / "worker.log").read_text(encoding="utf-8", errors="replace")
    seeded = sum(int(n) for n in re.findall(r"seeded (\d+) merchant states", log))
    assert seeded == report.merchants
    assert "installed the backfill's detector models" in log
