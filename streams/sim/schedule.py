"""Scheduled account bookings: payroll, tax, utilities, loan repayments here and elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from schemas.common import FEN_PER_CNY
from schemas.inputs import AccountCategory
from streams.sim import calendar
from streams.sim.loans import LoanRows
from streams.sim.plan import Plan
from streams.sim.population import Population, rng_for
from streams.sim.scenario import Scenario

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

STREAM_SCHEDULE = 6
CATEGORIES: tuple[AccountCategory, ...] = tuple(AccountCategory)
CAT = {c: i for i, c in enumerate(CATEGORIES)}
#: Counterparty code index meaning "none" (bookings inside our bank).
NO_COUNTERPARTY = -1
#: Payroll in the 30 days before the Spring Festival carries the year-end bonus (年终奖).
BONUS_WINDOW_DAYS = 30
BONUS_FACTOR = 2.0
#: A squeezed merchant pays payroll, tax and utilities up to this many days late.
MAX_DELAY_DAYS = 7
#: New short loans at other lenders during a squeeze: amount (months of revenue), weekly repayments.
SQUEEZE_LOAN_MONTHS = 0.4
SQUEEZE_LOAN_WEEKS = 8
MONTHLY_FEE_FEN = 10 * FEN_PER_CNY


def counterparty_codes(scenario: Scenario) -> list[str]:
    """All bank codes a booking can name; index 0 is our bank."""
    pop = scenario.population
    codes = [pop.bank_code, *pop.other_bank_codes, *pop.other_acquirer_codes, *pop.lender_codes]
    return list(dict.fromkeys(codes))


@dataclass(frozen=True, slots=True)
class Bookings:
    """Account bookings as columns; ``amount_fen`` is signed (credit > 0)."""

    day: I64
    merchant: I64
    second: I64
    amount_fen: I64
    category: I64
    counterparty: I64
    bounceable: B
    returned: B

    @staticmethod
    def concat(parts: list[Bookings]) -> Bookings:
        return Bookings(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def take(self, index: npt.NDArray[np.integer]) -> Bookings:
        return Bookings(*(getattr(self, f)[index] for f in _FIELDS))

    def __len__(self) -> int:
        return int(self.day.size)


_FIELDS = tuple(f.name for f in fields(Bookings))


def _make(
    day: I64,
    merchant: I64,
    second: I64,
    amount: I64,
    category: AccountCategory,
    counterparty: I64 | int = NO_COUNTERPARTY,
    bounceable: bool = False,
    returned: B | None = None,
) -> Bookings:
    n = day.size
    return Bookings(
        day=day.astype(np.int64),
        merchant=merchant.astype(np.int64),
        second=second.astype(np.int64),
        amount_fen=amount.astype(np.int64),
        category=np.full(n, CAT[category], dtype=np.int64),
        counterparty=np.broadcast_to(np.asarray(counterparty, dtype=np.int64), (n,)).copy(),
        bounceable=np.full(n, bounceable, dtype=np.bool_),
        returned=np.zeros(n, dtype=np.bool_) if returned is None else returned,
    )


class _Calendar:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        first = plan.start.replace(day=1)
        self.months: list[date] = []
        while first < plan.start + timedelta(days=plan.days):
            self.months.append(first)
            first = (first + timedelta(days=32)).replace(day=1)

    def index(self, day: date) -> int | None:
        i = (day - self.plan.start).days
        return i if 0 <= i < self.plan.days else None


def build_schedule(
    scenario: Scenario, pop: Population, plan: Plan, loans: LoanRows, seed: int
) -> Bookings:
    """Every scheduled booking of the window, sorted by day."""
    rng = rng_for(seed, STREAM_SCHEDULE)
    cal = _Calendar(plan)
    codes = counterparty_codes(scenario)
    lender_index = np.asarray([codes.index(c) for c in scenario.population.lender_codes])
    delay = _delays(pop, plan)
    parts = [
        _monthly(
            cal,
            pop,
            plan,
            rng,
            day_of_month=pop.payroll_day,
            amount=pop.payroll_fen,
            category=AccountCategory.PAYROLL,
            hour=9,
            delay=delay,
            payroll=True,
        ),
        _tax(cal, scenario, pop, plan, rng, delay),
        _monthly(
            cal,
            pop,
            plan,
            rng,
            day_of_month=pop.utility_day,
            amount=pop.utility_fen,
            category=AccountCategory.UTILITY,
            hour=11,
            delay=delay,
        ),
        _monthly(
            cal,
            pop,
            plan,
            rng,
            day_of_month=pop.other_loan_day,
            amount=pop.other_loan_fen,
            category=AccountCategory.LOAN_REPAYMENT_OTHER,
            hour=8,
            delay=None,
            counterparty=lender_index[pop.other_lender],
        ),
        _fees(cal, pop, plan),
        _squeeze_loans(pop, plan, rng, lender_index),
        _loan_bookings(loans),
        _opening_deposits(
            pop, plan, np.asarray([codes.index(c) for c in scenario.population.other_bank_codes])
        ),
    ]
    everything = Bookings.concat(parts)
    inside = (everything.day >= 0) & (everything.day < plan.days)
    everything = everything.take(np.flatnonzero(inside))
    return everything.take(np.argsort(everything.day, kind="stable"))


def _active(pop: Population, plan: Plan, merchants: I64, day: int) -> B:
    return (plan.onboard_day[merchants] <= day) & (day < plan.wind_down_from[merchants])


def _delays(pop: Population, plan: Plan) -> npt.NDArray[np.int64]:
    """Days a squeezed merchant pays late, growing with the squeeze: (merchants, days)."""
    since = np.arange(plan.days)[None, :] - plan.squeeze_from[:, None]
    length = np.maximum(plan.default_day - plan.squeeze_from, 1)[:, None]
    progress = np.clip(since / length, 0.0, 1.0)
    return np.asarray(np.round(progress * MAX_DELAY_DAYS), dtype=np.int64)


def _monthly(
    cal: _Calendar,
    pop: Population,
    plan: Plan,
    rng: np.random.Generator,
    *,
    day_of_month: I64,
    amount: I64,
    category: AccountCategory,
    hour: int,
    delay: I64 | None,
    payroll: bool = False,
    counterparty: I64 | int = NO_COUNTERPARTY,
) -> Bookings:
    days: list[I64 | int] = []
    merchants: list[I64] = []
    amounts: list[I64] = []
    """A monthly standing order on each merchant's day of the month (0 amount = none)."""
    dom = day_of_month
    festival = calendar.festival_offsets(plan.start, plan.days)
    for month in cal.months:
        for d in np.unique(dom[amount > 0]).tolist():
            due = month.replace(day=d)
            if payroll and due.weekday() >= 5:  # wages are paid on the Friday before a weekend
                due -= timedelta(days=due.weekday() - 4)
            day = cal.index(due)
            if day is None:
                continue
            who = np.flatnonzero((dom == d) & (amount > 0))
            who = who[_active(pop, plan, who, day)]
            value = amount[who].astype(np.float64)
            if payroll:
                value = value * np.where(
                    pop.has("dormant")[who] & (day >= pop.onset[who]), 0.5, 1.0
                )
                if -BONUS_WINDOW_DAYS <= festival[day] < 0:
                    value = value * BONUS_FACTOR
                churned = pop.has("decline_churn")[who] & (
                    day >= pop.onset[who] + pop.duration[who]
                )
                who, value = who[~churned], value[~churned]
            elif category is AccountCategory.UTILITY:
                value = value * rng.uniform(0.8, 1.2, who.size)
            shift = delay[who, day] if delay is not None else 0
            days.append(day + shift)
            merchants.append(who)
            amounts.append(np.maximum(1, np.round(value)).astype(np.int64))
    return _collect(days, merchants, amounts, category, hour, rng, counterparty, pop)


def _collect(
    days: list[I64 | int],
    merchants: list[I64],
    amounts: list[I64],
    category: AccountCategory,
    hour: int,
    rng: np.random.Generator,
    counterparty: I64 | int,
    pop: Population,
) -> Bookings:
    merchant = np.concatenate(merchants) if merchants else np.zeros(0, dtype=np.int64)
    day = (
        np.concatenate(
            [np.broadcast_to(d, (m.size,)) for d, m in zip(days, merchants, strict=True)]
        )
        if merchants
        else merchant
    )
    amount = np.concatenate(amounts) if amounts else merchant
    second = hour * 3600 + rng.integers(0, 1800, merchant.size)
    cp = counterparty[merchant] if isinstance(counterparty, np.ndarray) else counterparty
    return _make(day, merchant, second, -amount, category, cp, bounceable=True)


def _tax(
    cal: _Calendar,
    scenario: Scenario,
    pop: Population,
    plan: Plan,
    rng: np.random.Generator,
    delay: I64,
) -> Bookings:
    day_of = scenario.accounts.tax_day
    days: list[I64 | int] = []
    merchants: list[I64] = []
    amounts: list[I64] = []
    level = plan.rhythm * plan.trajectory_factor  # realised share of the merchant's normal trade
    for month in cal.months:
        day = cal.index(month.replace(day=day_of))
        if day is None:
            continue
        quarter_month = month.month in (1, 4, 7, 10)
        who = np.flatnonzero(~pop.tax_quarterly | quarter_month)
        who = who[_active(pop, plan, who, day)]
        months = np.where(pop.tax_quarterly[who], 3.0, 1.0)
        lookback = level[who, max(0, day - 30) : day] if day > 0 else None
        trade = lookback.mean(axis=1) if lookback is not None and lookback.shape[1] else 1.0
        value = pop.tax_share[who] * pop.monthly_revenue_fen[who] * months * trade
        keep = value >= FEN_PER_CNY
        who, value = who[keep], value[keep]
        days.append(day + delay[who, day])
        merchants.append(who)
        amounts.append(np.round(value).astype(np.int64))
    return _collect(days, merchants, amounts, AccountCategory.TAX, 10, rng, NO_COUNTERPARTY, pop)


def _fees(cal: _Calendar, pop: Population, plan: Plan) -> Bookings:
    parts = []
    everyone = np.arange(pop.size)
    for month in cal.months:
        day = cal.index(month)
        if day is None:
            continue
        who = everyone[_active(pop, plan, everyone, day)]
        n = who.size
        parts.append(
            _make(
                np.full(n, day),
                who,
                np.full(n, 1800),
                np.full(n, -MONTHLY_FEE_FEN),
                AccountCategory.FEE,
            )
        )
    return (
        Bookings.concat(parts)
        if parts
        else _make(*(np.zeros(0, dtype=np.int64),) * 4, AccountCategory.FEE)
    )


def _squeeze_loans(
    pop: Population, plan: Plan, rng: np.random.Generator, lender_index: I64
) -> Bookings:
    """New borrowing at other lenders to bridge the squeeze (多头借贷), repaid weekly."""
    parts = []
    for m in np.flatnonzero(pop.has("credit_default")).tolist():
        start, end = int(plan.squeeze_from[m]), int(plan.default_day[m])
        for first in (start + int(rng.integers(3, 8)), start + (end - start) * 3 // 5):
            lender = int(lender_index[rng.integers(0, lender_index.size)])
            amount = (
                int(round(SQUEEZE_LOAN_MONTHS * pop.monthly_revenue_fen[m] / 100_00) * 100_00)
                or 100_00
            )
            weekly = amount * 102 // 100 // SQUEEZE_LOAN_WEEKS
            repay_days = first + 7 * np.arange(1, SQUEEZE_LOAN_WEEKS + 1)
            n = repay_days.size
            parts.append(
                _make(
                    np.array([first]),
                    np.array([m]),
                    np.array([14 * 3600]),
                    np.array([amount]),
                    AccountCategory.TRANSFER_IN,
                    lender,
                )
            )
            parts.append(
                _make(
                    repay_days,
                    np.full(n, m),
                    np.full(n, 8 * 3600 + 900),
                    np.full(n, -weekly),
                    AccountCategory.LOAN_REPAYMENT_OTHER,
                    lender,
                    bounceable=True,
                )
            )
    empty = np.zeros(0, dtype=np.int64)
    return (
        Bookings.concat(parts)
        if parts
        else _make(empty, empty, empty, empty, AccountCategory.TRANSFER_IN)
    )


def _opening_deposits(pop: Population, plan: Plan, banks: I64) -> Bookings:
    """A new merchant funds its new account from its account elsewhere on onboarding day."""
    who = np.flatnonzero(plan.onboard_day >= 0)
    amount = np.maximum(1, np.round(pop.buffer_fen[who] / 100_00)) * 100_00
    n = who.size
    bank = banks[pop.supplier_bank[who] % banks.size]
    return _make(
        plan.onboard_day[who],
        who,
        np.full(n, 8 * 3600 + 1800),
        amount.astype(np.int64),
        AccountCategory.TRANSFER_IN,
        bank,
    )


def _loan_bookings(loans: LoanRows) -> Bookings:
    if not loans.bookings:
        empty = np.zeros(0, dtype=np.int64)
        return _make(empty, empty, empty, empty, AccountCategory.LOAN_REPAYMENT_US)
    day, second, merchant, amount, kind, returned = (
        np.asarray(c) for c in zip(*loans.bookings, strict=True)
    )
    repay = kind == "repayment"
    parts = [
        _make(
            day[repay],
            merchant[repay],
            second[repay],
            amount[repay],
            AccountCategory.LOAN_REPAYMENT_US,
            returned=returned[repay].astype(np.bool_),
        ),
        # A POS-loan disbursement is booked as "other" (from our bank): it is not revenue.
        _make(
            day[~repay], merchant[~repay], second[~repay], amount[~repay], AccountCategory.OTHER, 0
        ),
    ]
    return Bookings.concat(parts)
