"""The backtest end to end on a minimal CSV (with bad rows), and p_inactive against recency."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from detectors.features import BusinessCalendar
from detectors.pipeline import MonitorParams
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
    from streams.history import _millis, days_of_millis

    days = days_of_millis(_millis(table.column("event_time")), FeatureParams())
    window = (days > start) & (days <= start + horizon_days)
    active_after = set(np.asarray(table.column("merchant_id"))[window].tolist())
    ids = sorted(scores)
    labels = np.array([m not in active_after for m in ids])
    p = np.array([scores[m][0].p_inactive for m in ids])
    recency = np.array([scores[m][1] for m in ids], dtype=float)
    return _auc(p, labels), _auc(recency, labels), len(ids)


@pytest.mark.xfail(
    reason="not yet reached: p_inactive beats recency on as-of days 45 (the Spring Festival, "
    "0.8539 vs 0.8536) and 65 (0.975 vs 0.970) of this simulation but loses on day 55 "
    "(0.849 vs 0.856), as on some dates of other histories (docs/detectors.md)",
    strict=False,
)
def test_p_inactive_beats_recency(tmp_path: Path) -> None:
    from streams.sim import Scenario, simulate

    simulate(Scenario.default().resized(merchants=400, days=100), 3).write(tmp_path / "sim")
    start = date(2026, 1, 5)
    for offset in (45, 55, 65):
        ours, recency, n = p_inactive_aucs(tmp_path / "sim", start + timedelta(days=offset))
        assert n > 300
        assert ours > recency, (offset, ours, recency)
