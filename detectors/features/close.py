"""Closing a merchant-day: finalize it in day order, emit its exact totals and its features."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from detectors.features.codes import ACCOUNT_CODE_COUNT, CODE_IS_DEBIT, POS_SETTLEMENT
from detectors.features.compute import compute_features
from detectors.features.errors import CloseOrderError
from detectors.features.params import (
    ACCOUNT_DAYS,
    MAX_WINDOW_DAYS,
    RING_MASK,
    BusinessCalendar,
    FeatureParams,
)
from detectors.features.state import (
    BOOKING_CODE_BITS,
    EOD_RING_MASK,
    GAP_EDGES,
    HLL_PAIR_BITS,
    MerchantState,
    advance_ring,
    day_bookings,
)


class DailyTotals(NamedTuple):
    """Exact totals of one merchant-day, named like the ``merchant_daily`` columns."""

    pos_approved_count: int = 0
    pos_approved_amount_fen: int = 0
    pos_declined_count: int = 0
    pos_refund_count: int = 0
    pos_refund_amount_fen: int = 0
    pos_chargeback_count: int = 0
    pos_chargeback_amount_fen: int = 0
    pos_reversal_count: int = 0
    acct_credit_count: int = 0
    acct_credit_amount_fen: int = 0
    acct_debit_count: int = 0
    acct_debit_amount_fen: int = 0
    acct_settlement_amount_fen: int = 0
    acct_end_balance_fen: int = 0

    @property
    def event_count(self) -> int:
        """Applied events of the day (every event adds one to exactly one count)."""
        return (
            self.pos_approved_count
            + self.pos_declined_count
            + self.pos_refund_count
            + self.pos_chargeback_count
            + self.pos_reversal_count
            + self.acct_credit_count
            + self.acct_debit_count
        )


@dataclass(frozen=True, slots=True)
class DaySnapshot:
    """A closed merchant-day: its exact totals and the features as of its end.

    ``features`` is empty when the day was closed with ``with_features=False``.
    """

    merchant_id: str
    day: int
    totals: DailyTotals
    features: dict[str, float]

    @property
    def business_date(self) -> date:
        """The calendar date of the closed day in the business time zone."""
        return BusinessCalendar.date_of_day(self.day)

    def daily_row_fields(self) -> dict[str, object]:
        """Fields of ``schemas.warehouse.MerchantDailyRow`` except ``version``.

        >>> snap = DaySnapshot("m-1", 20_000, DailyTotals(pos_approved_count=2), {})
        >>> fields = snap.daily_row_fields()
        >>> fields["day"], fields["pos_approved_count"]
        (datetime.date(2024, 10, 4), 2)
        """
        return {"merchant_id": self.merchant_id, "day": self.business_date, **self.totals._asdict()}


def add_gap(hist: list[int], gap_days: int, decay_total: int) -> None:
    """Count one gap between active days; halve every bin once the total exceeds the cap."""
    hist[bisect_right(GAP_EDGES, gap_days) - 1] += 1
    if sum(hist) > decay_total:
        hist[:] = [count // 2 for count in hist]


def _account_totals(bookings: list[tuple[int, int, int]]) -> tuple[int, int, int, int, int]:
    credit_count = credit_amount = debit_count = debit_amount = settlement = 0
    for code, count, amount in bookings:
        if CODE_IS_DEBIT[code]:
            debit_count += count
            debit_amount += amount
        else:
            credit_count += count
            credit_amount += amount
            if code == POS_SETTLEMENT:
                settlement += amount
    return credit_count, credit_amount, debit_count, debit_amount, settlement


def _totals(state: MerchantState, day: int, end_balance_fen: int) -> DailyTotals:
    slot = day & RING_MASK
    in_ring = state.max_day - RING_MASK <= day <= state.max_day
    pos = (
        (
            state.approved_count[slot],
            state.approved_amount[slot],
            state.declined_count[slot],
            state.refund_count[slot],
            state.refund_amount[slot],
            state.chargeback_count[slot],
            state.chargeback_amount[slot],
            state.reversal_count[slot],
        )
        if in_ring
        else (0,) * 8
    )
    return DailyTotals(*pos, *_account_totals(day_bookings(state, day)), end_balance_fen)


def day_totals(state: MerchantState, day: int) -> DailyTotals:
    """Totals so far of an open day, or of a closed day of the last 29 (for incremental rows).

    >>> state = MerchantState("m-1", 20_000)
    >>> day_totals(state, 20_000).pos_approved_count
    0
    """
    closed = state.closed_through
    if closed >= 0 and day <= closed:
        if day <= closed - ACCOUNT_DAYS + 1:
            msg = f"day {day} is older than the kept {ACCOUNT_DAYS - 1} closed days"
            raise ValueError(msg)
        known = state.eod_known_from
        balance = state.eod_ring[day & EOD_RING_MASK] if 0 <= known <= day else 0
        return _totals(state, day, balance)
    latest = [d for d in state.eod_open if d <= day]
    if latest:
        balance = state.eod_open[max(latest)][2]
    elif state.eod_known_from >= 0:
        balance = state.eod_ring[closed & EOD_RING_MASK]
    else:
        balance = 0
    return _totals(state, day, balance)


def _fold_distinct_cards(state: MerchantState, day: int) -> None:
    """Merge a closing day's card registers into the sliding-window frontier."""
    registers = state.hll_open.pop(day, None)
    if not registers:
        return
    frontier = state.hll_frontier
    pair = day << 6
    for register, rank in registers.items():
        packed = frontier[register]
        # Older pairs with a rank no higher than today's can never be a window maximum again.
        while packed and (packed & 63) <= rank:
            packed >>= HLL_PAIR_BITS
        frontier[register] = (packed << HLL_PAIR_BITS) | pair | rank


def _finalize_balance(state: MerchantState, day: int) -> int:
    last_booking = state.eod_open.pop(day, None)
    if last_booking is not None:
        balance = last_booking[2]
        if state.eod_known_from < 0:
            state.eod_known_from = day
    elif state.eod_known_from >= 0:
        balance = state.eod_ring[(day - 1) & EOD_RING_MASK]  # carried over a day without bookings
    else:
        balance = 0
    state.eod_ring[day & EOD_RING_MASK] = balance
    return balance


def _prune(state: MerchantState, day: int, params: FeatureParams) -> None:
    """Drop what no later close can read (the next one reads back from ``day + 1``)."""
    bookings = state.bookings
    if bookings:
        base = (day - ACCOUNT_DAYS + 1) << BOOKING_CODE_BITS
        for code in range(ACCOUNT_CODE_COUNT):
            bookings.pop(base | code, None)
    horizon = day - MAX_WINDOW_DAYS + 1
    events = state.lender_events
    while events and events[0][0] <= horizon:
        del events[0]
    for days in state.regular_days:
        while days and days[0] <= horizon:
            del days[0]
    seen = state.seen
    if seen:
        # Ids of closed days, or of days beyond the lateness horizon, can only arrive late now.
        limit = max(day, state.max_day - params.lateness_days - 1)
        if min(seen.values()) <= limit:
            state.seen = {h: d for h, d in seen.items() if d > limit}


def close_day(
    state: MerchantState, day: int, params: FeatureParams, *, with_features: bool = True
) -> tuple[MerchantState, DaySnapshot]:
    """Close the merchant's next day: finalize it and return its totals and features.

    Days close one at a time in order (``day`` must be ``state.next_day_to_close``); a day with
    no events closes like any other, so silence shows (``days_since_last_txn`` grows). Events
    for a closed day are late from then on. ``with_features=False`` skips the feature dict
    (a backtest only needs features on its as-of day).

    Examples
    --------
    >>> from detectors.features import card_hash, step_pos
    >>> params = FeatureParams()
    >>> state = MerchantState("m-1", 20_000)
    >>> _ = step_pos(state, 20_000, 0, 5000, card_hash("tok_aaaaaaaa"), 1, params)
    >>> state, snap = close_day(state, 20_000, params)
    >>> snap.totals.pos_approved_amount_fen, snap.features["days_since_last_txn"]
    (5000, 0.0)
    >>> state, snap = close_day(state, 20_001, params)  # a silent day
    >>> snap.features["days_since_last_txn"]
    1.0
    """
    expected = state.next_day_to_close
    if day != expected:
        msg = f"merchant {state.merchant_id}: next day to close is {expected}, not {day}"
        raise CloseOrderError(msg)
    advance_ring(state, day)
    _fold_distinct_cards(state, day)
    if state.approved_count[day & RING_MASK]:
        if state.last_active_day >= 0:
            add_gap(state.gap_hist, day - state.last_active_day, params.gap_decay_total)
        state.last_active_day = day
    totals = _totals(state, day, _finalize_balance(state, day))
    if totals.acct_credit_count or totals.acct_debit_count:
        state.last_acct_day = day
    for i, days in enumerate(state.regular_days):
        if day in days:
            state.regular_last[i] = day
    state.closed_through = day
    features = compute_features(state, day, params) if with_features else {}
    _prune(state, day, params)
    state.closed_blob = None  # the closed part changed: encode it afresh
    return state, DaySnapshot(state.merchant_id, day, totals, features)


def days_to_close(state: MerchantState, through_day: int) -> range:
    """The merchant's days still open up to ``through_day``, in the order they must close."""
    return range(state.next_day_to_close, through_day + 1)


def close_through(
    state: MerchantState, through_day: int, params: FeatureParams, *, with_features: bool = True
) -> tuple[MerchantState, list[DaySnapshot]]:
    """Close every open day up to ``through_day`` (none if already closed): idempotent.

    >>> params = FeatureParams()
    >>> state, snaps = close_through(MerchantState("m-1", 20_000), 20_002, params)
    >>> [s.day for s in snaps], state.next_day_to_close
    ([20000, 20001, 20002], 20003)
    """
    snapshots = []
    for day in days_to_close(state, through_day):
        state, snapshot = close_day(state, day, params, with_features=with_features)
        snapshots.append(snapshot)
    return state, snapshots
