"""In-process measurements: simulator, backtest, serialized state size, warehouse inserts."""

from __future__ import annotations

import json
import shutil
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from detectors.features import FeatureParams
from detectors.features.codec import encode_state
from detectors.pipeline import MonitorModels, MonitorParams
from schemas import topics
from schemas.settings import Settings
from streams.backtest import backtest
from streams.history import from_simulation, run
from streams.migrations import migrate
from streams.sim import Scenario, simulate
from streams.sim.files import topic_file
from streams.warehouse import open_warehouse


def simulator_run(merchants: int, days: int, out: Path, seed: int = 7) -> tuple[int, float]:
    """(events generated, seconds) for generating the scenario and writing its files."""
    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    simulation = simulate(Scenario.default().resized(merchants=merchants, days=days), seed)
    simulation.write(out)
    seconds = time.perf_counter() - began
    return sum(simulation.counts().values()), seconds


def backtest_run(files: Path, jobs: int | None = None) -> tuple[int, float, int]:
    """(events, seconds, feature processes) of the in-process backtest over the simulator's
    POS and account files, as of the last simulated day, load included
    (BacktestReport.events_per_s); ``jobs`` as for ``streams.backtest.backtest``."""
    manifest = json.loads((files / "manifest.json").read_text())
    last_day = date.fromisoformat(manifest["start"]) + timedelta(days=int(manifest["days"]) - 1)
    params = MonitorParams(horizon_days=30, label_stride_days=14)
    _, report = backtest(
        [files / topic_file(topics.POS_TRANSACTIONS)],
        [files / topic_file(topics.ACCOUNT_TRANSACTIONS)],
        last_day,
        params,
        jobs=jobs,
    )
    return report.events, report.load_seconds + report.run_seconds, report.jobs


def state_sizes(merchants: int, days: int, seed: int = 7) -> list[int]:
    """Feature-state sizes per merchant (as the worker's `merchant-state` holds them: without
    the transaction ids, which have a table of their own) after the whole simulated history."""
    simulation = simulate(Scenario.default().resized(merchants=merchants, days=days), seed)
    fp = FeatureParams(auto_close_features=False)
    params = MonitorParams(horizon_days=30)
    result = run(from_simulation(simulation, fp), fp, params, MonitorModels(params.horizon_days))
    return [len(encode_state(state, ids=False)) for state in result.feature_states.values()]


def daily_rows(data_dir: Path) -> list[dict[str, Any]]:
    """merchant_daily rows the pipeline wrote (the template for the insert benchmark)."""
    settings = Settings(data_dir=data_dir)
    with open_warehouse(settings) as warehouse:
        return warehouse.query("SELECT * FROM merchant_daily FINAL")


def warehouse_run(template: list[dict[str, Any]], rows: int, data_dir: Path) -> float:
    """Seconds for one ChdbWarehouse.insert of ``rows`` merchant_daily rows into a fresh table."""
    shutil.rmtree(data_dir, ignore_errors=True)
    batch = []
    for i in range(rows):
        row = dict(template[i % len(template)])
        row["merchant_id"] = f"B{i // len(template):03d}{row['merchant_id']}"
        batch.append(row)
    settings = Settings(data_dir=data_dir)
    with open_warehouse(settings) as warehouse:
        migrate(warehouse)
        began = time.perf_counter()
        warehouse.insert("merchant_daily", batch)
        return time.perf_counter() - began
