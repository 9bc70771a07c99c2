"""A naive reference of every feature, recomputed from raw events, and a random event generator.

The property tests compare the streaming engine against :func:`naive_features`; the tests at the
bottom pin the reference itself to hand-computed values.
"""

from __future__ import annotations

import itertools
import math
import random
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field

from detectors.features import FeatureParams, MerchantState, card_hash, close_through, step_pos
from detectors.features.codes import (
    ACCOUNT_CODE_COUNT,
    ACCOUNT_CODES,
    CASH_WITHDRAWAL,
    CODE_IS_DEBIT,
    LOAN_REPAYMENT_OTHER,
    POS_SETTLEMENT,
    REGULAR_PAYMENTS,
    RETURNED_ITEM_CODES,
    TRANSFER_OUT_OTHER_BANK,
    TRANSFER_OWN_OTHER_BANK,
)
from detectors.features.compute import CODE_FEATURE_NAMES, WEEKDAYS
from detectors.features.sketches import gap_quantile, hll_estimate
from detectors.features.state import GAP_EDGES, HLL_REGISTERS
from detectors.features.step import step_account
from schemas.inputs import CREDIT_ONLY, DEBIT_ONLY, Direction

#: A POS event as plain values: (day, kind code, amount_fen, card_hash, txn_hash).
Pos = tuple[int, int, int, int, int]
#: An account booking: (day, code, amount_fen, balance_after_fen, time_us, txn_id, lender).
Acct = tuple[int, int, int, int, int, str, int]

BASE_DAY = 19_800  # 2024-03-19
#: Every (category, direction) code the schema allows, and transfers out to another bank.
POSSIBLE_CODES = [
    code
    for (category, direction), code in ACCOUNT_CODES.items()
    if not (category in CREDIT_ONLY and direction is Direction.DEBIT)
    and not (category in DEBIT_ONLY and direction is Direction.CREDIT)
] + [TRANSFER_OUT_OTHER_BANK]


@dataclass
class History:
    """Raw events of one merchant in arrival order, and which of them must be applied."""

    arrivals: list[tuple[str, Pos | Acct]] = field(default_factory=list)
    applied_pos: list[Pos] = field(default_factory=list)
    applied_acct: list[Acct] = field(default_factory=list)


def random_history(
    rng: random.Random,
    n_days: int,
    lateness_days: int,
    *,
    rate: float = 4.0,
    active_prob: float = 0.7,
    duplicate_prob: float = 0.05,
    late_prob: float = 0.03,
    cards: int = 60,
) -> History:
    """Events over ``n_days`` arriving up to ``lateness_days`` late, with duplicates and strays.

    Strays are copies of applied events with new ids whose day is beyond the lateness horizon
    at arrival; they must be rejected.
    """
    timed: list[tuple[float, str, Pos | Acct]] = []
    history = History()
    serial = 0
    balance = rng.randint(-50_000, 5_000_000)
    card_pool = [card_hash(f"tok_{rng.getrandbits(40):012x}") for _ in range(cards)]
    lenders = [0, 11, 12]
    for offset in range(n_days):
        day = BASE_DAY + offset
        if rng.random() < active_prob:
            for _ in range(rng.randint(1, max(1, int(2 * rate)))):
                serial += 1
                kind = rng.choices(range(5), weights=(80, 8, 5, 2, 5))[0]
                pos: Pos = (day, kind, rng.randint(100, 500_000), rng.choice(card_pool), serial)
                history.applied_pos.append(pos)
                timed.append((day + rng.uniform(0, lateness_days + 0.99), "pos", pos))
        for _ in range(rng.choice((0, 0, 1, 2, 3))):
            serial += 1
            code = rng.choice(POSSIBLE_CODES)
            amount = rng.randint(1, 300_000)
            balance += -amount if CODE_IS_DEBIT[code] else amount
            time_us = (day * 86_400 + rng.choice((3600, 7200, rng.randint(0, 86_399)))) * 10**6
            lender = rng.choice(lenders) if code == LOAN_REPAYMENT_OTHER else 0
            acct: Acct = (day, code, amount, balance, time_us, f"a{serial}", lender)
            history.applied_acct.append(acct)
            timed.append((day + rng.uniform(0, lateness_days + 0.99), "acct", acct))
    timed.sort(key=lambda item: item[0])
    newest = -1
    for arrival, source, event in timed:
        history.arrivals.append((source, event))
        newest = max(newest, event[0])
        if rng.random() < duplicate_prob:
            history.arrivals.append((source, event))  # a resend: same txn id
        if rng.random() < late_prob and newest - lateness_days - 2 >= BASE_DAY:
            serial += 1
            stray_day = rng.randint(BASE_DAY, newest - lateness_days - 1)
            stray: Pos = (stray_day, 0, 999, card_pool[0], 10**9 + serial)
            history.arrivals.append(("stray", stray))
        _ = arrival
    return history


def apply(state: MerchantState | None, source: str, event: Pos | Acct, params: FeatureParams):
    """Feed one raw event through the engine's plain-value entry points."""
    if state is None:
        state = MerchantState("m-ref", event[0])
    if source == "acct":
        day, code, amount, balance, time_us, txn_id, lender = event  # type: ignore[misc]
        return state, step_account(
            state, day, code, amount, balance, time_us, txn_id, lender, params
        )
    day, kind, amount, card, txn = event  # type: ignore[misc]
    return state, step_pos(state, day, kind, amount, card, txn, params)


def hll_rank(card: int) -> tuple[int, int]:
    return card & (HLL_REGISTERS - 1), 59 - (card >> 6).bit_length()


def _relative(recent: int, base: int) -> float:
    return (recent - base) / (recent + base) if recent + base else 0.0


def _cv(values: list[int]) -> float:
    n, total = len(values), sum(values)
    if n < 2 or total <= 0:
        return 0.0
    mean = total / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / n) / mean


def naive_features(
    pos: list[Pos], acct: list[Acct], day: int, params: FeatureParams
) -> dict[str, float]:
    """Every feature as of the end of ``day``, straight from the applied events."""
    first_day = min(e[0] for e in [*pos, *acct])
    pos = [e for e in pos if e[0] <= day]
    acct = [e for e in acct if e[0] <= day]
    out: dict[str, float] = {}
    by_day: dict[int, list[Pos]] = defaultdict(list)
    for e in pos:
        by_day[e[0]].append(e)

    def total(kind: int, lo: int, hi: int, what: int) -> int:
        # what: 0 = count, 1 = amount
        return sum(
            1 if what == 0 else e[2]
            for d in range(lo, hi + 1)
            for e in by_day.get(d, ())
            if e[1] == kind
        )

    amount_by_day = {d: total(0, d, d, 1) for d in range(day - 130, day + 1)}
    for w in params.windows_days:
        lo = day - w + 1
        c, a = total(0, lo, day, 0), total(0, lo, day, 1)
        dc = total(1, lo, day, 0)
        rc, ra = total(2, lo, day, 0), total(2, lo, day, 1)
        cc, ca = total(3, lo, day, 0), total(3, lo, day, 1)
        registers = [0] * HLL_REGISTERS
        for d in range(lo, day + 1):
            for e in by_day.get(d, ()):
                if e[1] == 0:
                    reg, rank = hll_rank(e[3])
                    registers[reg] = max(registers[reg], rank)
        out[f"txn_count_{w}d"] = c
        out[f"amount_sum_{w}d_fen"] = a
        out[f"avg_ticket_{w}d_fen"] = a / c if c else 0.0
        out[f"declined_count_{w}d"] = dc
        out[f"refund_count_{w}d"] = rc
        out[f"refund_amount_sum_{w}d_fen"] = ra
        out[f"chargeback_count_{w}d"] = cc
        out[f"chargeback_amount_sum_{w}d_fen"] = ca
        out[f"reversal_count_{w}d"] = total(4, lo, day, 0)
        out[f"refund_ratio_{w}d"] = ra / a if a else 0.0
        out[f"chargeback_ratio_{w}d"] = cc / c if c else 0.0
        out[f"decline_ratio_{w}d"] = dc / (c + dc) if c + dc else 0.0
        out[f"active_days_{w}d"] = sum(1 for d in range(lo, day + 1) if total(0, d, d, 0))
        out[f"distinct_cards_{w}d"] = hll_estimate(registers) if any(registers) else 0.0
    history = day - first_day + 1

    def asum(lo: int, hi: int) -> int:
        return sum(amount_by_day[d] for d in range(lo, hi + 1))

    out["trend_7d_vs_prev_28d"] = (
        _relative(asum(day - 6, day) / 7, asum(day - 34, day - 7) / 28) if history >= 35 else 0.0
    )
    out["trend_28d_vs_quarter_ago"] = (
        _relative(asum(day - 27, day), asum(day - 118, day - 91)) if history >= 119 else 0.0
    )
    k = min(30, history)
    out["amount_cv_daily_30d"] = _cv([amount_by_day[d] for d in range(day - k + 1, day + 1)])
    weeks = min(12, history // 7)
    out["amount_cv_weekly_12w"] = _cv([asum(day - 7 * i - 6, day - 7 * i) for i in range(weeks)])
    window84 = range(day - 83, day + 1)
    total84 = asum(day - 83, day)
    for wd, name in enumerate(WEEKDAYS):
        days = [d for d in window84 if (d + 3) % 7 == wd]
        covered = [d for d in days if d >= first_day]
        active = [d for d in days if total(0, d, d, 0)]
        share = sum(amount_by_day[d] for d in days)
        out[f"weekday_share_{name}_12w"] = share / total84 if total84 else 0.0
        out[f"weekday_active_rate_{name}_12w"] = len(active) / len(covered) if covered else 0.0
    out["weekday_of_day"] = (day + 3) % 7
    out["history_days"] = history
    active_days = sorted({e[0] for e in pos if e[1] == 0})
    hist = [0] * len(GAP_EDGES)
    for prev, cur in itertools.pairwise(active_days):
        hist[bisect_right(GAP_EDGES, cur - prev) - 1] += 1
        if sum(hist) > params.gap_decay_total:
            hist = [c // 2 for c in hist]
    since = day - active_days[-1] if active_days else history
    q95 = gap_quantile(hist, 0.95)
    out["days_since_last_txn"] = since
    out["ever_active"] = 1.0 if active_days else 0.0
    out["gap_count"] = sum(hist)
    out["gap_q50_days"] = gap_quantile(hist, 0.5)
    out["gap_q90_days"] = gap_quantile(hist, 0.9)
    out["gap_q95_days"] = q95
    out["silence_ratio_q95"] = since / max(q95, 1.0)
    _naive_account(acct, pos, day, params, out)
    return {name: float(value) for name, value in out.items()}


def _naive_account(
    acct: list[Acct], pos: list[Pos], day: int, params: FeatureParams, out: dict[str, float]
) -> None:
    for w in params.account_windows_days:
        window = [e for e in acct if e[0] > day - w]
        credit = [e for e in window if not CODE_IS_DEBIT[e[1]]]
        debit = [e for e in window if CODE_IS_DEBIT[e[1]]]
        out[f"acct_credit_count_{w}d"] = len(credit)
        out[f"acct_credit_amount_sum_{w}d_fen"] = sum(e[2] for e in credit)
        out[f"acct_debit_count_{w}d"] = len(debit)
        out[f"acct_debit_amount_sum_{w}d_fen"] = sum(e[2] for e in debit)
        out[f"net_cashflow_{w}d_fen"] = sum(e[2] for e in credit) - sum(e[2] for e in debit)
    last30 = [e for e in acct if e[0] > day - 30]
    by_code = [0] * ACCOUNT_CODE_COUNT
    for e in last30:
        by_code[e[1]] += e[2]
    for name in CODE_FEATURE_NAMES.values():
        out[name] = 0
    for code, name in CODE_FEATURE_NAMES.items():
        out[name] += by_code[code]
    debit30 = sum(e[2] for e in last30 if CODE_IS_DEBIT[e[1]])
    lag = params.settlement_delay_days
    turnover = sum(e[2] for e in pos if e[1] == 0 and day - lag - 29 <= e[0] <= day - lag)
    settled = by_code[POS_SETTLEMENT]
    out["settlement_to_pos_ratio_30d"] = min(settled / turnover, 10.0) if turnover else 1.0
    other = by_code[TRANSFER_OUT_OTHER_BANK] + by_code[TRANSFER_OWN_OTHER_BANK]
    out["other_bank_outflow_30d_fen"] = other
    out["other_bank_outflow_share_30d"] = other / debit30 if debit30 else 0.0
    out["cash_withdrawal_share_30d"] = by_code[CASH_WITHDRAWAL] / debit30 if debit30 else 0.0
    out["returned_item_count_30d"] = sum(1 for e in last30 if e[1] in RETURNED_ITEM_CODES)
    out["days_since_last_acct_txn"] = day - max(e[0] for e in acct) if acct else -1
    repay = [e for e in acct if e[1] == LOAN_REPAYMENT_OTHER and e[0] > day - 90]
    recent = {e[6] for e in repay if e[0] > day - 30}
    older = {e[6] for e in repay if e[0] <= day - 30}
    out["other_lender_repay_count_30d"] = sum(1 for e in repay if e[0] > day - 30)
    out["other_lender_repay_amount_sum_30d_fen"] = sum(e[2] for e in repay if e[0] > day - 30)
    out["other_lender_repay_count_90d"] = len(repay)
    out["other_lender_repay_amount_sum_90d_fen"] = sum(e[2] for e in repay)
    out["other_lender_count_90d"] = len(recent | older)
    out["other_lender_new_30d"] = len(recent - older)
    for name, code in REGULAR_PAYMENTS:
        paid = [e[0] for e in acct if e[1] == code]
        blocks = {(day - d) // 30 for d in paid if day - d < 90}
        out[f"{name}_months_paid_3m"] = len(blocks)
        out[f"days_since_{name}"] = day - max(paid) if paid else -1
    eod: dict[int, int] = {}
    for d in sorted({e[0] for e in acct}):
        last = max((e for e in acct if e[0] == d), key=lambda e: (e[4], e[5]))
        eod[d] = last[3]
    values = []
    for d in range(day - 29, day + 1):
        earlier = [x for x in eod if x <= d]
        if earlier:
            values.append(eod[max(earlier)])
    n = len(values)
    out["eod_balance_fen"] = values[-1] if values else 0
    out["eod_balance_min_30d_fen"] = min(values) if values else 0
    out["eod_balance_mean_30d_fen"] = sum(values) / n if n else 0.0
    slope = 0.0
    if n >= 2:
        mean_x, mean_y = (n - 1) / 2, sum(values) / n
        slope = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / sum(
            (i - mean_x) ** 2 for i in range(n)
        )
    out["eod_balance_slope_30d_fen_per_day"] = slope
    out["overdraft_days_30d"] = sum(1 for v in values if v < 0)
    out["eod_balance_known_days_30d"] = n


def naive_totals(pos: list[Pos], acct: list[Acct], day: int) -> tuple[int, ...]:
    """The merchant_daily counters of one day, from the applied events."""
    p = [e for e in pos if e[0] == day]
    a = [e for e in acct if e[0] == day]

    def pick(kind: int) -> list[Pos]:
        return [e for e in p if e[1] == kind]

    credit = [e for e in a if not CODE_IS_DEBIT[e[1]]]
    debit = [e for e in a if CODE_IS_DEBIT[e[1]]]
    earlier = [e for e in acct if e[0] <= day]
    balance = 0
    if earlier:
        last_day = max(e[0] for e in earlier)
        balance = max((e for e in earlier if e[0] == last_day), key=lambda e: (e[4], e[5]))[3]
    return (
        len(pick(0)), sum(e[2] for e in pick(0)), len(pick(1)),
        len(pick(2)), sum(e[2] for e in pick(2)), len(pick(3)), sum(e[2] for e in pick(3)),
        len(pick(4)),
        len(credit), sum(e[2] for e in credit), len(debit), sum(e[2] for e in debit),
        sum(e[2] for e in a if e[1] == POS_SETTLEMENT), balance,
    )  # fmt: skip


def assert_features_match(engine: dict[str, float], naive: dict[str, float], day: int) -> None:
    assert engine.keys() == naive.keys(), sorted(engine.keys() ^ naive.keys())
    for name, expected in naive.items():
        got = engine[name]
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9), (day, name, got, expected)


# ---- the reference pinned to hand-computed values -------------------------------------------


def test_reference_windows_and_ratios_by_hand() -> None:
    params = FeatureParams()
    d = BASE_DAY + 200
    pos: list[Pos] = [
        (d, 0, 1000, 1, 1), (d, 0, 3000, 2, 2), (d - 3, 0, 2000, 1, 3),
        (d - 3, 1, 500, 1, 4), (d, 2, 400, 1, 5), (d - 10, 3, 700, 3, 6),
    ]  # fmt: skip
    f = naive_features(pos, [], d, params)
    assert f["txn_count_1d"] == 2
    assert f["amount_sum_1d_fen"] == 4000
    assert f["txn_count_7d"] == 3
    assert f["amount_sum_7d_fen"] == 6000
    assert f["avg_ticket_7d_fen"] == 2000
    assert f["decline_ratio_7d"] == 1 / 4
    assert f["refund_ratio_7d"] == 400 / 6000
    assert f["chargeback_count_30d"] == 1
    assert f["chargeback_ratio_30d"] == 1 / 3
    assert f["active_days_30d"] == 2
    assert f["days_since_last_txn"] == 0
    assert f["gap_q50_days"] == 3
    assert f["history_days"] == 11


def test_reference_balances_by_hand() -> None:
    params = FeatureParams()
    d = BASE_DAY + 100
    acct: list[Acct] = [
        (d - 2, POS_SETTLEMENT, 500, 100, 5, "b", 0),
        (d - 2, POS_SETTLEMENT, 500, 900, 5, "a", 0),  # same time: the greater id wins -> 100
        (d, CASH_WITHDRAWAL, 300, -200, 1, "c", 0),
    ]
    f = naive_features([(d - 50, 0, 1, 1, 9)], acct, d, params)
    assert f["eod_balance_fen"] == -200
    assert f["eod_balance_min_30d_fen"] == -200
    assert f["eod_balance_known_days_30d"] == 3
    assert f["overdraft_days_30d"] == 1
    assert f["cash_withdrawal_share_30d"] == 1.0
    assert naive_totals([], acct, d - 1)[-1] == 100  # carried over a day without bookings


def test_engine_matches_reference_on_a_small_history() -> None:
    params = FeatureParams()
    history = random_history(random.Random(7), 40, params.lateness_days)
    state = None
    for source, event in history.arrivals:
        state, _ = apply(state, source, event, params)
    assert state is not None
    _, snaps = close_through(state, BASE_DAY + 45, params)
    for snap in snaps:
        want = naive_features(history.applied_pos, history.applied_acct, snap.day, params)
        assert_features_match(snap.features, want, snap.day)
