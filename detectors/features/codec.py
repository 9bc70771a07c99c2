"""Compact versioned serialization of MerchantState: a format byte, a closed part, an open part.

The closed part (buckets, sketches and scalars of closed days) changes once a day, at close; it
is compressed once and cached on the state. The open part (the days still open, the recent
transaction ids) is small and re-encoded on every call, so encoding after each batch is cheap.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Callable

from detectors.features.codes import ACCOUNT_CODE_COUNT, REGULAR_PAYMENTS
from detectors.features.compute import last_days
from detectors.features.errors import StateDecodeError
from detectors.features.params import HISTORY_DAYS, MAX_WINDOW_DAYS, RING_MASK
from detectors.features.state import (
    BOOKING_CODE_BITS,
    BOOKING_COUNT_BITS,
    BOOKING_COUNT_MASK,
    EOD_RING_DAYS,
    GAP_EDGES,
    HLL_PAIR_BITS,
    HLL_REGISTERS,
    POS_RING_NAMES,
    MerchantState,
)

FORMAT_VERSION = 1
#: Format byte of a transaction-id set alone (:func:`encode_ids`).
IDS_FORMAT_VERSION = 1
#: Columns of similar numbers (each packed on its own compresses better than one mixed list).
_HEAD, _COUNT, _AMOUNT, _AGE, _RANK, _REGISTER, _SIGNED, _HASH, _CODE = range(9)
_COLUMNS = 9
_PART_HEADER = struct.Struct("<I" + "IB" * _COLUMNS)  # strings; per column: values, planes kept
_CLOSED_LENGTH = struct.Struct("<I")
_WIDTH = 8
_LITTLE = sys.byteorder == "little"
_US_PER_DAY = 86_400_000_000
_MAX_COLUMN_VALUES = 1 << 22
_CODE_MASK = (1 << BOOKING_CODE_BITS) - 1
_AMOUNT_RINGS = frozenset(("approved_amount", "refund_amount", "chargeback_amount"))


def _zig(value: int) -> int:
    """Signed -> unsigned (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...), so small negatives stay small."""
    return value << 1 if value >= 0 else (-value << 1) - 1


def _zag(value: int) -> int:
    return value >> 1 if not value & 1 else -((value + 1) >> 1)


def _rel(reference: int, day: int) -> int:
    """A day as its distance behind ``reference`` plus one; 0 stands for "none" (-1)."""
    return reference - day + 1 if day >= 0 else 0


def _unrel(reference: int, value: int) -> int:
    return reference - value + 1 if value else -1


def _pack(values: list[int]) -> tuple[bytes, int]:
    """Unsigned ints as byte planes (all lowest bytes first), empty high planes dropped."""
    if not values:
        return b"", 0
    kept = (max(values).bit_length() + 7) // 8
    packed = array("Q", values)
    if not _LITTLE:
        packed.byteswap()
    raw = packed.tobytes()
    return b"".join([raw[k::_WIDTH] for k in range(kept)]), kept


def _unpack(data: bytes, count: int, kept: int) -> list[int]:
    # A corrupt header must not make us allocate gigabytes: no column is anywhere near this.
    if kept > _WIDTH or len(data) != count * kept or count > _MAX_COLUMN_VALUES:
        raise ValueError("bad column")
    if not kept:
        return [0] * count
    raw = bytearray(count * _WIDTH)
    for k in range(kept):
        raw[k::_WIDTH] = data[k * count : (k + 1) * count]
    packed = array("Q")
    packed.frombytes(bytes(raw))
    if not _LITTLE:
        packed.byteswap()
    return packed.tolist()


def _finish(cols: list[list[int]], texts: list[bytes], level: int) -> bytes:
    shape: list[int] = [len(texts)]
    planes = []
    for column in cols:
        packed, kept = _pack(column)
        shape += (len(column), kept)
        planes.append(packed)
    body = _PART_HEADER.pack(*shape) + b"".join(planes) + b"".join(texts)
    return zlib.compress(body, level)


class _Reader:
    """Columns of one part, read back in the order they were written."""

    __slots__ = ("cols", "pos", "texts")

    def __init__(self, part: bytes) -> None:
        body = zlib.decompress(part)
        shape = _PART_HEADER.unpack_from(body)
        offset = _PART_HEADER.size
        self.cols: list[list[int]] = []
        for i in range(_COLUMNS):
            n, kept = shape[1 + 2 * i], shape[2 + 2 * i]
            self.cols.append(_unpack(body[offset : offset + n * kept], n, kept))
            offset += n * kept
        self.pos = [0] * _COLUMNS
        n_texts = shape[0]
        counts = self.cols[_COUNT]
        if n_texts > len(counts):
            raise ValueError("bad strings")
        lengths = counts[len(counts) - n_texts :]
        del counts[len(counts) - n_texts :]
        self.texts, start = [], offset
        for length in lengths:
            self.texts.append(body[start : start + length].decode())
            start += length
        if start != len(body):
            raise ValueError("trailing bytes")

    def take(self, column: int, n: int) -> list[int]:
        start = self.pos[column]
        if n < 0 or start + n > len(self.cols[column]):
            raise ValueError("truncated state")
        self.pos[column] = start + n
        return self.cols[column][start : start + n]

    def one(self, column: int) -> int:
        return self.take(column, 1)[0]

    def check_done(self) -> None:
        if self.pos != [len(c) for c in self.cols]:
            raise ValueError("trailing values")


def _ring_spans(state: MerchantState) -> tuple[int, int, int]:
    """First kept day of the amount ring, of the other rings, and the first open day."""
    after = state.next_day_to_close
    first = state.first_day
    return max(first, after - HISTORY_DAYS + 1), max(first, after - MAX_WINDOW_DAYS + 1), after


def _encode_closed(state: MerchantState, level: int) -> bytes:
    closed = state.closed_through
    if closed < 0:
        return b""
    cols: list[list[int]] = [[] for _ in range(_COLUMNS)]
    head, count, amount, age, rank = (
        cols[_HEAD],
        cols[_COUNT],
        cols[_AMOUNT],
        cols[_AGE],
        cols[_RANK],
    )
    head += (closed, *[_rel(closed, d) for d in (state.last_active_day, state.last_acct_day)])
    head += [_rel(closed, d) for d in (state.eod_known_from, *state.regular_last)]
    count += state.gap_hist
    amount_from, other_from, _ = _ring_spans(state)
    age += (closed - amount_from, closed - other_from)
    for name in POS_RING_NAMES:
        start = amount_from if name == "approved_amount" else other_from
        column = amount if name in _AMOUNT_RINGS else count
        column += last_days(getattr(state, name), closed, closed - start + 1)
    oldest_pair = closed - MAX_WINDOW_DAYS + 2  # the next close reads back to here
    for packed in state.hll_frontier:
        kept = previous_age = previous_rank = 0
        while packed:
            pair = packed & 0x3FFFFF
            if pair >> 6 < oldest_pair:
                break
            # Newest first, ages and ranks both rise: their steps are small numbers.
            pair_age, pair_rank = closed - (pair >> 6), pair & 63
            age.append(pair_age - previous_age)
            rank.append(pair_rank - previous_rank)
            previous_age, previous_rank = pair_age, pair_rank
            packed >>= HLL_PAIR_BITS
            kept += 1
        count.append(kept)
    _encode_acct(state, closed, closed, False, cols)
    if state.eod_known_from >= 0:
        cols[_SIGNED] += [_zig(b) for b in state.eod_ring]
    _encode_dated(state, closed, lambda d: d <= closed, cols)
    return _finish(cols, [], level)


def _encode_acct(
    state: MerchantState, reference: int, closed: int, open_days: bool, cols: list[list[int]]
) -> None:
    """Account bookings of the closed days (through ``closed``) or of the open days after it:
    per-day sizes first, so decoding can slice."""
    # A booking key is day << BOOKING_CODE_BITS | code: comparing keys compares days.
    limit = (closed + 1) << BOOKING_CODE_BITS
    items = state.bookings.items()
    entries = sorted(
        [kv for kv in items if kv[0] >= limit]
        if open_days
        else [kv for kv in items if kv[0] < limit]
    )
    days: list[int] = []
    sizes: list[int] = []
    for key, _ in entries:
        day = key >> BOOKING_CODE_BITS
        if days and days[-1] == day:
            sizes[-1] += 1
        else:
            days.append(day)
            sizes.append(1)
    count = cols[_COUNT]
    count.append(len(days))
    count += sizes
    cols[_AGE] += [reference - d for d in days]
    cols[_CODE] += [key & _CODE_MASK for key, _ in entries]
    count += [packed & BOOKING_COUNT_MASK for _, packed in entries]
    cols[_AMOUNT] += [packed >> BOOKING_COUNT_BITS for _, packed in entries]


def _encode_dated(
    state: MerchantState, reference: int, select: Callable[[int], bool], cols: list[list[int]]
) -> None:
    """Lender repayments and regular payment days selected by ``select(day)``."""
    events = [e for e in state.lender_events if select(e[0])]
    cols[_COUNT].append(len(events))
    for day, lender, total in events:
        cols[_AGE].append(reference - day)
        cols[_HEAD].append(lender)
        cols[_AMOUNT].append(total)
    for days in state.regular_days:
        picked = [reference - d for d in days if select(d)]
        cols[_COUNT].append(len(picked))
        cols[_AGE] += picked


def _encode_open(state: MerchantState, level: int, ids: bool) -> bytes:
    cols: list[list[int]] = [[] for _ in range(_COLUMNS)]
    count, age, rank = cols[_COUNT], cols[_AGE], cols[_RANK]
    newest, closed = state.max_day, state.closed_through
    cols[_HEAD] += (newest, newest - state.first_day, _rel(newest, closed))
    _, _, after = _ring_spans(state)
    span = max(0, newest - after + 1)
    count.append(span)
    for name in POS_RING_NAMES:
        column = cols[_AMOUNT] if name in _AMOUNT_RINGS else count
        column += last_days(getattr(state, name), newest, span) if span else []
    open_days = sorted(state.hll_open)
    count.append(len(open_days))
    count += [len(state.hll_open[d]) for d in open_days]
    age += [newest - d for d in open_days]
    for day in open_days:
        previous = 0
        for register, register_rank in sorted(state.hll_open[day].items()):
            cols[_REGISTER].append(register - previous)
            previous = register
            rank.append(register_rank)
    _encode_acct(state, newest, closed, True, cols)
    texts = [state.merchant_id.encode()]
    count.append(len(state.eod_open))
    for day, (time_us, txn_id, balance) in sorted(state.eod_open.items()):
        age.append(newest - day)
        cols[_SIGNED] += (_zig(time_us - day * _US_PER_DAY), _zig(balance))
        texts.append(txn_id.encode())
    _encode_dated(state, newest, lambda d: d > closed, cols)
    _encode_seen(state.seen if ids else {}, newest, cols)
    count += [len(t) for t in texts]
    return _finish(cols, texts, level)


def _encode_seen(seen: dict[int, int], newest: int, cols: list[list[int]]) -> None:
    """The remembered transaction ids by day (days as ages behind ``newest``)."""
    count, age = cols[_COUNT], cols[_AGE]
    by_day: dict[int, list[int]] = {}
    for txn_hash, day in seen.items():
        by_day.setdefault(day, []).append(txn_hash)
    seen_days = sorted(by_day)
    count.append(len(seen_days))
    count += [len(by_day[d]) for d in seen_days]
    age += [newest - d for d in seen_days]
    for day in seen_days:
        # Sorted hashes as gaps: about 2 bits a hash fewer than the hashes themselves.
        hashes = sorted(by_day[day])
        cols[_HASH] += [b - a for a, b in zip([0, *hashes], hashes, strict=False)]


def _decode_seen(r: _Reader, newest: int, seen: dict[int, int]) -> None:
    n_days = r.one(_COUNT)
    sizes, ages = r.take(_COUNT, n_days), r.take(_AGE, n_days)
    for day_age, size in zip(ages, sizes, strict=True):
        day, txn_hash = newest - day_age, 0
        for gap in r.take(_HASH, size):
            txn_hash += gap
            seen[txn_hash] = day


def encode_state(state: MerchantState, level: int = 6, *, ids: bool = True) -> bytes:
    """Serialize a merchant's state: format byte, closed part (cached), open part.

    Buckets and sketch entries that no later close or step can read are left out, so a decoded
    state behaves exactly like the original. ``level`` is the zlib level. With ``ids=False``
    the remembered transaction ids (the de-duplication set) are left out: the worker keeps
    them in a table of their own (:func:`encode_ids`).

    >>> state = MerchantState("m-1", 20_000)
    >>> blob = encode_state(state)
    >>> blob[0], decode_state(blob) == state
    (1, True)
    """
    closed = state.closed_blob
    if closed is None:
        closed = state.closed_blob = _encode_closed(state, level)
    return (
        bytes((FORMAT_VERSION,))
        + _CLOSED_LENGTH.pack(len(closed))
        + closed
        + _encode_open(state, level, ids)
    )


def encode_ids(state: MerchantState, level: int = 6) -> bytes:
    """The state's remembered transaction ids alone: a format byte and one compressed part.

    >>> state = MerchantState("m-1", 20_000)
    >>> state.seen = {7: 20_000, 3: 20_001}
    >>> copy = MerchantState("m-1", 20_000)
    >>> decode_ids(encode_ids(state), copy)
    >>> copy.seen == state.seen
    True
    """
    cols: list[list[int]] = [[] for _ in range(_COLUMNS)]
    newest = max(state.seen.values(), default=0)
    cols[_HEAD].append(newest)
    _encode_seen(state.seen, newest, cols)
    return bytes((IDS_FORMAT_VERSION,)) + _finish(cols, [], level)


def decode_ids(data: bytes, state: MerchantState) -> None:
    """Add the ids of :func:`encode_ids` to ``state`` (kept in insertion order: oldest day
    first, as the step function's capacity bound expects)."""
    if not data or data[0] != IDS_FORMAT_VERSION:
        version = data[0] if data else None
        msg = (
            f"unknown transaction-id set format version {version} "
            f"(this build reads {IDS_FORMAT_VERSION})"
        )
        raise StateDecodeError(msg)
    try:
        r = _Reader(data[1:])
        newest = r.one(_HEAD)
        ids: dict[int, int] = {}
        _decode_seen(r, newest, ids)
        r.check_done()
    except (zlib.error, struct.error, IndexError, ValueError) as exc:
        raise StateDecodeError(f"corrupt transaction-id set: {exc}") from exc
    state.seen.update(ids)


def decode_state(data: bytes) -> MerchantState:
    """Inverse of :func:`encode_state`; rejects unknown format versions and corrupt data.

    >>> decode_state(b"\\x07abc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    detectors.features.errors.StateDecodeError: unknown merchant state format version 7 ...
    """
    if not data:
        raise StateDecodeError("empty merchant state")
    if data[0] != FORMAT_VERSION:
        msg = f"unknown merchant state format version {data[0]} (this build reads {FORMAT_VERSION})"
        raise StateDecodeError(msg)
    try:
        (closed_length,) = _CLOSED_LENGTH.unpack_from(data, 1)
        start = 1 + _CLOSED_LENGTH.size
        closed = data[start : start + closed_length]
        if len(closed) != closed_length:
            raise ValueError("truncated closed part")
        state = _decode_open(_Reader(data[start + closed_length :]))
        if closed_length:
            _decode_closed(_Reader(closed), state)
        state.closed_blob = bytes(closed)
        return state
    except (zlib.error, struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        msg = f"corrupt merchant state: {exc}"
        raise StateDecodeError(msg) from exc


def _put_ring(ring: list[int], last_day: int, values: list[int]) -> None:
    """Write chronological values ending at ``last_day`` into their ring slots."""
    n = len(values)
    if not n:
        return
    if n > RING_MASK + 1:
        raise ValueError("ring span longer than the ring")
    start = (last_day - n + 1) & RING_MASK
    head = min(n, RING_MASK + 1 - start)
    ring[start : start + head] = values[:head]
    ring[: n - head] = values[head:]


def _decode_dated(r: _Reader, reference: int, state: MerchantState) -> None:
    n = r.one(_COUNT)
    ages, lenders, amounts = r.take(_AGE, n), r.take(_HEAD, n), r.take(_AMOUNT, n)
    state.lender_events += [
        (reference - a, lender, total)
        for a, lender, total in zip(ages, lenders, amounts, strict=True)
    ]
    for days in state.regular_days:
        days += [reference - a for a in r.take(_AGE, r.one(_COUNT))]


def _decode_open(r: _Reader) -> MerchantState:
    newest, age_first, closed_rel = r.take(_HEAD, 3)
    if not r.texts:
        raise ValueError("missing merchant id")
    state = MerchantState(r.texts[0], newest - age_first)
    state.max_day, state.closed_through = newest, _unrel(newest, closed_rel)
    span = r.one(_COUNT)
    for name in POS_RING_NAMES:
        _put_ring(
            getattr(state, name), newest, r.take(_AMOUNT if name in _AMOUNT_RINGS else _COUNT, span)
        )
    n_days = r.one(_COUNT)
    sizes, ages = r.take(_COUNT, n_days), r.take(_AGE, n_days)
    deltas, ranks = r.take(_REGISTER, sum(sizes)), r.take(_RANK, sum(sizes))
    start = 0
    for day_age, size in zip(ages, sizes, strict=True):
        registers: dict[int, int] = {}
        register = 0
        for i in range(start, start + size):
            register += deltas[i]
            registers[register] = ranks[i]
        state.hll_open[newest - day_age] = registers
        start += size
    _decode_acct(r, newest, state)
    for txn_id in r.texts[1 : 1 + r.one(_COUNT)]:
        day = newest - r.one(_AGE)
        time_rel, balance = r.take(_SIGNED, 2)
        state.eod_open[day] = (_zag(time_rel) + day * _US_PER_DAY, txn_id, _zag(balance))
    if len(state.eod_open) != len(r.texts) - 1:
        raise ValueError("bad strings")
    _decode_dated(r, newest, state)
    _decode_seen(r, newest, state.seen)
    r.check_done()
    return state


def _decode_acct(r: _Reader, reference: int, state: MerchantState) -> None:
    n_days = r.one(_COUNT)
    sizes, ages = r.take(_COUNT, n_days), r.take(_AGE, n_days)
    total = sum(sizes)
    codes, counts, amounts = r.take(_CODE, total), r.take(_COUNT, total), r.take(_AMOUNT, total)
    if any(code >= ACCOUNT_CODE_COUNT for code in codes):
        raise ValueError("unknown account code")
    bookings = state.bookings
    start = 0
    for day_age, size in zip(ages, sizes, strict=True):
        base = (reference - day_age) << BOOKING_CODE_BITS
        for i in range(start, start + size):
            bookings[base | codes[i]] = amounts[i] << BOOKING_COUNT_BITS | counts[i]
        start += size


def _decode_closed(r: _Reader, state: MerchantState) -> None:
    closed, last_active, last_acct = r.take(_HEAD, 3)
    if closed != state.closed_through:
        raise ValueError("closed part does not match the open part")
    state.last_active_day, state.last_acct_day = (
        _unrel(closed, last_active),
        _unrel(closed, last_acct),
    )
    state.eod_known_from = _unrel(closed, r.one(_HEAD))
    state.regular_last = [_unrel(closed, v) for v in r.take(_HEAD, len(REGULAR_PAYMENTS))]
    state.gap_hist = r.take(_COUNT, len(GAP_EDGES))
    amount_age, other_age = r.take(_AGE, 2)
    for name in POS_RING_NAMES:
        n = (amount_age if name == "approved_amount" else other_age) + 1
        _put_ring(
            getattr(state, name), closed, r.take(_AMOUNT if name in _AMOUNT_RINGS else _COUNT, n)
        )
    sizes = r.take(_COUNT, HLL_REGISTERS)
    ages, ranks = r.take(_AGE, sum(sizes)), r.take(_RANK, sum(sizes))
    frontier = state.hll_frontier
    end = 0
    for register, size in enumerate(sizes):
        start, end = end, end + size
        pairs = []
        pair_age = pair_rank = 0
        for i in range(start, end):
            pair_age += ages[i]
            pair_rank += ranks[i]
            pairs.append((closed - pair_age) << 6 | pair_rank)
        packed = 0
        for pair in reversed(pairs):  # oldest pair first: it ends in the high bits
            packed = packed << HLL_PAIR_BITS | pair
        frontier[register] = packed
    _decode_acct(r, closed, state)
    if state.eod_known_from >= 0:
        state.eod_ring = [_zag(v) for v in r.take(_SIGNED, EOD_RING_DAYS)]
    lender_open, regular_open = state.lender_events, state.regular_days
    state.lender_events, state.regular_days = [], [[] for _ in REGULAR_PAYMENTS]
    _decode_dated(r, closed, state)
    state.lender_events += lender_open
    for days, extra in zip(state.regular_days, regular_open, strict=True):
        days += extra
    r.check_done()
