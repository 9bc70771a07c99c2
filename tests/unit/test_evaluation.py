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
    WorkedTask,
    alert_starts,
    evaluate,
    limit_changes,
    outreach_scores,
    score_alerts,
    targets,
    task_verdict,
)
from schemas.outputs import TaskType
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


def _task(merchant: str, kind: str, proposed: int, opened: int | None = None) -> WorkedTask:
    return WorkedTask(merchant, "AM1", kind, d(proposed), d(proposed if opened is None else opened))


def test_a_task_is_right_when_its_merchant_is_in_that_trouble_from_its_onset() -> None:
    gone = Label("M1", "acquirer_switch", d(20), d(19))
    assert task_verdict(_task("M1", "win_back", 25), gone) is True
    assert task_verdict(_task("M1", "retention_visit", 10), gone) is False  # before the onset
    assert task_verdict(_task("M1", "credit_review", 25), gone) is False
    defaulter = Label("M2", "credit_default", d(10), d(40))
    assert task_verdict(_task("M2", "credit_review", 12), defaulter) is True
    assert task_verdict(_task("M2", "reactivation_call", 12), defaulter) is False
    closure = Label("M3", "seasonal", d(10), d(30))
    assert task_verdict(_task("M3", "reactivation_call", 15), closure) is False
    inflating = Label("M4", "inflated_turnover", d(5))
    assert task_verdict(_task("M4", "credit_review", 15), inflating) is None
    assert task_verdict(_task("M4", "pos_loan_preapproval", 15), inflating) is None
    assert task_verdict(_task("M9", "win_back", 15), None) is False  # no label: not leaving


def test_outreach_scores_count_worked_tasks_reach_and_offers_to_troubled_merchants() -> None:
    labels = [
        Label("M1", "dormant", d(10)),
        Label("M2", "credit_default", d(10), d(40)),
        Label("M3", "seasonal", d(10), d(30)),
        Label("M4", "decline_churn", d(5), d(30)),  # leaving, never reached
        Label("M5", "inflated_turnover", d(5)),
        Label("M6", "stable"),
        Label("M7", "dormant_reactivated", d(5), d(40)),
    ]
    tasks = [
        _task("M1", "reactivation_call", 42),
        _task("M2", "credit_review", 30, opened=41),  # opened after the default: too late
        _task("M3", "win_back", 20),
        _task("M5", "pos_loan_preapproval", 20),
        _task("M6", "pos_loan_preapproval", 20),
        _task("M7", "refinance_offer", 30),  # while dormant: to a troubled merchant
        _task("M7", "pos_loan_preapproval", 45),  # after the reactivation: no longer
    ]
    scores = outreach_scores(tasks, labels, (d(0), d(69)), managers=2)
    assert scores["precision_at_capacity"] == pytest.approx(2 / 3)
    assert (scores["tasks_opened"], scores["tasks_judged"], scores["tasks_right"]) == (7, 3, 2)
    assert scores["tasks_per_manager_week"] == pytest.approx(7 / 2 / 10)
    assert scores["leaving_reached"] == pytest.approx(1 / 3)  # M1 of M1, M4 and M7
    assert scores["defaulters_reviewed_before_default"] == 0.0
    assert (scores["offers_opened"], scores["offers_to_troubled"]) == (4, 2)
    by_type = scores["by_type"]
    assert isinstance(by_type, dict)
    assert by_type["win_back"] == {"opened": 1, "judged": 1, "right": 0, "precision": 0.0}
    assert by_type["pos_loan_preapproval"]["precision"] is None
    empty = outreach_scores([], labels, (d(0), d(69)), managers=2)
    assert empty["precision_at_capacity"] is None
    assert empty["leaving_reached"] == 0.0


def test_limit_changes_count_rises_and_cuts_of_merchants_with_a_limit() -> None:
    assert limit_changes({"A": [100, 105, 120, 120]}) == {
        "share_over": pytest.approx(1 / 3),
        "day_pairs": 3,
        "rises_over": 1,
        "cuts_over": 0,
    }
    changes = limit_changes({"A": [0, 0, 10, 0], "B": [0, 0, 0]})
    assert (changes["day_pairs"], changes["rises_over"], changes["cuts_over"]) == (2, 1, 1)
    assert limit_changes({"A": [5]})["share_over"] is None
    assert limit_changes({"A": [100, 150]}, threshold=0.6)["share_over"] == 0.0


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
    # The action stage ran: the managers' queues opened tasks within their daily capacity.
    outreach = report["outreach"]
    assert outreach["tasks_opened"] > 0
    assert 0.0 <= outreach["precision_at_capacity"] <= 1.0
    per_day = outreach["capacity_per_manager_day"]
    assert outreach["tasks_per_manager_week"] <= per_day * 7
    assert set(outreach["by_type"]) <= {t.value for t in TaskType}
    limits = report["limits"]
    assert limits["merchants_with_a_limit"] > 0
    assert 0.0 <= limits["share_daily_changes_over_10pct"] <= 1.0
    assert limits["rises_over_10pct"] + limits["cuts_over_10pct"] <= limits["day_pairs"]
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
