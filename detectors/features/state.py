"""Everything the engine keeps per merchant: day buckets, sketches and finalized scalars."""

from __future__ import annotations

from typing import Any

from detectors.features.codes import ACCOUNT_CODE_COUNT, REGULAR_PAYMENTS
from detectors.features.params import RING_DAYS, RING_MASK

#: Registers of the distinct-card HyperLogLog (standard error about 1.04 / sqrt(64) = 13 %).
HLL_REGISTERS = 64
HLL_INDEX_BITS = 6
#: A register's frontier packs (day << 6 | rank) pairs of this many bits, newest lowest.
HLL_PAIR_BITS = 22
HLL_PAIR_MASK = (1 << HLL_PAIR_BITS) - 1
#: End-of-day balances of the last closed days (30-day balance features).
EOD_RING_DAYS = 32
EOD_RING_MASK = EOD_RING_DAYS - 1
#: Gap-length histogram bins: bin i holds gaps in [GAP_EDGES[i], GAP_EDGES[i + 1]) days.
GAP_EDGES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 21, 30, 45, 60, 90, 180, 365)
#: Account bookings are keyed ``day << BOOKING_CODE_BITS | code`` and packed
#: ``amount_fen << BOOKING_COUNT_BITS | count`` (exact while a day has < 2**20 bookings of a code).
BOOKING_CODE_BITS = 5
BOOKING_COUNT_BITS = 20
BOOKING_COUNT_MASK = (1 << BOOKING_COUNT_BITS) - 1
#: Other-lender repayments remembered within the 90-day window (beyond: oldest forgotten).
LENDER_EVENTS_CAP = 64

POS_RING_NAMES: tuple[str, ...] = (
    "approved_count",
    "approved_amount",
    "declined_count",
    "refund_count",
    "refund_amount",
    "chargeback_count",
    "chargeback_amount",
    "reversal_count",
)


class MerchantState:
    """Per-merchant state of the feature engine, updated in place by ``step`` and ``close_day``.

    Days are business-day numbers (see ``BusinessCalendar``). POS totals live in ring buffers of
    ``RING_DAYS`` day buckets (slot ``day & RING_MASK``); account bookings of the last 30 days
    in one small dict of packed ints; distinct cards in a sliding-window HyperLogLog; gaps
    between active days in a fixed-bin histogram. Values that depend on a day being final (gaps,
    last active day, end-of-day balance) are updated when the day is closed, in day order.

    Examples
    --------
    >>> state = MerchantState("m-001", day=20_000)
    >>> state.next_day_to_close
    20000
    >>> import pickle
    >>> pickle.loads(pickle.dumps(state)) == state
    True
    """

    __slots__ = (
        "approved_amount",
        "approved_count",
        "bookings",
        "chargeback_amount",
        "chargeback_count",
        "closed_blob",
        "closed_through",
        "declined_count",
        "eod_known_from",
        "eod_open",
        "eod_ring",
        "first_day",
        "gap_hist",
        "hll_frontier",
        "hll_open",
        "last_acct_day",
        "last_active_day",
        "lender_events",
        "max_day",
        "merchant_id",
        "refund_amount",
        "refund_count",
        "regular_days",
        "regular_last",
        "reversal_count",
        "seen",
    )

    def __init__(self, merchant_id: str, day: int) -> None:
        self.merchant_id = merchant_id
        #: Earliest business day with an accepted event (history starts here).
        self.first_day = day
        #: Newest day held by the ring: the newest event day, or the last closed day if later.
        self.max_day = day
        #: Last closed day; -1 until the first close.
        self.closed_through = -1
        self.approved_count = [0] * RING_DAYS
        self.approved_amount = [0] * RING_DAYS
        self.declined_count = [0] * RING_DAYS
        self.refund_count = [0] * RING_DAYS
        self.refund_amount = [0] * RING_DAYS
        self.chargeback_count = [0] * RING_DAYS
        self.chargeback_amount = [0] * RING_DAYS
        self.reversal_count = [0] * RING_DAYS
        #: Per register: frontier of (closed day, rank) pairs, newest in the lowest bits.
        self.hll_frontier = [0] * HLL_REGISTERS
        #: Open (not yet closed) day -> {register: max rank} of that day's approved cards.
        self.hll_open: dict[int, dict[int, int]] = {}
        self.last_active_day = -1
        self.gap_hist = [0] * len(GAP_EDGES)
        #: Account bookings of the last 30 closed days and the open days, one entry per day and
        #: code: ``day << BOOKING_CODE_BITS | code`` -> ``amount_fen << BOOKING_COUNT_BITS | count``
        #: (one small dict of ints: a third of the memory of nested per-day dicts).
        self.bookings: dict[int, int] = {}
        #: Open day -> (event time in microseconds, txn id, balance after) of its last booking.
        self.eod_open: dict[int, tuple[int, str, int]] = {}
        #: End-of-day balance of closed day d at slot d & EOD_RING_MASK.
        self.eod_ring = [0] * EOD_RING_DAYS
        #: First closed day with a known end-of-day balance; -1 while unknown.
        self.eod_known_from = -1
        self.last_acct_day = -1
        #: (day, lender id, amount_fen) of repayments to other lenders, sorted, last 90 days.
        self.lender_events: list[tuple[int, int, int]] = []
        #: Per regular payment (payroll, tax, utility): sorted distinct days, last 90 days.
        self.regular_days: list[list[int]] = [[] for _ in REGULAR_PAYMENTS]
        #: Per regular payment: last closed day with a payment; -1 if none seen.
        self.regular_last = [-1] * len(REGULAR_PAYMENTS)
        #: Transaction-id hash -> day, for the open days (insertion order = eviction order).
        self.seen: dict[int, int] = {}
        #: Encoded closed part, cached by encode_state until the next close.
        self.closed_blob: bytes | None = None

    @property
    def next_day_to_close(self) -> int:
        """The day the next ``close_day`` call must close."""
        return self.closed_through + 1 if self.closed_through >= 0 else self.first_day

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle through the compact versioned encoding: small, and validated on load.
        from detectors.features.codec import decode_state, encode_state

        return (decode_state, (encode_state(self),))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MerchantState):
            return NotImplemented
        from detectors.features.codec import encode_state

        return encode_state(self) == encode_state(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"MerchantState({self.merchant_id!r}, first_day={self.first_day}, "
            f"max_day={self.max_day}, closed_through={self.closed_through})"
        )


def advance_ring(state: MerchantState, day: int) -> None:
    """Make ``day`` the ring's newest day, zeroing the buckets that enter it (no-op if older)."""
    old = state.max_day
    if day <= old:
        return
    rings = (
        state.approved_count,
        state.approved_amount,
        state.declined_count,
        state.refund_count,
        state.refund_amount,
        state.chargeback_count,
        state.chargeback_amount,
        state.reversal_count,
    )
    if day - old >= RING_DAYS:
        for ring in rings:
            ring[:] = [0] * RING_DAYS
    else:
        for d in range(old + 1, day + 1):
            slot = d & RING_MASK
            for ring in rings:
                ring[slot] = 0
    state.max_day = day


def day_bookings(state: MerchantState, day: int) -> list[tuple[int, int, int]]:
    """(code, count, amount_fen) of one day's account bookings, by code."""
    get = state.bookings.get
    base = day << BOOKING_CODE_BITS
    out = []
    for code in range(ACCOUNT_CODE_COUNT):
        packed = get(base | code)
        if packed:
            out.append((code, packed & BOOKING_COUNT_MASK, packed >> BOOKING_COUNT_BITS))
    return out
