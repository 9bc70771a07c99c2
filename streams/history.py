"""Offline runner: history as plain-value columns; features and detectors run day-major."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from detectors.features import (
    DaySnapshot,
    FeatureParams,
    MerchantState,
    account_code,
    card_hash,
    close_day,
    lender_id,
    pos_txn_hash,
    step_account,
    step_pos,
)
from detectors.features.codes import POS_KIND_CODES, account_txn_hash  # noqa: F401
from detectors.pipeline import (
    DayScores,
    MonitorModels,
    MonitorParams,
    is_sample_day,
    on_day_closed,
    on_loan_event,
    on_profile,
)
from detectors.state import DetectorState
from schemas import topics
from schemas.dashboard_rows import ModelMetricRow
from schemas.inputs import AccountCategory, Direction, PosKind
from schemas.outputs import Alert
from streams.feature_jobs import Feed, fan_out

log = logging.getLogger(__name__)
IntArray = npt.NDArray[np.int64]
_KIND_CODE = {kind.value: code for kind, code in POS_KIND_CODES.items()}


@dataclass(slots=True)
class PosColumns:
    """POS events as plain values, one entry per event (any order)."""

    merchant: IntArray
    day: IntArray
    kind: IntArray
    amount_fen: IntArray
    card: list[int]
    txn: list[int]


@dataclass(slots=True)
class AccountColumns:
    merchant: IntArray
    day: IntArray
    code: IntArray
    amount_fen: IntArray
    balance_fen: IntArray
    time_us: IntArray
    txn_id: list[str]
    lender: IntArray


@dataclass(slots=True)
class History:
    """Everything a run needs: merchant ids, their events, loan events and profile facts."""

    merchant_ids: list[str]
    pos: PosColumns
    account: AccountColumns | None = None
    #: (merchant index, day, kind, days past due, amount fen) of loan events.
    loans: list[tuple[int, int, str, int, int]] = field(default_factory=list)
    segments: dict[int, str] = field(default_factory=dict)
    #: (merchant index, day, outstanding fen) of profile updates.
    exposures: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def events(self) -> int:
        return len(self.pos.day) + (len(self.account.day) if self.account else 0)


def days_of_millis(millis: IntArray, params: FeatureParams) -> IntArray:
    """Business days of UTC instants (ms), exact through zoneinfo, vectorised per UTC day."""
    seconds = millis // 1000
    utc_days = seconds // 86_400
    unique = np.unique(utc_days)
    cal = params.calendar
    offsets = np.array([cal.offset_seconds(int(d) * 86_400 + 43_200) for d in unique], np.int64)
    varying = [
        int(d)
        for d in unique
        if cal.offset_seconds(int(d) * 86_400) != cal.offset_seconds(int(d) * 86_400 + 86_399)
    ]
    out = (seconds + offsets[np.searchsorted(unique, utc_days)]) // 86_400
    for d in varying:  # a DST switch day: resolve each instant exactly
        for i in np.flatnonzero(utc_days == d):
            out[i] = cal.day_of_epoch_seconds(int(seconds[i]))
    return out.astype(np.int64)


def _index(column: pa.ChunkedArray, ids: list[str]) -> IntArray:
    found = pc.index_in(column, value_set=pa.array(ids, pa.string()))
    return np.asarray(found.to_numpy(zero_copy_only=False), np.int64)


def millis_of(column: pa.ChunkedArray) -> IntArray:
    return np.asarray(
        pc.cast(column, pa.timestamp("ms", "UTC")).cast(pa.int64()).to_numpy(), np.int64
    )


def pos_columns(table: pa.Table, ids: list[str], params: FeatureParams) -> PosColumns:
    kinds = table.column("kind").to_pylist()
    approved = PosKind.APPROVED.value
    tokens = table.column("card_token").to_pylist()
    return PosColumns(
        merchant=_index(table.column("merchant_id"), ids),
        day=days_of_millis(millis_of(table.column("event_time")), params),
        kind=np.array([_KIND_CODE[k] for k in kinds], np.int64),
        amount_fen=np.asarray(table.column("amount_fen").to_numpy(), np.int64),
        card=[card_hash(t) if k == approved else 0 for k, t in zip(kinds, tokens, strict=True)],
        txn=[pos_txn_hash(t) for t in table.column("txn_id").to_pylist()],
    )


def account_columns(table: pa.Table, ids: list[str], params: FeatureParams) -> AccountColumns:
    cats = table.column("category").to_pylist()
    dirs = table.column("direction").to_pylist()
    banks = table.column("counterparty_bank_code").to_pylist()
    codes = [
        account_code(AccountCategory(c), Direction(d), b)
        for c, d, b in zip(cats, dirs, banks, strict=True)
    ]
    millis = millis_of(table.column("event_time"))
    lender_code = account_code(AccountCategory.LOAN_REPAYMENT_OTHER, Direction.DEBIT)
    return AccountColumns(
        merchant=_index(table.column("merchant_id"), ids),
        day=days_of_millis(millis, params),
        code=np.array(codes, np.int64),
        amount_fen=np.asarray(table.column("amount_fen").to_numpy(), np.int64),
        balance_fen=np.asarray(table.column("balance_after_fen").to_numpy(), np.int64),
        time_us=millis * 1000,
        txn_id=table.column("txn_id").to_pylist(),
        lender=np.array(
            [lender_id(b) if c == lender_code else 0 for c, b in zip(codes, banks, strict=True)],
            np.int64,
        ),
    )


def from_simulation(simulation: object, params: FeatureParams) -> History:
    """A simulation's topics as a History (``simulation``: streams.sim.Simulation)."""
    sim = simulation
    ids: list[str] = list(sim.merchant_ids)  # type: ignore[attr-defined]
    history = History(
        ids,
        pos_columns(sim.table(topics.POS_TRANSACTIONS), ids, params),  # type: ignore[attr-defined]
        account_columns(sim.table(topics.ACCOUNT_TRANSACTIONS), ids, params),  # type: ignore[attr-defined]
    )
    loans = sim.table(topics.LOAN_EVENTS)  # type: ignore[attr-defined]
    if loans.num_rows:
        days = days_of_millis(millis_of(loans.column("event_time")), params)
        who = _index(loans.column("merchant_id"), ids)
        for m, d, k, dpd, amt in zip(
            who.tolist(),
            days.tolist(),
            loans.column("kind").to_pylist(),
            loans.column("days_past_due").to_pylist(),
            loans.column("amount_fen").to_pylist(),
            strict=True,
        ):
            history.loans.append((m, d, k, dpd, amt))
    profiles = sim.table(topics.MERCHANT_PROFILES)  # type: ignore[attr-defined]
    days = days_of_millis(millis_of(profiles.column("updated_at")), params)
    who = _index(profiles.column("merchant_id"), ids)
    for m, d, ind, out in zip(
        who.tolist(),
        days.tolist(),
        profiles.column("industry").to_pylist(),
        profiles.column("pos_loan_outstanding_fen").to_pylist(),
        strict=True,
    ):
        history.segments[m] = ind
        history.exposures.append((m, d, out))
    return history


@dataclass(slots=True)
class RunResult:
    """What a run produced: the last scores per merchant, alerts, model rows, timings."""

    scores: dict[int, DayScores] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    metric_rows: list[ModelMetricRow] = field(default_factory=list)
    feature_states: dict[int, MerchantState] = field(default_factory=dict)
    detector_states: dict[int, DetectorState] = field(default_factory=dict)
    merchant_days: int = 0
    feature_days: int = 0
    seconds: float = 0.0


def _by_day(
    days: IntArray, merchants: IntArray, only: npt.NDArray[np.bool_] | None = None
) -> tuple[IntArray, IntArray, IntArray]:
    """Stable order by day (of the events of the merchants in ``only``, default all), and
    each day's [start, end) in that order."""
    order = np.argsort(days, kind="stable")
    if only is not None:
        order = order[only[merchants[order]]]
    ordered = days[order]
    unique, starts = np.unique(ordered, return_index=True)
    ends = np.append(starts[1:], len(ordered))
    return order, unique, np.stack([starts, ends], axis=1)


def first_seen_order(history: History) -> IntArray:
    """Merchant indices in the order a run first meets them (day, then POS before account
    events, then file order): the order in which every day's merchants close."""
    n = len(history.merchant_ids)
    big = np.iinfo(np.int64).max
    key = np.full(n, big, np.int64)
    span = history.events + 1
    for source, cols in enumerate((history.pos, history.account)):
        if cols is None or not len(cols.day):
            continue
        order = np.argsort(cols.day, kind="stable")
        who = cols.merchant[order]
        _, first = np.unique(who, return_index=True)
        # (day, source, position in the day-ordered events) packed into one sortable key.
        packed = (cols.day[order][first] * 2 + source) * span + first
        np.minimum.at(key, who[first], packed)
    seen = np.flatnonzero(key < big)
    return seen[np.argsort(key[seen], kind="stable")]


def close_days(
    history: History,
    feature_params: FeatureParams,
    start: int,
    end: int,
    states: dict[int, MerchantState],
    *,
    features_on: Callable[[str, int], bool] | None = None,
    only: npt.NDArray[np.bool_] | None = None,
) -> Iterator[tuple[int, list[tuple[int, DaySnapshot]]]]:
    """The feature stage of a run: for each day from ``start`` to ``end``, apply the day's events
    (POS, then account) and close the day of every merchant met so far, yielding ``(day,
    [(merchant index, snapshot)])`` in first-seen order. ``only`` (a mask over merchant indices)
    keeps one share of the merchants; ``states`` receives the feature states."""
    pos, acct = history.pos, history.account
    p_order, p_days, p_spans = _by_day(pos.day, pos.merchant, only)
    a_order, a_days, a_spans = (
        _by_day(acct.day, acct.merchant, only) if acct is not None else (None, None, None)
    )
    ids = history.merchant_ids
    p_pos = np.searchsorted(p_days, np.arange(start, end + 1))
    a_pos = np.searchsorted(a_days, np.arange(start, end + 1)) if a_days is not None else None
    # Plain lists: indexing them is several times cheaper than numpy scalars in this loop.
    merchant_p = pos.merchant[p_order].tolist()
    kind_p = pos.kind[p_order].tolist()
    amount_p = pos.amount_fen[p_order].tolist()
    card_p = [pos.card[i] for i in p_order.tolist()]
    txn_p = [pos.txn[i] for i in p_order.tolist()]
    fp = feature_params
    for k, day in enumerate(range(start, end + 1)):
        i = int(p_pos[k])
        if i < len(p_days) and p_days[i] == day:
            s, e = p_spans[i]
            for j in range(int(s), int(e)):
                m = merchant_p[j]
                st = states.get(m)
                if st is None:
                    st = states[m] = MerchantState(ids[m], day)
                step_pos(st, day, kind_p[j], amount_p[j], card_p[j], txn_p[j], fp)
        if acct is not None and a_pos is not None and a_days is not None and a_spans is not None:
            i = int(a_pos[k])
            if i < len(a_days) and a_days[i] == day:
                s, e = a_spans[i]
                for j in a_order[int(s) : int(e)].tolist():
                    m = int(acct.merchant[j])
                    st = states.get(m)
                    if st is None:
                        st = states[m] = MerchantState(ids[m], day)
                    step_account(
                        st,
                        day,
                        int(acct.code[j]),
                        int(acct.amount_fen[j]),
                        int(acct.balance_fen[j]),
                        int(acct.time_us[j]),
                        acct.txn_id[j],
                        int(acct.lender[j]),
                        fp,
                    )
        closed = []
        for m, st in states.items():
            with_features = features_on is None or features_on(ids[m], day)
            st, snap = close_day(st, day, fp, with_features=with_features)
            closed.append((m, snap))
        yield day, closed


def run(
    history: History,
    feature_params: FeatureParams,
    params: MonitorParams,
    models: MonitorModels,
    *,
    through_day: int | None = None,
    features_on: Callable[[str, int], bool] | None = None,
    on_scores: Callable[[DayScores], None] | None = None,
    on_snapshot: Callable[[DaySnapshot], None] | None = None,
    on_day: Callable[[DaySnapshot, DetectorState, list[Alert], DayScores | None], None]
    | None = None,
    jobs: int = 1,
    keep_feature_states: bool = True,
) -> RunResult:
    """Run features and detectors day-major (each day: events, loan events, then every known
    merchant's close), so the shared models learn in time order as they would live.

    ``features_on(merchant_id, day)`` says which merchant-days get a feature dict and scores
    (default: all); others close on totals only (the backtest's fast path). ``on_day`` sees
    each closed merchant-day after the detectors, as the worker's action stage does.
    ``jobs`` > 1 computes the features in that many forked processes, each for a share of
    the merchants, while this process runs the detectors over their snapshots in the same
    order as with one job (``streams.feature_jobs``): the result is the same.
    ``keep_feature_states=False`` leaves ``RunResult.feature_states`` empty when ``jobs`` > 1
    (bringing them back from the processes costs time a caller that needs only scores saves).
    """
    began = time.perf_counter()
    result = RunResult()
    pos, acct = history.pos, history.account
    first = [int(pos.day.min())] if len(pos.day) else []
    if acct is not None and len(acct.day):
        first.append(int(acct.day.min()))
    if not first:
        return result
    last = max(
        int(pos.day.max()) if len(pos.day) else 0,
        int(acct.day.max()) if acct is not None and len(acct.day) else 0,
    )
    start, end = min(first), (last if through_day is None else through_day)
    ids = history.merchant_ids
    dstates = result.detector_states
    loans = sorted(history.loans, key=lambda e: e[1])
    exposures = sorted(history.exposures, key=lambda e: e[1])
    li = ei = 0

    def feed(only: npt.NDArray[np.bool_] | None, states: dict[int, MerchantState]) -> Feed:
        return close_days(
            history, feature_params, start, end, states, features_on=features_on, only=only
        )

    if jobs > 1:
        states = result.feature_states if keep_feature_states else None
        days: Feed = fan_out(feed, first_seen_order(history), ids, jobs, states)
    else:
        days = feed(None, result.feature_states)
    with closing(days):  # stops the feature processes however the loop ends
        for day, closed in days:
            while ei < len(exposures) and exposures[ei][1] <= day:
                m, _, out = exposures[ei]
                dstates[m] = on_profile(dstates.get(m), out)
                ei += 1
            while li < len(loans) and loans[li][1] <= day:
                m, d, kind, dpd, amt = loans[li]
                dstates[m] = on_loan_event(dstates.get(m), kind, d, dpd, amt, models, params)
                li += 1
            for m, snap in closed:
                if on_snapshot is not None:
                    on_snapshot(snap)
                result.merchant_days += 1
                result.feature_days += bool(snap.features)
                segment = history.segments.get(m, "unknown")
                ds, alerts, scores = on_day_closed(dstates.get(m), snap, segment, models, params)
                dstates[m] = ds
                if on_day is not None:
                    on_day(snap, ds, alerts, scores)
                if alerts:
                    result.alerts.extend(alerts)
                if scores is not None:
                    result.scores[m] = scores
                    if on_scores is not None:
                        on_scores(scores)
            result.metric_rows.extend(models.metric_rows(day))
    result.seconds = time.perf_counter() - began
    return result


def sample_or(as_of_day: int, params: MonitorParams) -> Callable[[str, int], bool]:
    """Features on the label-sample days (for the models to learn) and on the as-of day."""

    def pick(merchant_id: str, day: int) -> bool:
        return day == as_of_day or is_sample_day(merchant_id, day, params)

    return pick
