"""The streaming worker and the in-process backtest runner close identical merchant-days."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.features import DaySnapshot, FeatureParams
from detectors.pipeline import MonitorModels, MonitorParams
from streams.broker import LocalBroker
from streams.history import from_simulation, run
from streams.sim import Scenario, simulate
from streams.sim.publish import publish
from streams.warehouse import open_warehouse
from tests.fixtures.worker import run_worker_over_backlog

pytestmark = pytest.mark.integration


def test_worker_and_backtest_close_the_same_days(fresh_broker: LocalBroker, tmp_path: Path) -> None:
    simulation = simulate(Scenario.default().resized(merchants=40, days=21), seed=5)
    publish(simulation, fresh_broker.bootstrap_servers, progress=False)
    settings = run_worker_over_backlog(fresh_broker, tmp_path, "two-paths-test")
    with open_warehouse(settings) as warehouse:
        # An odd version marks the row written when the worker closed the day.
        closed = warehouse.query("SELECT * FROM merchant_daily FINAL WHERE version % 2 = 1")

    params = FeatureParams.from_settings(settings)
    offline: dict[tuple[str, object], DaySnapshot] = {}
    run(
        from_simulation(simulation, params),
        params,
        MonitorParams(),
        MonitorModels(),
        features_on=lambda merchant, day: False,
        on_snapshot=lambda snap: offline.__setitem__((snap.merchant_id, snap.business_date), snap),
    )

    assert len(closed) > 40 * 10  # most of the 21 days closed by the watermark
    for row in closed:
        snapshot = offline[(row["merchant_id"], row["day"])]
        expected = snapshot.daily_row_fields()
        got = {name: row[name] for name in expected}
        assert got == expected, (row["merchant_id"], row["day"])
