"""Typical simulated merchants stay within 2 KB of state; run as a module for the benchmark.

Run ``.venv/bin/python -m tests.unit.test_features_perf [events] [merchants]`` for the figures
in docs/features.md.
"""

from __future__ import annotations

import math
import pickle
import random
import statistics
import sys
import time
from dataclasses import dataclass

from detectors.features import (
    FeatureParams,
    MerchantState,
    PartitionClock,
    account_code,
    card_hash,
    close_through,
    decode_state,
    encode_state,
    lender_id,
    pos_txn_hash,
    step,
    step_account,
    step_pos,
)
from schemas.inputs import AccountCategory, Direction

BASE_DAY = 20_000  # 2024-10-04
SIZE_LIMIT_BYTES = 2048

_SETTLE = account_code(AccountCategory.POS_SETTLEMENT, Direction.CREDIT)
_MONTHLY = [
    account_code(AccountCategory.PAYROLL, Direction.DEBIT),
    account_code(AccountCategory.TAX, Direction.DEBIT),
    account_code(AccountCategory.UTILITY, Direction.DEBIT),
    account_code(AccountCategory.FEE, Direction.DEBIT),
]
_TRANSFER_OUT = account_code(AccountCategory.TRANSFER_OUT, Direction.DEBIT)
_TRANSFER_OUT_BANK = account_code(AccountCategory.TRANSFER_OUT, Direction.DEBIT, "ABC")
_TRANSFER_IN = account_code(AccountCategory.TRANSFER_IN, Direction.CREDIT)
_CASH = account_code(AccountCategory.CASH_WITHDRAWAL, Direction.DEBIT)
_LENDER = account_code(AccountCategory.LOAN_REPAYMENT_OTHER, Direction.DEBIT)


@dataclass
class TypicalMerchant:
    """A small merchant: 5-40 sales a day, a weekly closing day, daily T+1 settlement,
    a few transfers a week, monthly payroll, tax, utility and fees, some with another lender."""

    merchant_id: str
    rng: random.Random

    def __post_init__(self) -> None:
        rng = self.rng
        self.sales_per_day = rng.lognormvariate(math.log(12), 0.6)
        self.ticket_fen = rng.lognormvariate(math.log(8000), 0.5)
        self.closing_weekday = rng.choice((None, 6, 0, 2))
        self.regulars = [card_hash(f"{self.merchant_id}-r{i}") for i in range(rng.randint(20, 200))]
        self.has_lender = rng.random() < 0.2
        self.balance = rng.randint(10_000, 5_000_000)
        self.serial = 0

    def day_events(self, day: int) -> list[tuple]:
        """One business day of events as plain values, in time order."""
        rng, out = self.rng, []
        sales = 0
        if (day + 3) % 7 != self.closing_weekday and rng.random() < 0.93:
            n = max(0, round(rng.gauss(self.sales_per_day, self.sales_per_day**0.5)))
            for _ in range(n):
                self.serial += 1
                kind = rng.choices(range(5), weights=(95, 3, 1, 0.1, 0.5))[0]
                amount = max(100, int(rng.lognormvariate(math.log(self.ticket_fen), 0.7)))
                regular = rng.random() < 0.6
                card = (
                    rng.choice(self.regulars)
                    if regular
                    else card_hash(f"{self.merchant_id}-{self.serial}")
                )
                sec = rng.randint(9 * 3600, 21 * 3600)
                out.append(("pos", sec, kind, amount, card, f"{self.merchant_id}-p{self.serial}"))
                sales += amount if kind == 0 else 0
        bookings = []
        if self.yesterday_sales:
            bookings.append((_SETTLE, int(self.yesterday_sales * 0.994)))
        self.yesterday_sales = sales
        if rng.random() < 0.3:
            bookings.append(
                (rng.choice((_TRANSFER_OUT, _TRANSFER_OUT_BANK)), rng.randint(1, 2_000_000))
            )
        if rng.random() < 0.1:
            bookings.append((_TRANSFER_IN, rng.randint(1, 1_000_000)))
        if rng.random() < 0.1:
            bookings.append((_CASH, rng.randint(10_000, 500_000)))
        monthly = (5, 15, 20, 25)
        if day % 30 in monthly:
            bookings.append((_MONTHLY[monthly.index(day % 30)], rng.randint(10_000, 3_000_000)))
        if self.has_lender and day % 30 == 10:
            bookings.append((_LENDER, 500_000))
        for code, amount in bookings:
            self.serial += 1
            debit = code in _MONTHLY or code in (_TRANSFER_OUT, _TRANSFER_OUT_BANK, _CASH, _LENDER)
            self.balance += -amount if debit else amount
            sec = rng.randint(8 * 3600, 18 * 3600)
            out.append(
                ("acct", sec, code, amount, self.balance, f"{self.merchant_id}-a{self.serial}")
            )
        out.sort(key=lambda e: e[1])
        return out

    yesterday_sales = 0


def run_merchant(merchant: TypicalMerchant, days: int, params: FeatureParams) -> MerchantState:
    """Feed a merchant's days in order, closing each day once it is final."""
    state = MerchantState(merchant.merchant_id, BASE_DAY)
    lender = lender_id("CMB")
    for offset in range(days):
        day = BASE_DAY + offset
        for event in merchant.day_events(day):
            if event[0] == "pos":
                _, _, kind, amount, card, txn = event
                step_pos(state, day, kind, amount, card, pos_txn_hash(txn), params)
            else:
                _, sec, code, amount, balance, txn = event
                time_us = (day * 86_400 + sec) * 1_000_000
                step_account(state, day, code, amount, balance, time_us, txn, lender, params)
        close_through(state, day - params.lateness_days - 1, params, with_features=False)
    return state


def test_typical_merchants_encode_within_2kb() -> None:
    params = FeatureParams()
    for i in range(12):
        merchant = TypicalMerchant(f"m-{i:05d}", random.Random(i))
        state = run_merchant(merchant, 130, params)
        blob = encode_state(state)
        assert decode_state(blob) == state
        assert pickle.loads(pickle.dumps(state)) == state
        # The de-duplication window costs about 4 bytes per transaction of the open days, so
        # only busy merchants (over ~25 sales a day) go beyond 2 KB.
        limit = SIZE_LIMIT_BYTES if merchant.sales_per_day <= 20 else 3 * 1024
        assert len(blob) <= limit, (merchant.sales_per_day, len(blob))


# ---- benchmark (not a test) ------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_sizes(n_merchants: int, days: int) -> None:
    params = FeatureParams()
    sizes, enc_us, dec_us, busiest = [], [], [], []
    for i in range(n_merchants):
        merchant = TypicalMerchant(f"m-{i:05d}", random.Random(i))
        state = run_merchant(merchant, days, params)
        t0 = time.perf_counter()
        blob = encode_state(state)
        t1 = time.perf_counter()
        decode_state(blob)
        t2 = time.perf_counter()
        sizes.append(len(blob))
        enc_us.append((t1 - t0) * 1e6)
        dec_us.append((t2 - t1) * 1e6)
        busiest.append((len(blob), merchant.sales_per_day))
    print(f"state size over {n_merchants} merchants x {days} days (bytes): "
          f"median {statistics.median(sizes):.0f}, p90 {_percentile(sizes, 0.9):.0f}, "
          f"p99 {_percentile(sizes, 0.99):.0f}, max {max(sizes)}")  # fmt: skip
    print(f"  largest: {max(busiest)[0]} bytes at {max(busiest)[1]:.0f} sales/day")
    print(f"encode_state median {statistics.median(enc_us):.1f} us, "
          f"decode_state median {statistics.median(dec_us):.1f} us")  # fmt: skip


def _stream(n_merchants: int, days: int) -> list[tuple]:
    """Events of many merchants interleaved in time order, as (day, merchant, event) tuples."""
    merchants = [TypicalMerchant(f"m-{i:05d}", random.Random(1000 + i)) for i in range(n_merchants)]
    events = []
    for offset in range(days):
        day = BASE_DAY + offset
        for m in merchants:
            events += [(day, e[1], m.merchant_id, e) for e in m.day_events(day)]
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def bench_step(n_events: int) -> None:
    params = FeatureParams()
    events = _stream(2000, 60)
    prepared = []  # what the backtest feeds: plain columns with hashes computed per row
    for day, _, mid, e in events[:n_events]:
        if e[0] == "pos":
            prepared.append((0, mid, day, e[2], e[3], e[4], pos_txn_hash(e[5]), 0, 0, ""))
        else:
            time_us = (day * 86_400 + e[1]) * 1_000_000
            prepared.append((1, mid, day, e[2], e[3], 0, 0, e[4], time_us, e[5]))
    states: dict[str, MerchantState] = {}
    for mid in {p[1] for p in prepared}:
        states[mid] = MerchantState(mid, prepared[0][2])
    sp, sa = step_pos, step_account
    lender = lender_id("CMB")
    t0 = time.perf_counter()
    for src, mid, day, kind, amount, card, txn, balance, time_us, txn_id in prepared:
        if src == 0:
            sp(states[mid], day, kind, amount, card, txn, params)
        else:
            sa(states[mid], day, kind, amount, balance, time_us, txn_id, lender, params)
    elapsed = time.perf_counter() - t0
    n = len(prepared)
    print(f"step_pos/step_account (plain values, {n} events, {len(states)} merchants): "
          f"{elapsed / n * 1e6:.2f} us/event = {n / elapsed:,.0f} events/s")  # fmt: skip
    _bench_pydantic(events[:n_events], params)
    _bench_backtest(_stream(300, 120)[:n_events], params)
    _bench_close(params)


def _bench_pydantic(events: list[tuple], params: FeatureParams) -> None:
    from datetime import UTC, datetime

    from schemas.inputs import AccountTransaction, PosTransaction

    kinds = ("approved", "declined", "refund", "chargeback", "reversal")
    cats = {account_code(c, d): (c, d) for c in AccountCategory for d in Direction}
    objs = []
    for day, sec, mid, e in events:
        when = datetime.fromtimestamp((day * 86_400 + sec) - 8 * 3600, UTC)
        if e[0] == "pos":
            objs.append(
                PosTransaction(
                    txn_id=e[5],
                    merchant_id=mid,
                    terminal_id="t1",
                    event_time=when,
                    amount_fen=e[3],
                    kind=kinds[e[2]],
                    card_token=f"tok_{e[4]:016x}",
                    channel="chip",
                    mcc="5812",
                )
            )
        else:
            category, direction = cats.get(e[2], (AccountCategory.TRANSFER_OUT, Direction.DEBIT))
            objs.append(AccountTransaction(
                txn_id=e[5], account_id="acc", merchant_id=mid, event_time=when,
                direction=direction, amount_fen=e[3], balance_after_fen=e[4], category=category,
                counterparty_bank_code="ABC" if e[2] == _TRANSFER_OUT_BANK else None))  # fmt: skip
    first_day = events[0][0]
    states = {o.merchant_id: MerchantState(o.merchant_id, first_day) for o in objs}
    t0 = time.perf_counter()
    for obj in objs:
        states[obj.merchant_id], _ = step(states[obj.merchant_id], obj, params)
    elapsed = time.perf_counter() - t0
    n = len(objs)
    print(f"step (validated pydantic events, hashes included, {n} events, {len(states)} merchants)"
          f": {elapsed / n * 1e6:.2f} us/event = {n / elapsed:,.0f} events/s")  # fmt: skip


def _bench_backtest(events: list[tuple], params: FeatureParams) -> None:
    """Events plus a PartitionClock plus closing every merchant-day (with and without features)."""
    for with_features in (False, True):
        states: dict[str, MerchantState] = {}
        clock = PartitionClock(params)
        lender = lender_id("CMB")
        closes = 0
        t0 = time.perf_counter()
        for day, sec, mid, e in events:
            clock.observe_epoch_seconds(day * 86_400 + sec - 8 * 3600)
            final = clock.closable_days()
            if final:
                for s in states.values():
                    closes += len(
                        close_through(s, final[-1], params, with_features=with_features)[1]
                    )
            state = states.get(mid)
            if state is None:
                state = states[mid] = MerchantState(mid, day)
            if e[0] == "pos":
                step_pos(state, day, e[2], e[3], e[4], pos_txn_hash(e[5]), params)
            else:
                time_us = (day * 86_400 + sec) * 1_000_000
                step_account(state, day, e[2], e[3], e[4], time_us, e[5], lender, params)
        elapsed = time.perf_counter() - t0
        n = len(events)
        print(f"stream + clock + close every merchant-day (features={with_features}): "
              f"{n / elapsed:,.0f} events/s, {closes} closes, "
              f"{elapsed / n * 1e6:.2f} us/event amortised")  # fmt: skip


def _bench_close(params: FeatureParams) -> None:
    """Cost of one close_day (with and without features) and of encode after a batch."""
    states = [
        run_merchant(TypicalMerchant(f"m-{i:05d}", random.Random(i)), 100, params)
        for i in range(300)
    ]
    for with_features in (False, True):
        copies = [decode_state(encode_state(s)) for s in states]
        t0 = time.perf_counter()
        for s in copies:
            close_through(s, s.next_day_to_close, params, with_features=with_features)
        elapsed = time.perf_counter() - t0
        per_close = elapsed / len(copies) * 1e6
        print(f"close_day (features={with_features}): {per_close:.1f} us per merchant-day")
    t0 = time.perf_counter()
    for s in copies:
        encode_state(s)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in copies:
        encode_state(s)
    warm = time.perf_counter() - t0
    blobs = [encode_state(s) for s in copies]
    t0 = time.perf_counter()
    for b in blobs:
        decode_state(b)
    dec = time.perf_counter() - t0
    n = len(copies)
    print(f"encode_state: {cold / n * 1e6:.0f} us right after a close, {warm / n * 1e6:.0f} us "
          f"otherwise (closed part cached); decode_state {dec / n * 1e6:.0f} us")  # fmt: skip


def bench_memory(n_merchants: int, days: int) -> None:
    """Resident Python memory of decoded states (what an in-process backtest holds)."""
    import tracemalloc

    params = FeatureParams()
    blobs = [
        encode_state(run_merchant(TypicalMerchant(f"m-{i:05d}", random.Random(i)), days, params))
        for i in range(n_merchants)
    ]
    tracemalloc.start()
    states = [decode_state(b) for b in blobs]
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"memory of a decoded state: {used / len(states) / 1024:.1f} KiB per merchant")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    bench_step(n)
    for days in (90, 365):
        bench_sizes(int(sys.argv[2]) if len(sys.argv) > 2 else 1000, days)
    bench_memory(200, 120)
