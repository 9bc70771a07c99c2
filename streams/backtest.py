"""Backtest: history files in process (no broker) -> features and detector scores as of a date."""

from __future__ import annotations

import csv
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from detectors.features import BusinessCalendar, FeatureParams
from detectors.pipeline import DayScores, MonitorModels, MonitorParams
from streams.history import AccountColumns, History, PosColumns, run, sample_or
from streams.history_files import BadRow, Loaded, read_accounts, read_pos

log = logging.getLogger(__name__)
#: Below this many events a backtest runs in one process: forking would cost more than it saves.
PARALLEL_FROM_EVENTS = 20_000
#: Feature processes at most by default. An estimate, measured on 2 CPUs only: the detectors (in
#: the main process) take about a quarter of the work, so beyond three feature processes they
#: would set the pace.
MAX_AUTO_JOBS = 3
SCORE_COLUMNS = (
    "merchant_id",
    "as_of",
    "p_inactive",
    "p_inactive_decided_by",
    "dormancy_state",
    "dormancy_score",
    "days_since_last_txn",
    "churn_score",
    "churn_decided_by",
    "credit_score",
    "credit_decided_by",
    "loan_category",
    "lifecycle_stage",
)


@dataclass(slots=True)
class BacktestReport:
    rows_read: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    events: int = 0
    events_after_as_of: int = 0
    merchants_scored: int = 0
    merchants_without_history: int = 0
    load_seconds: float = 0.0
    run_seconds: float = 0.0
    merchant_days: int = 0
    feature_days: int = 0
    jobs: int = 1

    @property
    def events_per_s(self) -> float:
        return self.events / max(self.load_seconds + self.run_seconds, 1e-9)


def _until(pos: PosColumns, as_of: int) -> PosColumns:
    keep = pos.day <= as_of
    idx = np.flatnonzero(keep).tolist()
    return PosColumns(
        pos.merchant[keep],
        pos.day[keep],
        pos.kind[keep],
        pos.amount_fen[keep],
        [pos.card[i] for i in idx],
        [pos.txn[i] for i in idx],
    )


def _acct_until(acct: AccountColumns, as_of: int) -> AccountColumns:
    keep = acct.day <= as_of
    idx = np.flatnonzero(keep).tolist()
    return AccountColumns(
        acct.merchant[keep],
        acct.day[keep],
        acct.code[keep],
        acct.amount_fen[keep],
        acct.balance_fen[keep],
        acct.time_us[keep],
        [acct.txn_id[i] for i in idx],
        acct.lender[keep],
    )


def auto_jobs(events: int) -> int:
    """Feature processes for a backtest of ``events`` events: one per CPU (at most
    ``MAX_AUTO_JOBS``), or 1 for a small history."""
    if events < PARALLEL_FROM_EVENTS:
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_JOBS))


def backtest(
    pos_files: list[Path],
    account_files: list[Path],
    as_of: date,
    params: MonitorParams,
    feature_params: FeatureParams | None = None,
    jobs: int | None = None,
) -> tuple[dict[str, tuple[DayScores, int]], BacktestReport]:
    """Scores as of the end of ``as_of`` per merchant (with its days since the last sale).

    Features are computed only on the label-sample days (so the shared models learn from the
    history itself, with labels resolved H days later) and on the as-of day. ``jobs``: feature
    processes (``streams.history.run``; the scores do not depend on it), default
    ``auto_jobs``.
    """
    fp = feature_params or FeatureParams(auto_close_features=False)
    report = BacktestReport()
    began = time.perf_counter()
    loaded = Loaded()
    pos = read_pos(pos_files, fp, loaded)
    acct = read_accounts(account_files, fp, loaded) if account_files else None
    report.rows_read, report.bad_rows = loaded.read, loaded.bad
    as_of_day = BusinessCalendar.day_of_date(as_of)
    total = len(pos.day) + (len(acct.day) if acct else 0)
    pos = _until(pos, as_of_day)
    acct = _acct_until(acct, as_of_day) if acct else None
    report.events = len(pos.day) + (len(acct.day) if acct else 0)
    report.events_after_as_of = total - report.events
    ids = list(loaded.merchants)
    history = History(ids, pos, acct)
    report.load_seconds = time.perf_counter() - began
    report.jobs = auto_jobs(report.events) if jobs is None else jobs
    result = run(
        history,
        fp,
        params,
        MonitorModels(params.horizon_days),
        through_day=as_of_day,
        features_on=sample_or(as_of_day, params),
        jobs=report.jobs,
        keep_feature_states=False,
    )
    report.run_seconds = result.seconds
    report.merchant_days, report.feature_days = result.merchant_days, result.feature_days
    out: dict[str, tuple[DayScores, int]] = {}
    for m, scores in result.scores.items():
        if scores.day == as_of_day:
            out[ids[m]] = (scores, result.detector_states[m].dormancy.last_silence_days)
    report.merchants_scored = len(out)
    report.merchants_without_history = len(ids) - len(out)
    return out, report


def write_scores(scores: dict[str, tuple[DayScores, int]], as_of: date, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(SCORE_COLUMNS)
        for mid in sorted(scores):
            s, silence = scores[mid]
            writer.writerow(
                [
                    mid,
                    as_of.isoformat(),
                    f"{s.p_inactive:.6f}",
                    s.inactive_decided_by,
                    s.dormancy_state.label,
                    f"{s.dormancy_score:.6f}",
                    silence,
                    f"{s.churn_score:.6f}",
                    s.churn_decided_by,
                    f"{s.credit_score:.6f}",
                    s.credit_decided_by,
                    s.loan_category.value,
                    s.lifecycle_stage.value,
                ]
            )


def write_bad_rows(bad: list[BadRow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["file", "line", "reason", "detail"])
        for b in bad:
            writer.writerow([b.file, b.line, b.reason, b.detail])
