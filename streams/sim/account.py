"""One day of business-account bookings for the whole population, with running balances."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from schemas.common import FEN_PER_CNY
from schemas.inputs import AccountCategory, Direction
from streams.sim.arrow import ACCOUNT_SCHEMA, numbered, pick, timestamps
from streams.sim.plan import Plan
from streams.sim.population import STREAM_ACCOUNT, Population, rng_for
from streams.sim.scenario import Scenario
from streams.sim.schedule import CAT, CATEGORIES, NO_COUNTERPARTY, Bookings, counterparty_codes

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Customer transfers arrive mostly on working days.
_WEEKEND_TRANSFER_FACTOR = 0.3
_AVERAGE_TRANSFER_FACTOR = (5 + 2 * _WEEKEND_TRANSFER_FACTOR) / 7
_TRANSFER_SIGMA = 0.6
_CASH_CAP_FEN = 20_000 * FEN_PER_CNY
_MIN_PAYMENT_FEN = 100 * FEN_PER_CNY
#: Seconds after a bounced debit when the bank books it back, and then its fee.
_RETURN_LAG, _FEE_LAG = 60, 120
_CUSHION_SPEED = 2.0
_SQUEEZE_SPEND_SHARE = 0.97
_DIRECTIONS = pa.array([Direction.CREDIT.value, Direction.DEBIT.value], type=pa.string())


@dataclass(slots=True)
class AccountState:
    """Carried from day to day: end-of-day balance and yesterday's approved POS turnover."""

    balance_fen: I64
    turnover_fen: I64


@dataclass(frozen=True, slots=True)
class AccountContext:
    seed: int
    scenario: Scenario
    pop: Population
    plan: Plan
    schedule: Bookings
    schedule_bounds: I64
    codes: pa.Array
    other_banks: I64
    acquirers: I64
    merchant_ids: pa.Array
    account_ids: pa.Array
    categories: pa.Array
    transfer_in_rate: F64
    transfer_in_mean_fen: F64

    @staticmethod
    def build(
        scenario: Scenario, pop: Population, plan: Plan, schedule: Bookings, seed: int
    ) -> AccountContext:
        codes = counterparty_codes(scenario)
        pos_share = pop.monthly_pos_fen / pop.monthly_revenue_fen
        rate = scenario.accounts.transfer_in_per_day * (1.0 - pos_share)
        other_revenue = pop.monthly_revenue_fen - pop.monthly_pos_fen
        mean = other_revenue / (30.0 * np.maximum(rate, 1e-9) * _AVERAGE_TRANSFER_FACTOR)
        return AccountContext(
            seed=seed,
            scenario=scenario,
            pop=pop,
            plan=plan,
            schedule=schedule,
            schedule_bounds=np.searchsorted(schedule.day, np.arange(plan.days + 1)),
            codes=pa.array(codes, type=pa.string()),
            other_banks=np.asarray([codes.index(c) for c in scenario.population.other_bank_codes]),
            acquirers=np.asarray(
                [codes.index(c) for c in scenario.population.other_acquirer_codes]
            ),
            merchant_ids=pa.array(pop.merchant_ids, type=pa.string()),
            account_ids=pa.array([f"BA{m + 1:07d}" for m in range(pop.size)], type=pa.string()),
            categories=pa.array([c.value for c in CATEGORIES], type=pa.string()),
            transfer_in_rate=rate,
            transfer_in_mean_fen=mean,
        )


def initial_state(ctx: AccountContext) -> AccountState:
    """Opening balances, and the turnover of the day before the window (settled on day 0)."""
    pop, plan = ctx.pop, ctx.plan
    existing = plan.onboard_day < 0
    expected = (
        pop.base_rate * plan.rhythm[:, 0] * plan.trajectory_factor[:, 0] * pop.mean_ticket_fen
    )
    turnover = np.where(existing, np.round(expected), 0).astype(np.int64)
    return AccountState(balance_fen=pop.opening_balance_fen.copy(), turnover_fen=turnover)


def fee_fen(turnover_fen: I64, mdr_ppm: int) -> I64:
    """Acquiring fee on a day's turnover, rounded half up to the fen, in integers."""
    return (turnover_fen * mdr_ppm + 500_000) // 1_000_000


def _rows(
    merchant: I64,
    second: I64,
    amount: I64,
    category: AccountCategory,
    counterparty: I64 | int = NO_COUNTERPARTY,
) -> Bookings:
    n = merchant.size
    return Bookings(
        day=np.zeros(n, dtype=np.int64),
        merchant=merchant.astype(np.int64),
        second=second.astype(np.int64),
        amount_fen=amount.astype(np.int64),
        category=np.full(n, CAT[category], dtype=np.int64),
        counterparty=np.broadcast_to(np.asarray(counterparty, dtype=np.int64), (n,)).copy(),
        bounceable=np.zeros(n, dtype=np.bool_),
        returned=np.zeros(n, dtype=np.bool_),
    )


def account_day(
    ctx: AccountContext, day: int, today: date, state: AccountState, turnover_today: I64
) -> pa.Table:
    """The day's bookings sorted by event time; updates ``state`` to the end of the day."""
    pop, plan, acc = ctx.pop, ctx.plan, ctx.scenario.accounts
    rng = rng_for(ctx.seed, STREAM_ACCOUNT, day)
    n = pop.size
    everyone = np.arange(n)
    alive = (plan.onboard_day <= day) & (day < plan.wind_down_from)
    parts: list[Bookings] = []

    settle = alive & (state.turnover_fen > 0) & (day < plan.settlement_moved_from)
    net = state.turnover_fen - fee_fen(state.turnover_fen, acc.mdr_ppm)
    who = everyone[settle]
    parts.append(
        _rows(
            who,
            3 * 3600 + rng.integers(0, 7200, who.size),
            net[who],
            AccountCategory.POS_SETTLEMENT,
        )
    )

    switched = np.flatnonzero(alive & (day > plan.switch_from))
    if switched.size:
        # The new acquirer settles what the merchant would have sold on our terminals.
        sales = (
            pop.base_rate[switched] * plan.rhythm[switched, day - 1] * pop.mean_ticket_fen[switched]
        )
        gross = np.round(sales).astype(np.int64)
        amount = gross - fee_fen(gross, acc.mdr_ppm)
        keep = amount > 0
        who = switched[keep]
        code = ctx.acquirers[pop.supplier_bank[who] % ctx.acquirers.size]
        parts.append(
            _rows(
                who,
                4 * 3600 + rng.integers(0, 3600, who.size),
                amount[keep],
                AccountCategory.TRANSFER_IN,
                code,
            )
        )

    weekday_factor = 1.0 if plan.weekday[day] < 5 else _WEEKEND_TRANSFER_FACTOR
    k = rng.poisson(ctx.transfer_in_rate * plan.account_factor[:, day] * weekday_factor * alive)
    who = np.repeat(everyone, k)
    size = ctx.transfer_in_mean_fen[who] * np.exp(
        _TRANSFER_SIGMA * rng.standard_normal(who.size) - _TRANSFER_SIGMA**2 / 2
    )
    bank = ctx.other_banks[rng.integers(0, ctx.other_banks.size, who.size)]
    parts.append(
        _rows(
            who,
            9 * 3600 + rng.integers(0, 8 * 3600, who.size),
            np.maximum(FEN_PER_CNY, np.round(size)),
            AccountCategory.TRANSFER_IN,
            bank,
        )
    )

    lo, hi = ctx.schedule_bounds[day], ctx.schedule_bounds[day + 1]
    parts.append(ctx.schedule.take(np.arange(lo, hi)))

    morning = Bookings.concat(parts)
    credits = np.bincount(morning.merchant, weights=np.maximum(morning.amount_fen, 0), minlength=n)
    debits = np.bincount(morning.merchant, weights=np.maximum(-morning.amount_fen, 0), minlength=n)
    projected = (state.balance_fen + credits - debits).astype(np.float64)
    parts.append(_top_up(ctx, day, projected, alive, rng))
    projected = projected + np.bincount(
        parts[-1].merchant, weights=parts[-1].amount_fen, minlength=n
    )
    parts.append(_spending(ctx, day, projected, alive, rng))

    booked = _book(Bookings.concat(parts), state.balance_fen, acc.returned_item_fee_cny)
    return _table(ctx, day, today, booked, state, turnover_today)


def _top_up(
    ctx: AccountContext, day: int, projected: F64, alive: B, rng: np.random.Generator
) -> Bookings:
    """After settlement moved away, the owner tops the account up from the other bank as needed."""
    pop, plan = ctx.pop, ctx.plan
    moved = alive & (day >= plan.settlement_moved_from) & (projected < 0.5 * pop.buffer_fen)
    who = np.flatnonzero(moved)
    amount = np.ceil((pop.buffer_fen[who] - projected[who]) / _MIN_PAYMENT_FEN) * _MIN_PAYMENT_FEN
    bank = ctx.other_banks[pop.supplier_bank[who] % ctx.other_banks.size]
    return _rows(
        who,
        7 * 3600 + rng.integers(0, 1800, who.size),
        amount.astype(np.int64),
        AccountCategory.TRANSFER_IN,
        bank,
    )


def _spending(
    ctx: AccountContext, day: int, projected: F64, alive: B, rng: np.random.Generator
) -> Bookings:
    """Afternoon outflows that keep the balance near the merchant's buffer."""
    pop, plan, acc = ctx.pop, ctx.plan, ctx.scenario.accounts
    n = pop.size
    since = day - plan.squeeze_from
    length = np.maximum(plan.default_day - plan.squeeze_from, 1)
    squeeze = np.clip(since / length, 0.0, 1.0)
    squeezed = (since >= 0) & (squeeze < 1.0)
    # A squeezed merchant keeps paying suppliers every working day from a cushion that is gone
    # halfway through the squeeze: from then on standing orders start to bounce.
    excess = projected - pop.buffer_fen * np.clip(1.0 - _CUSHION_SPEED * squeeze, 0.0, 1.0)
    working = plan.weekday[day] < 5
    chance = np.where(squeezed, 1.0, acc.supplier_payment_prob)
    share = np.where(squeezed, np.maximum(pop.spend_share, _SQUEEZE_SPEND_SHARE), pop.spend_share)
    pays = alive & working & (rng.random(n) < chance) & (excess > _MIN_PAYMENT_FEN)
    supplier = np.where(pays, np.floor(share * excess / FEN_PER_CNY) * FEN_PER_CNY, 0)
    left = excess - supplier
    cash_ok = alive & (rng.random(n) < acc.cash_withdrawal_prob) & (left > 10 * _MIN_PAYMENT_FEN)
    cash = np.where(
        cash_ok,
        np.minimum(np.round(0.3 * left / _MIN_PAYMENT_FEN) * _MIN_PAYMENT_FEN, _CASH_CAP_FEN),
        0,
    )
    left = left - cash
    own_ok = alive & (rng.random(n) < acc.own_transfer_prob) & (left > 10 * _MIN_PAYMENT_FEN)
    own = np.where(own_ok, np.round(0.5 * left / _MIN_PAYMENT_FEN) * _MIN_PAYMENT_FEN, 0)
    # A churned merchant empties the account into its account at another bank (资金外流).
    sweep = (plan.sweep_day == day) & (projected - supplier - cash > 0)
    own = np.where(sweep, projected - supplier - cash, own)
    seconds = 14 * 3600 + rng.integers(0, 3 * 3600, (3, n))
    parts = []
    for values, category, code, sec in (
        (
            supplier,
            AccountCategory.TRANSFER_OUT,
            ctx.other_banks[pop.supplier_bank % ctx.other_banks.size],
            seconds[0],
        ),
        (cash, AccountCategory.CASH_WITHDRAWAL, np.full(n, NO_COUNTERPARTY), seconds[1]),
        (
            own,
            AccountCategory.TRANSFER_OWN_OTHER_BANK,
            ctx.other_banks[(pop.supplier_bank + 1) % ctx.other_banks.size],
            seconds[2],
        ),
    ):
        who = np.flatnonzero(values > 0)
        parts.append(
            _rows(who, sec[who], -np.round(values[who]).astype(np.int64), category, code[who])
        )
    return Bookings.concat(parts)


def _running(merchant: I64, amount: I64, opening: I64) -> I64:
    """Balance after each booking; rows are sorted by merchant, then time."""
    total = np.cumsum(amount)
    first = (
        np.flatnonzero(np.r_[True, merchant[1:] != merchant[:-1]]) if merchant.size else merchant
    )
    lengths = np.diff(np.r_[first, merchant.size])
    before = np.repeat(total[first] - amount[first], lengths)
    return opening[merchant] + total - before


def _book(rows: Bookings, opening: I64, returned_fee_cny: float) -> tuple[Bookings, I64]:
    """Order by merchant and time, bounce debits that would overdraw, and compute balances.

    A standing order or direct debit (payroll, tax, utility, another lender's instalment) that
    takes the balance below zero is booked, then booked back as ``returned_item`` a minute later,
    with a fee: bounced items are a credit-stress signal. Collections of our own POS loan on a
    missed due date always bounce. Bounces are decided in passes until none is added.
    """
    fee = round(returned_fee_cny * FEN_PER_CNY)
    bounced = rows.returned.copy()
    while True:
        extra = rows.take(np.flatnonzero(bounced))
        back = Bookings(
            extra.day,
            extra.merchant,
            extra.second + _RETURN_LAG,
            -extra.amount_fen,
            np.full(len(extra), CAT[AccountCategory.RETURNED_ITEM]),
            extra.counterparty,
            np.zeros(len(extra), np.bool_),
            np.zeros(len(extra), np.bool_),
        )
        fees = _rows(
            extra.merchant, extra.second + _FEE_LAG, np.full(len(extra), -fee), AccountCategory.FEE
        )
        allrows = Bookings.concat([rows, back, fees]) if fee else Bookings.concat([rows, back])
        order = np.lexsort((np.arange(len(allrows)), allrows.second, allrows.merchant))
        allrows = allrows.take(order)
        balance = _running(allrows.merchant, allrows.amount_fen, opening)
        head = order < len(rows)  # rows of the original bookings, not returns or fees
        failing = np.zeros(len(rows), dtype=np.bool_)
        failing[order[head]] = allrows.bounceable[head] & (balance[head] < 0)
        new = failing & ~bounced
        if not new.any():
            return allrows, balance
        bounced |= new


def _table(
    ctx: AccountContext,
    day: int,
    today: date,
    booked: tuple[Bookings, I64],
    state: AccountState,
    turnover_today: I64,
) -> pa.Table:
    rows, balance = booked
    if len(rows):
        last = np.r_[rows.merchant[1:] != rows.merchant[:-1], True]
        state.balance_fen[rows.merchant[last]] = balance[last]
    state.turnover_fen = turnover_today
    order = np.lexsort((np.arange(len(rows)), rows.merchant, rows.second))
    rows, balance = rows.take(order), balance[order]
    codes = ctx.codes.take(pa.array(rows.counterparty, type=pa.int64(), mask=rows.counterparty < 0))
    return pa.Table.from_arrays(
        [
            numbered(f"A{today:%Y%m%d}", np.arange(len(rows)), 8),
            pick(ctx.account_ids, rows.merchant),
            pick(ctx.merchant_ids, rows.merchant),
            timestamps(ctx.plan.day_start_utc[day] + rows.second),
            pick(_DIRECTIONS, (rows.amount_fen < 0).astype(np.int64)),
            pa.array(np.abs(rows.amount_fen), type=pa.int64()),
            pa.array(balance, type=pa.int64()),
            pick(ctx.categories, rows.category),
            codes,
        ],
        schema=ACCOUNT_SCHEMA,
    )
