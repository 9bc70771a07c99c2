"""Backfill: history files in process -> the state a worker starts from, and the warehouse rows.

The history runner (``streams.history.run``) applies every event up to the through day, closes
every merchant's days through it (silent ones too) and runs the detectors on each closed day
with features, as the worker does. The states it ends with, and the shared models it learned,
are written for ``MONITOR_BOOTSTRAP_DIR`` (``streams.bootstrap``); the closed days, alerts and
model metrics go to the warehouse with the worker's keys and versions, so a replay replaces.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from detectors.actions import ActionParams, ActionState, on_day_closed
from detectors.features import BusinessCalendar, DaySnapshot, FeatureParams, encode_state
from detectors.outreach import SuccessModel
from detectors.pipeline import DayScores, MonitorModels, MonitorParams
from detectors.state import DetectorState
from schemas.outputs import Alert
from schemas.warehouse import AlertRow, PosLoanLimitRow
from streams.actions import limit_payload
from streams.backtest import _acct_until, _until
from streams.bootstrap import write_bootstrap
from streams.codec import encode
from streams.errors import InputFileError
from streams.history import AccountColumns, History, PosColumns, run
from streams.history_files import BadRow, Loaded, read_accounts, read_pos
from streams.processor import daily_row
from streams.progress import ProgressLine

log = logging.getLogger(__name__)
#: Warehouse rows per insert.
BATCH_ROWS = 100_000
Insert = Callable[[str, list[Mapping[str, Any]]], int]


@dataclass(slots=True)
class BackfillReport:
    rows_read: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    events: int = 0
    events_after_through: int = 0
    merchants: int = 0
    merchant_days: int = 0
    alerts: int = 0
    rows_written: int = 0
    load_seconds: float = 0.0
    run_seconds: float = 0.0
    write_seconds: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.load_seconds + self.run_seconds + self.write_seconds

    @property
    def events_per_s(self) -> float:
        """Events up to the through day per second, end to end (load, run, files, warehouse)."""
        return self.events / max(self.seconds, 1e-9)


class _Batches:
    """Buffers warehouse rows per table and inserts them ``BATCH_ROWS`` at a time."""

    def __init__(self, insert: Insert | None) -> None:
        self.insert = insert
        self.rows: dict[str, list[Mapping[str, Any]]] = {}
        self.written = 0
        self.seconds = 0.0

    def add(self, table: str, row: Mapping[str, Any]) -> None:
        if self.insert is None:
            return
        rows = self.rows.setdefault(table, [])
        rows.append(row)
        if len(rows) >= BATCH_ROWS:
            self.flush(table)

    def flush(self, table: str | None = None) -> None:
        if self.insert is None:
            return
        for name in [table] if table else list(self.rows):
            rows = self.rows.pop(name, [])
            if rows:
                began = time.perf_counter()
                self.written += self.insert(name, rows)
                self.seconds += time.perf_counter() - began


def _merchant_days(history: History, through_day: int) -> int:
    """Merchant-days the run will close: each merchant from its first event day through."""
    first = np.full(len(history.merchant_ids), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, history.pos.merchant, history.pos.day)
    if history.account is not None:
        np.minimum.at(first, history.account.merchant, history.account.day)
    seen = first[first <= through_day]
    return int((through_day - seen + 1).sum())


def _last_day(pos: PosColumns, account: AccountColumns | None) -> int:
    days = [int(pos.day.max())] if len(pos.day) else []
    if account is not None and len(account.day):
        days.append(int(account.day.max()))
    if not days:
        raise InputFileError("the history files hold no valid event")
    return max(days)


def backfill(
    pos_files: list[Path],
    account_files: list[Path],
    through: date,
    out: Path,
    feature_params: FeatureParams,
    *,
    insert: Insert | None = None,
    progress: bool = True,
    params: MonitorParams | None = None,
    action_params: ActionParams | None = None,
) -> BackfillReport:
    """Run the history through ``through`` and write ``out`` (and rows through ``insert``).

    Raises InputFileError when the files end before the through day: a worker skips the
    events of every day through it, so the files must hold them all.
    """
    fp = feature_params
    report = BackfillReport()
    began = time.perf_counter()
    loaded = Loaded()
    pos = read_pos(pos_files, fp, loaded)
    acct = read_accounts(account_files, fp, loaded) if account_files else None
    report.rows_read, report.bad_rows = loaded.read, loaded.bad
    through_day = BusinessCalendar.day_of_date(through)
    last = _last_day(pos, acct)
    if last < through_day:
        raise InputFileError(
            f"the history ends on {BusinessCalendar.date_of_day(last)}, before --through "
            f"{through}: a worker bootstrapped from it would skip the events of the days in "
            "between, which the files do not hold"
        )
    total = len(pos.day) + (len(acct.day) if acct is not None else 0)
    pos = _until(pos, through_day)
    acct = _acct_until(acct, through_day) if acct is not None else None
    report.events = len(pos.day) + (len(acct.day) if acct is not None else 0)
    report.events_after_through = total - report.events
    if report.events == 0:
        raise InputFileError(f"the history holds no event on or before {through}")
    history = History(list(loaded.merchants), pos, acct)
    report.load_seconds = time.perf_counter() - began

    rows = _Batches(insert)
    line = ProgressLine(
        "backfill:", "merchant-days", enabled=progress, total=_merchant_days(history, through_day)
    )

    def on_snapshot(snap: DaySnapshot) -> None:
        rows.add("merchant_daily", daily_row(snap.merchant_id, snap.day, snap.totals, closed=True))
        report.merchant_days += 1
        line.update(report.merchant_days)

    # The action stage runs too, so limits keep their turnover history (and their current
    # value) across the bootstrap; without profiles there is no account manager, so no tasks.
    action_params = action_params or ActionParams()
    success = SuccessModel.from_params(action_params.outreach)
    action_states: dict[str, ActionState] = {}
    limits: dict[str, bytes] = {}

    def on_day(
        snap: DaySnapshot, detector: DetectorState, alerts: list[Alert], scores: DayScores | None
    ) -> None:
        state, actions = on_day_closed(
            action_states.get(snap.merchant_id),
            snap,
            scores,
            alerts,
            detector,
            success,
            action_params,
        )
        action_states[snap.merchant_id] = state
        if actions.limit is not None:
            state.limit.version += 1
            limit = limit_payload(snap.merchant_id, state.limit.version, actions.limit)
            rows.add("pos_loan_limits", PosLoanLimitRow.from_limit(limit).model_dump())
            limits[snap.merchant_id] = encode(limit)

    models = MonitorModels()
    began = time.perf_counter()
    result = run(
        history,
        fp,
        params or MonitorParams(),
        models,
        through_day=through_day,
        on_snapshot=on_snapshot,
        on_day=on_day,
    )
    line.update(report.merchant_days, final=True)
    began_writes = time.perf_counter()
    inserting_during_run = rows.seconds
    for alert in result.alerts:
        rows.add("alerts", AlertRow.from_alert(alert).model_dump())
    for metric in result.metric_rows:
        rows.add("model_metrics", metric.model_dump())
    rows.flush()
    ids = history.merchant_ids
    states = [
        (
            ids[m],
            encode_state(state),
            result.detector_states[m].encode(),
            action_states.get(ids[m], ActionState()).encode(),
            limits.get(ids[m]),
        )
        for m, state in result.feature_states.items()
    ]
    report.merchants = len(states)
    report.alerts = len(result.alerts)
    report.rows_written = rows.written
    counts = {
        "events": report.events,
        "events_after_through": report.events_after_through,
        "pos_events": len(pos.day),
        "account_events": len(acct.day) if acct is not None else 0,
        "bad_rows": len(report.bad_rows),
        "merchant_days": report.merchant_days,
        "alerts": report.alerts,
        "limits": len(limits),
    }
    report.manifest = write_bootstrap(out, through, fp, states, models, counts)
    ended = time.perf_counter()
    report.run_seconds = began_writes - began - inserting_during_run
    report.write_seconds = ended - began_writes + inserting_during_run
    return report
