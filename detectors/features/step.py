"""The per-event step: lateness, de-duplication and O(1) bucket updates, in event time."""

from __future__ import annotations

from bisect import insort
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from detectors.features.close import close_through
from detectors.features.codes import (
    ACCOUNT_CODES,
    LOAN_REPAYMENT_OTHER,
    POS_KIND_CODES,
    REGULAR_INDEX,
    TRANSFER_OUT,
    TRANSFER_OUT_OTHER_BANK,
    account_txn_hash,
    card_hash,
    lender_id,
    pos_txn_hash,
)
from detectors.features.params import MAX_OPEN_DAYS, RING_MASK, FeatureParams
from detectors.features.state import (
    BOOKING_CODE_BITS,
    BOOKING_COUNT_BITS,
    HLL_INDEX_BITS,
    LENDER_EVENTS_CAP,
    MerchantState,
    advance_ring,
)
from schemas.inputs import AccountTransaction, PosTransaction

if TYPE_CHECKING:
    from detectors.features.close import DaySnapshot


class StepStatus(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    LATE = "late"


#: Why an event was not applied (``StepResult.reason``).
REASON_DUPLICATE = "duplicate_txn_id"
REASON_DAY_CLOSED = "day_closed"
REASON_BEYOND_LATENESS = "beyond_lateness"


class StepResult(NamedTuple):
    """What ``step`` did with one event.

    ``day`` is the event's business day. ``closed`` holds snapshots of days that ``step`` had to
    close itself because the merchant's newest day ran more than ``MAX_OPEN_DAYS`` ahead of its
    next day to close (the worker fell behind); handle them like ``close_day`` output.
    """

    status: StepStatus
    day: int
    reason: str = ""
    closed: tuple[DaySnapshot, ...] = ()


_APPLIED = StepStatus.APPLIED
_DUPLICATE = StepStatus.DUPLICATE
_LATE = StepStatus.LATE
_HLL_REGISTER_MASK = (1 << HLL_INDEX_BITS) - 1
_HLL_RANK_BASE = 64 - HLL_INDEX_BITS + 1


def _advance(state: MerchantState, day: int, params: FeatureParams) -> tuple[DaySnapshot, ...]:
    """Move the ring's newest day forward to ``day``, zeroing the buckets that enter it."""
    closed: tuple[DaySnapshot, ...] = ()
    floor = day - MAX_OPEN_DAYS
    if state.next_day_to_close < floor:
        # Closing reads HISTORY_DAYS of buckets: close what would be overwritten, now.
        _, snaps = close_through(state, floor - 1, params, with_features=params.auto_close_features)
        closed = tuple(snaps)
    advance_ring(state, day)
    return closed


def _admit(
    state: MerchantState, day: int, txn_hash: int, params: FeatureParams
) -> StepResult | tuple[DaySnapshot, ...]:
    """Duplicate and lateness checks; on admission, remember the id and advance the ring.

    A remembered id is a duplicate even when its day has closed since: a copy of a counted event
    (a re-delivery after a restart, a producer's retry) is acknowledged and counted once, not
    dead-lettered as late.
    """
    seen = state.seen
    if txn_hash in seen:
        return StepResult(_DUPLICATE, day, REASON_DUPLICATE)
    if day <= state.closed_through:
        return StepResult(_LATE, day, REASON_DAY_CLOSED)
    if day < state.max_day - params.lateness_days:
        return StepResult(_LATE, day, REASON_BEYOND_LATENESS)
    seen[txn_hash] = day
    if len(seen) > params.dedup_capacity:
        # Hard memory bound: forget the oldest id; its duplicate would now count twice.
        del seen[next(iter(seen))]
    if day > state.max_day:
        return _advance(state, day, params)
    if day < state.first_day:
        state.first_day = day
    return ()


def step_pos(
    state: MerchantState,
    day: int,
    kind: int,
    amount_fen: int,
    card_hash: int,
    txn_hash: int,
    params: FeatureParams,
) -> StepResult:
    """Apply one POS transaction given as plain values; mutates ``state``.

    ``kind`` is a code from ``POS_KIND_CODES``, ``card_hash`` a 64-bit ``card_hash(token)``
    (used for approved transactions only), ``txn_hash`` the 32-bit ``pos_txn_hash(txn_id)``.

    >>> params = FeatureParams()
    >>> state = MerchantState("m-1", 20_000)
    >>> step_pos(state, 20_000, 0, 1250, card_hash("tok_aaaaaaaa"), 7, params).status
    <StepStatus.APPLIED: 'applied'>
    >>> step_pos(state, 20_000, 0, 1250, card_hash("tok_aaaaaaaa"), 7, params).reason
    'duplicate_txn_id'
    >>> state.approved_amount[20_000 & RING_MASK]
    1250
    """
    admitted = _admit(state, day, txn_hash, params)
    if type(admitted) is StepResult:
        return admitted
    slot = day & RING_MASK
    if kind == 0:
        state.approved_count[slot] += 1
        state.approved_amount[slot] += amount_fen
        register = card_hash & _HLL_REGISTER_MASK
        rank = _HLL_RANK_BASE - (card_hash >> HLL_INDEX_BITS).bit_length()
        registers = state.hll_open.get(day)
        if registers is None:
            state.hll_open[day] = {register: rank}
        elif rank > registers.get(register, 0):
            registers[register] = rank
    elif kind == 1:
        state.declined_count[slot] += 1
    elif kind == 2:
        state.refund_count[slot] += 1
        state.refund_amount[slot] += amount_fen
    elif kind == 3:
        state.chargeback_count[slot] += 1
        state.chargeback_amount[slot] += amount_fen
    else:
        state.reversal_count[slot] += 1
    if admitted:
        return StepResult(_APPLIED, day, "", admitted)  # type: ignore[arg-type]
    return StepResult(_APPLIED, day)


def step_account(
    state: MerchantState,
    day: int,
    code: int,
    amount_fen: int,
    balance_after_fen: int,
    event_time_us: int,
    txn_id: str,
    lender: int,
    params: FeatureParams,
) -> StepResult:
    """Apply one account booking given as plain values; mutates ``state``.

    ``code`` comes from ``account_code``; ``event_time_us`` and ``txn_id`` order the day's
    bookings to find the end-of-day balance (latest time, then greatest txn id, whatever the
    arrival order); ``lender`` is ``lender_id(counterparty_bank_code)``.
    """
    admitted = _admit(state, day, account_txn_hash(txn_id), params)
    if type(admitted) is StepResult:
        return admitted
    key = day << BOOKING_CODE_BITS | code
    bookings = state.bookings
    bookings[key] = bookings.get(key, 0) + (amount_fen << BOOKING_COUNT_BITS | 1)
    last = state.eod_open.get(day)
    if last is None or (event_time_us, txn_id) > (last[0], last[1]):
        state.eod_open[day] = (event_time_us, txn_id, balance_after_fen)
    if code == LOAN_REPAYMENT_OTHER:
        events = state.lender_events
        insort(events, (day, lender, amount_fen))
        if len(events) > LENDER_EVENTS_CAP:
            del events[0]
            state.closed_blob = None  # the dropped repayment may belong to a closed day
    else:
        regular = REGULAR_INDEX.get(code)
        if regular is not None:
            days = state.regular_days[regular]
            if day not in days:
                insort(days, day)
    if admitted:
        return StepResult(_APPLIED, day, "", admitted)  # type: ignore[arg-type]
    return StepResult(_APPLIED, day)


def forget_id(state: MerchantState, event: PosTransaction | AccountTransaction) -> None:
    """Drop ``event``'s id from the state's remembered ids, so that applying it again counts it.

    For a caller that knows the id was remembered from this very event while the rest of the
    state lost it (the worker after a crash split its two records).

    >>> from datetime import UTC, datetime
    >>> params = FeatureParams()
    >>> sale = PosTransaction(
    ...     txn_id="t1", merchant_id="m-1", terminal_id="p1", amount_fen=8800,
    ...     event_time=datetime(2026, 3, 2, 2, 0, tzinfo=UTC), kind="approved",
    ...     card_token="tok_abcdefgh", channel="chip", mcc="5812")
    >>> state, _ = step(None, sale, params)
    >>> forget_id(state, sale)
    >>> step(state, sale, params)[1].status.value
    'applied'
    """
    if isinstance(event, PosTransaction):
        state.seen.pop(pos_txn_hash(event.txn_id), None)
    else:
        state.seen.pop(account_txn_hash(event.txn_id), None)


def step(
    state: MerchantState | None,
    event: PosTransaction | AccountTransaction,
    params: FeatureParams,
) -> tuple[MerchantState, StepResult]:
    """Apply one validated event to a merchant's state: ``(state, event) -> (state, result)``.

    The state is updated in place and returned (a new one is made for ``None``); re-assign it
    to the Faust table. Late and duplicate events leave the state unchanged.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> params = FeatureParams()
    >>> sale = PosTransaction(
    ...     txn_id="t1", merchant_id="m-1", terminal_id="p1", amount_fen=8800,
    ...     event_time=datetime(2026, 3, 2, 2, 0, tzinfo=UTC), kind="approved",
    ...     card_token="tok_abcdefgh", channel="chip", mcc="5812")
    >>> state, result = step(None, sale, params)
    >>> result.status.value, params.calendar.date_of_day(result.day)
    ('applied', datetime.date(2026, 3, 2))
    >>> step(state, sale, params)[1].status.value
    'duplicate'
    """
    when = event.event_time
    epoch_s = int(when.timestamp())
    day = params.calendar.day_of_epoch_seconds(epoch_s)
    if state is None:
        state = MerchantState(event.merchant_id, day)
    if isinstance(event, PosTransaction):
        kind = POS_KIND_CODES[event.kind]
        return state, step_pos(
            state,
            day,
            kind,
            event.amount_fen,
            card_hash(event.card_token) if kind == 0 else 0,
            pos_txn_hash(event.txn_id),
            params,
        )
    code = ACCOUNT_CODES[(event.category, event.direction)]
    if code == TRANSFER_OUT and event.counterparty_bank_code:
        code = TRANSFER_OUT_OTHER_BANK
    return state, step_account(
        state,
        day,
        code,
        event.amount_fen,
        event.balance_after_fen,
        epoch_s * 1_000_000 + when.microsecond,
        event.txn_id,
        lender_id(event.counterparty_bank_code) if code == LOAN_REPAYMENT_OTHER else 0,
        params,
    )
