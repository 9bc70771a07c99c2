"""The backtest end to end on a minimal CSV (with bad rows), and p_inactive against recency."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from detectors.features import BusinessCalendar, DailyTotals, DaySnapshot
from detectors.pipeline import DayScores, MonitorModels, MonitorParams, on_day_closed
from detectors.state import _SHUTDOWN, DetectorState
from streams.backtest import backtest
from streams.commands.backtest import command

MINIMAL = """merchant_id,event_time,amount
M1,20260105,12.50
M1,2026-01-20T10:00:00+08:00,3.10
M2,20260301,100
M3,2026-02-10 09:30:00,7.25
,20260301,1.00
M4,notadate,1.00
M5,20260301,1.005
M6,20260301
M7,20260420,5.00
"""


def test_minimal_csv_end_to_end(tmp_path: Path) -> None:
    pos = tmp_path / "pos.csv"
    pos.write_text(MINIMAL, encoding="utf-8")
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(
        command, ["--pos", str(pos), "--as-of", "20260331", "--out", str(out)], obj=None
    )
    assert result.exit_code == 0, result.output
    assert "bad rows 4" in result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["merchant_id"] for r in rows] == ["M1", "M2", "M3"]  # M7 starts after as-of
    for row in rows:
        assert 0.0 <= float(row["p_inactive"]) <= 1.0
        assert row["dormancy_state"] in {"active", "quiet", "dormant", "lost"}
        assert row["lifecycle_stage"] in {"acquisition", "growth", "maturity", "decline", "churn"}
        assert {"churn_score", "credit_score"} <= row.keys()
    rejects = list(csv.DictReader((tmp_path / "scores.rejects.csv").open(encoding="utf-8")))
    assert [int(r["line"]) for r in rejects] == [6, 7, 8, 9]
    assert rows[0]["days_since_last_txn"] == str((date(2026, 3, 31) - date(2026, 1, 20)).days)


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half."""
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def p_inactive_aucs(sim_dir: Path, as_of: date, horizon_days: int = 30) -> tuple[float, float, int]:
    """(AUC of p_inactive, AUC of days since the last sale, merchants) at one as-of date."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = sim_dir / "pos.transactions.v1.parquet"
    scores, _ = backtest([path], [], as_of, MonitorParams(label_stride_days=14))
    table = pq.read_table(path, columns=["merchant_id", "event_time", "kind"])
    table = table.filter(pc.equal(table.column("kind"), "approved"))
    start = BusinessCalendar.day_of_date(as_of)
    from detectors.features import FeatureParams
    from streams.history import days_of_millis, millis_of

    days = days_of_millis(millis_of(table.column("event_time")), FeatureParams())
    window = (days > start) & (days <= start + horizon_days)
    active_after = set(np.asarray(table.column("merchant_id"))[window].tolist())
    ids = sorted(scores)
    labels = np.array([m not in active_after for m in ids])
    p = np.array([scores[m][0].p_inactive for m in ids])
    recency = np.array([scores[m][1] for m in ids], dtype=float)
    return _auc(p, labels), _auc(recency, labels), len(ids)


def test_p_inactive_beats_recency(tmp_path: Path) -> None:
    from streams.sim import Scenario, simulate

    simulate(Scenario.default().resized(merchants=400, days=100), 3).write(tmp_path / "sim")
    start = date(2026, 1, 5)
    for offset in (45, 55, 65):
        ours, recency, n = p_inactive_aucs(tmp_path / "sim", start + timedelta(days=offset))
        assert n > 300
        assert ours > recency, (offset, ours, recency)


#: New Year's Day 2026 (the Spring Festival) as a business day.
NEW_YEAR = BusinessCalendar.day_of_date(date(2026, 2, 17))


def _seller(
    sold: set[int], through: int, params: MonitorParams, features_on: set[int] | None = None
) -> tuple[DetectorState, DayScores]:
    """A daily seller's days from 40 days before New Year through ``through``, closed with
    features on ``features_on`` (every day when None) and on the last day."""
    state, models, scores, last = None, MonitorModels(), None, NEW_YEAR - 40
    for day in range(NEW_YEAR - 40, through + 1):
        last = day if day in sold else last
        x: dict[str, float] = {}
        if features_on is None or day in features_on or day == through:
            x = {
                "ever_active": 1.0,
                "days_since_last_txn": float(day - last),
                "gap_q50_days": 1.0,
                "gap_q95_days": 1.0,
                "gap_count": 30.0,
                "active_days_90d": 30.0,
                "history_days": float(day - NEW_YEAR + 41),
                "weekday_of_day": float(day % 7),
            }
        amount = 10_000 if day in sold else 0
        totals = DailyTotals(pos_approved_count=int(amount > 0), pos_approved_amount_fen=amount)
        snap = DaySnapshot("M1", day, totals, x)
        state, _, scores = on_day_closed(state, snap, "catering", models, params)
    assert state is not None
    assert scores is not None
    return state, scores


def test_a_stray_sale_does_not_end_a_festival_shutdown() -> None:
    # Open until two days before New Year, shut for 9 days, one stray sale on day 8, silent since.
    sold = set(range(NEW_YEAR - 40, NEW_YEAR - 1)) | {NEW_YEAR + 8}
    params, without = MonitorParams(), MonitorParams(shutdown_stray_sale_days=0)
    shut = [_seller(sold, NEW_YEAR + k, params)[1].p_inactive for k in (12, 16, 24)]
    left = _seller(sold, NEW_YEAR + 12, without)[1].p_inactive
    assert shut[0] < left  # the shutdown goes on: less likely gone than a fresh stop
    assert shut == sorted(shut)  # and a longer silence is still likelier inactivity
    assert all(0.0 <= p <= 1.0 for p in shut)
    state = _seller(sold, NEW_YEAR + 12, params)[0]
    again = DetectorState.decode(state.encode())  # the worker's table round trip
    assert (again.shutdown_day, again.shutdown_days, again.shutdown_sale_days) == (
        NEW_YEAR - 1,
        9,
        1,
    )
    older = DetectorState.decode(state.encode()[: -_SHUTDOWN.size])  # written before it existed
    assert (older.shutdown_day, older.sale_fen) == (-1, state.sale_fen)
    # Once the shop has traded again for a few days, a new silence is judged afresh.
    reopened = sold | set(range(NEW_YEAR + 9, NEW_YEAR + 12))
    assert _seller(reopened, NEW_YEAR + 15, params)[1].p_inactive > shut[0]


def test_days_closed_without_features_remember_closures() -> None:
    # A 12-day festival closure, reopened on day 9: the backtest closes most days without
    # features, and must remember the closure as a run with features every day does.
    sold = set(range(NEW_YEAR - 40, NEW_YEAR - 3)) | set(range(NEW_YEAR + 9, NEW_YEAR + 12))
    params = MonitorParams()
    full, full_scores = _seller(sold, NEW_YEAR + 14, params)
    fast, fast_scores = _seller(sold, NEW_YEAR + 14, params, features_on=set())
    assert full.dormancy.closures == fast.dormancy.closures == [(NEW_YEAR - 3, 12)]
    assert full_scores.p_inactive == fast_scores.p_inactive
