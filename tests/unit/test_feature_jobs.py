"""The feature stage in forked processes gives exactly what one process gives."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from detectors.features import DaySnapshot, FeatureParams
from detectors.features.codec import encode_state
from detectors.pipeline import MonitorModels, MonitorParams
from streams.commands.backtest import command
from streams.feature_jobs import FeatureJobError
from streams.history import History, RunResult, first_seen_order, from_simulation, run
from streams.sim import Scenario, simulate


@pytest.fixture(scope="module")
def history() -> History:
    simulation = simulate(Scenario.default().resized(merchants=60, days=50), seed=5)
    return from_simulation(simulation, FeatureParams(auto_close_features=False))


def _run(history: History, jobs: int) -> tuple[RunResult, list[DaySnapshot]]:
    fp = FeatureParams(auto_close_features=False)
    params = MonitorParams(horizon_days=14, label_stride_days=7)
    seen: list[DaySnapshot] = []
    result = run(
        history,
        fp,
        params,
        MonitorModels(params.horizon_days),
        on_snapshot=seen.append,
        features_on=lambda merchant, day: day % 3 == 0,
        jobs=jobs,
    )
    return result, seen


@pytest.mark.parametrize("jobs", [2, 3])
def test_forked_features_give_the_one_process_result(history: History, jobs: int) -> None:
    one, one_seen = _run(history, 1)
    many, many_seen = _run(history, jobs)
    assert one.merchant_days > 1000  # a run with something in it
    assert one.alerts
    assert many_seen == one_seen  # every snapshot, in the same order
    assert many.scores == one.scores
    assert many.alerts == one.alerts
    assert many.metric_rows == one.metric_rows
    assert (many.merchant_days, many.feature_days) == (one.merchant_days, one.feature_days)
    assert list(many.feature_states) == list(one.feature_states)
    assert [encode_state(s) for s in many.feature_states.values()] == [
        encode_state(s) for s in one.feature_states.values()
    ]
    assert {m: s.encode() for m, s in many.detector_states.items()} == {
        m: s.encode() for m, s in one.detector_states.items()
    }


def test_states_can_stay_in_the_processes(history: History) -> None:
    fp = FeatureParams(auto_close_features=False)
    params = MonitorParams()
    result = run(history, fp, params, MonitorModels(), jobs=2, keep_feature_states=False)
    assert result.merchant_days > 0
    assert not result.feature_states


def test_first_seen_order_is_the_order_merchants_close_in(history: History) -> None:
    one, _ = _run(history, 1)
    assert first_seen_order(history).tolist() == list(one.feature_states)


def test_a_failing_feature_process_stops_the_run_with_its_traceback(history: History) -> None:
    victim = history.merchant_ids[int(first_seen_order(history)[1])]

    def features_on(merchant: str, day: int) -> bool:
        if merchant == victim and day % 10 == 0:
            raise ValueError(f"cannot score {merchant}")
        return True

    fp = FeatureParams(auto_close_features=False)
    with pytest.raises(FeatureJobError, match="feature process 1 failed") as caught:
        run(history, fp, MonitorParams(), MonitorModels(), features_on=features_on, jobs=2)
    assert f"ValueError: cannot score {victim}" in str(caught.value)


def test_backtest_jobs_do_not_change_the_scores(tmp_path: Path) -> None:
    simulation = simulate(Scenario.default().resized(merchants=80, days=40), seed=9)
    simulation.write(tmp_path / "sim")
    as_of = date(2026, 1, 5) + timedelta(days=35)
    tables = []
    for jobs in (1, 2):
        out = tmp_path / f"scores{jobs}.csv"
        result = CliRunner().invoke(
            command,
            [
                "--pos",
                str(tmp_path / "sim" / "pos.transactions.v1.parquet"),
                "--accounts",
                str(tmp_path / "sim" / "account.transactions.v1.parquet"),
                "--as-of",
                as_of.isoformat(),
                "--out",
                str(out),
                "--jobs",
                str(jobs),
            ],
            obj=None,
        )
        assert result.exit_code == 0, result.output
        assert f"{jobs} feature process" in result.output
        tables.append(list(csv.DictReader(out.open(encoding="utf-8"))))
    assert len(tables[0]) > 50
    assert tables[1] == tables[0]
    assert np.isfinite([float(r["p_inactive"]) for r in tables[0]]).all()
