"""Scoring early warnings against labels, and the evaluate report end to end."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.evaluation import (
    DailySeries,
    DetectorRun,
    EvaluationParams,
    Label,
    OutreachItem,
    alert_starts,
    evaluate,
    precision_at_capacity,
    score_alerts,
    share_daily_changes_over,
    targets,
)
from schemas.settings import Settings
from streams.commands.evaluate import command
from streams.evaluate import daily_series, evaluation_report, render_table
from streams.sim import Scenario, simulate

START = date(2026, 1, 5)
END = date(2026, 3, 5)


def d(offset: int) -> date:
    return START + timedelta(days=offset)


LABELS = [
    Label("M1", "decline_churn", d(5), d(30)),
    Label("M2", "acquirer_switch", d(20), d(19)),
    Label("M3", "stable"),
    Label("M4", "dormant", d(10), d(9)),
    Label("M5", "settlement_moved", d(40), d(39)),
    Label("M6", "dormant_reactivated", d(5), d(20)),
    Label("M7", "credit_default", d(10), d(40)),
    Label("M8", "inflated_turnover", d(10), d(30)),
    Label("M9", "decline_churn", d(50), None),
]


def test_dormancy_targets_count_from_the_silence() -> None:
    goals, ignored = targets("dormancy", LABELS)
    # Dormant since day 10: the days since the last sale exceed 30 on day 40.
    assert goals["M4"].reference == d(40)
    assert goals["M4"].deadline == d(42)
    assert goals["M1"].window_start == d(31)
    assert goals["M2"].reference == d(50)
    # Reactivated after 15 days: not dormant by the definition; a churn still in progress too.
    assert {"M6", "M9"} <= ignored
    assert "M5" not in goals


def test_churn_and_credit_targets() -> None:
    goals, ignored = targets("churn", LABELS)
    assert set(goals) == {"M1", "M2", "M5", "M9"}
    assert goals["M9"].deadline is None
    assert goals["M1"].deadline == d(44)
    assert {"M4", "M6"} <= ignored
    credit, ignored = targets("credit", LABELS, EvaluationParams(credit_grace_days=3))
    assert credit["M7"].deadline == d(43)
    assert ignored == {"M8"}


def test_scores_precision_recall_lead_and_false_alerts() -> None:
    alerts = {
        "M1": [d(3), d(20), d(25)],  # one false (before onset), one true, one repeat
        "M2": [d(25)],  # after the switch, within the grace: lead -6
        "M3": [d(12), d(40)],  # two false alerts on a stable merchant
        "M4": [d(35)],  # ignored for churn
        "M9": [d(55)],  # censored positive, flagged inside the window
    }
    score = score_alerts(alerts, LABELS, "churn", END, merchant_days=9 * 60)
    assert score.true_alerts == 3
    assert score.false_alerts == 3
    assert score.precision == pytest.approx(0.5)
    # Positives due in the window: M1, M2, M5 (missed); M9 counts because it was flagged.
    assert score.positives == 4
    assert score.recall == pytest.approx(3 / 4)
    assert score.median_lead_days == pytest.approx(2.0)  # leads 10 and -6
    assert score.false_alerts_per_1000_merchant_months == pytest.approx(1000 * 3 / 18)


def test_late_alerts_are_false_and_unflagged_censored_positives_are_left_out() -> None:
    score = score_alerts({"M7": [d(50)]}, LABELS, "credit", END, merchant_days=60)
    assert (score.true_alerts, score.false_alerts, score.recall) == (0, 1, 0.0)
    nothing = score_alerts({}, [Label("M9", "decline_churn", d(50), None)], "churn", END, 60)
    assert (nothing.positives, nothing.censored, nothing.recall, nothing.precision) == (
        0,
        1,
        None,
        None,
    )


def test_alert_starts_are_runs_of_flags() -> None:
    flags = np.array([[True, True, False, True], [False, False, False, False]])
    assert alert_starts(flags, ["A", "B"], START) == {"A": [d(0), d(3)]}
    with pytest.raises(ValueError, match="rows"):
        alert_starts(flags, ["A"], START)


def test_precision_at_capacity_works_the_top_of_each_queue() -> None:
    week = date(2026, 1, 5)
    items = [OutreachItem(f"M{i}", "AM1", week, priority=i) for i in range(10)] + [
        OutreachItem("M99", "AM2", week, priority=0.5)
    ]
    assert precision_at_capacity(items, {"M9", "M8", "M0"}, capacity_per_week=3) == pytest.approx(
        0.5
    )
    assert precision_at_capacity([], set(), 3) is None


def test_share_of_limit_changes() -> None:
    assert share_daily_changes_over({"A": [100, 105, 120, 120]}) == pytest.approx(1 / 3)
    assert share_daily_changes_over({"A": [0, 0, 10]}) == pytest.approx(0.5)
    assert share_daily_changes_over({"A": [5]}) is None


def test_detectors_plug_in_by_name() -> None:
    series = DailySeries(("M3", "M4"), START, {"pos_approved_count": np.ones((2, 60), np.int64)})

    def always(s: DailySeries) -> np.ndarray:
        return np.ones((len(s.merchant_ids), s.days), dtype=np.bool_)

    report = evaluate(series, LABELS, {"mine": DetectorRun("dormancy", "test:always", always)})
    assert report["mine"]["source"] == "test:always"
    # M3 is stable; M4's only alert (day 0) comes before its silence began: both false.
    assert (report["mine"]["true_alerts"], report["mine"]["false_alerts"]) == (0, 2)
    with pytest.raises(KeyError, match="no column"):
        series.column("acct_returned_item_count")


def test_report_from_a_simulation(tmp_path: Path) -> None:
    simulation = simulate(Scenario.default().resized(merchants=200, days=60), 2)
    series = daily_series(simulation)
    assert series.column("pos_approved_count").shape == (200, 60)
    report = evaluation_report(simulation)
    assert set(report["detectors"]) >= {
        "dormancy",
        "churn",
        "credit",
        "baseline_days_since_last_txn",
        "baseline_turnover_drop",
    }
    for entry in report["detectors"].values():
        assert {
            "precision",
            "recall",
            "median_lead_days",
            "false_alerts_per_1000_merchant_months",
        } <= set(entry)
        assert entry["source"].startswith(("baseline:", "detectors:"))
    # The task entries come from the real detectors; the baselines stay for comparison.
    assert report["detectors"]["dormancy"]["source"].startswith("detectors:dormancy")
    assert report["detectors"]["baseline_turnover_drop"]["source"] == "baseline:turnover_drop"
    assert report["outreach"]["precision_at_capacity"] is None
    assert report["limits"]["share_daily_changes_over_10pct"] is None
    assert "not measured" in report["outreach"]["note"]
    assert "detectors/limits.py" in report["limits"]["note"]
    # The squeeze shows up as bounced items before the default: the credit baseline warns early.
    assert report["detectors"]["credit"]["recall"] > 0.5
    assert report["detectors"]["credit"]["median_lead_days"] > 0
    assert "baseline_turnover_drop" in render_table(report)


def test_cli_writes_report_json(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        command,
        ["--seed", "1", "--merchants", "80", "--days", "45", "--out", str(out)],
        obj=Settings(),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report) >= {"detectors", "outreach", "limits"}
    assert "precision" in result.output
    assert "churn" in result.output


trajectories = st.sampled_from(
    ["stable", "decline_churn", "acquirer_switch", "dormant", "credit_default", "seasonal"]
)
offsets = st.integers(min_value=0, max_value=59)


@st.composite
def _case(draw: st.DrawFn) -> tuple[list[Label], dict[str, list[date]]]:
    labels, alerts = [], {}
    for i in range(draw(st.integers(min_value=1, max_value=12))):
        onset = draw(offsets)
        event = draw(st.one_of(st.none(), offsets))
        labels.append(Label(f"M{i}", draw(trajectories), d(onset), d(event) if event else None))
        alerts[f"M{i}"] = [d(o) for o in draw(st.lists(offsets, max_size=4))]
    return labels, alerts


@settings(max_examples=80)
@given(_case(), st.sampled_from(["dormancy", "churn", "credit"]))
def test_scores_stay_in_range_and_ignore_alert_order(
    case: tuple[list[Label], dict[str, list[date]]], task: str
) -> None:
    labels, alerts = case
    score = score_alerts(alerts, labels, task, END, merchant_days=len(labels) * 60)  # type: ignore[arg-type]
    for value in (score.precision, score.recall):
        assert value is None or 0.0 <= value <= 1.0
    assert score.true_alerts <= score.positives
    shuffled = {m: list(reversed(dates)) for m, dates in reversed(list(alerts.items()))}
    assert score_alerts(shuffled, labels, task, END, len(labels) * 60) == score  # type: ignore[arg-type]
