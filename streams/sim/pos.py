"""One day of POS acquiring transactions for the whole population, vectorised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from schemas.common import FEN_PER_CNY
from schemas.inputs import CardType, Channel, PosKind
from streams.sim.arrow import POS_SCHEMA, numbered, pick, timestamps
from streams.sim.plan import Plan
from streams.sim.population import INFLATION_CARDS, STREAM_POS, Population, rng_for
from streams.sim.scenario import Scenario

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

KINDS: tuple[PosKind, ...] = (
    PosKind.APPROVED,
    PosKind.DECLINED,
    PosKind.REFUND,
    PosKind.CHARGEBACK,
    PosKind.REVERSAL,
)
CARD_TYPES: tuple[CardType, ...] = (CardType.DEBIT, CardType.CREDIT, CardType.PREPAID)
CHANNELS: tuple[Channel, ...] = tuple(Channel)
_MIN_TICKET_FEN = 1 * FEN_PER_CNY
#: Inflating transactions are keyed in late in the evening, in round sums, on credit cards.
_INFLATION_HOURS = (20, 23)
_INFLATION_STEPS = np.array([0.8, 0.9, 1.0, 1.1, 1.2])
_CNY = pa.array(["CNY"], type=pa.string())


@dataclass(frozen=True, slots=True)
class PosContext:
    """What every day's generation needs, computed once per simulation."""

    seed: int
    pop: Population
    plan: Plan
    hour_cdf: F64
    card_cdf: F64
    channel_cdf: F64
    merchant_ids: pa.Array
    terminal_ids: pa.Array
    mccs: pa.Array
    kinds: pa.Array
    card_types: pa.Array
    channels: pa.Array
    skew: float

    @staticmethod
    def build(scenario: Scenario, pop: Population, plan: Plan, seed: int) -> PosContext:
        configs = [cfg for _, cfg in scenario.industries.ordered()]
        terminals = [f"T{m + 1:07d}-{k + 1}" for m in range(pop.size) for k in range(3)]
        return PosContext(
            seed=seed,
            pop=pop,
            plan=plan,
            hour_cdf=_stacked_cdf([c.hourly_profile for c in configs]),
            card_cdf=_stacked_cdf(
                [[c.card_mix.debit, c.card_mix.credit, c.card_mix.prepaid] for c in configs]
            ),
            channel_cdf=_stacked_cdf(
                [[getattr(c.channel_mix, ch.value) for ch in CHANNELS] for c in configs]
            ),
            merchant_ids=pa.array(pop.merchant_ids, type=pa.string()),
            terminal_ids=pa.array(terminals, type=pa.string()),
            mccs=pa.array(pop.mcc, type=pa.string()),
            kinds=pa.array([k.value for k in KINDS], type=pa.string()),
            card_types=pa.array([c.value for c in CARD_TYPES], type=pa.string()),
            channels=pa.array([c.value for c in CHANNELS], type=pa.string()),
            skew=scenario.population.card_repeat_skew,
        )


def _stacked_cdf(weights: list[list[float]] | list[tuple[float, ...]]) -> F64:
    """Cumulative distributions of several categoricals laid end to end: row i spans (i, i+1]."""
    rows = []
    for i, w in enumerate(weights):
        p = np.asarray(w, dtype=np.float64)
        cdf = np.cumsum(p / p.sum())
        cdf[-1] = 1.0
        rows.append(cdf + i)
    return np.concatenate(rows)


def _draw(cdf: F64, group: I64, width: int, rng: np.random.Generator) -> I64:
    """One categorical draw per row from the distribution of the row's group."""
    u = rng.random(group.size) + group
    return np.searchsorted(cdf, u, side="right").astype(np.int64) - group * width


def _mix64(x: I64) -> npt.NDArray[np.uint64]:
    """SplitMix64 finaliser: a fixed pseudo-random value per card, the same every day."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def pos_day(ctx: PosContext, day: int, today: date) -> tuple[pa.Table, I64]:
    """The day's POS transactions sorted by event time, and approved turnover per merchant."""
    pop, plan = ctx.pop, ctx.plan
    rng = rng_for(ctx.seed, STREAM_POS, day)
    everyone = np.arange(pop.size)
    counts = [
        plan.approved[:, day],
        plan.declined[:, day],
        plan.refund[:, day],
        plan.chargeback[:, day],
        plan.reversal[:, day],
        plan.inflated[:, day],
    ]
    merchant = np.concatenate([np.repeat(everyone, c) for c in counts])
    # The inflating transactions (last group) are approved sales like any other.
    codes = (0, 1, 2, 3, 4, 0)
    kind = np.concatenate([np.full(int(c.sum()), k) for k, c in zip(codes, counts, strict=True)])
    inflated = np.zeros(merchant.size, dtype=np.bool_)
    inflated[merchant.size - int(counts[-1].sum()) :] = True
    n = merchant.size
    industry = pop.industry[merchant]

    hour = _draw(ctx.hour_cdf, industry, 24, rng)
    second = hour * 3600 + rng.integers(0, 3600, n)
    amount = np.exp(
        np.log(pop.ticket_median_fen[merchant])
        + pop.ticket_sigma[merchant] * rng.standard_normal(n)
    )
    amount = np.where(kind == 2, amount * rng.uniform(0.2, 1.0, n), amount)  # partial refunds
    amount = np.maximum(_MIN_TICKET_FEN, np.round(amount)).astype(np.int64)
    pool = pop.card_pool[merchant]
    card = pop.card_offset[merchant] + np.floor(pool * rng.random(n) ** ctx.skew).astype(np.int64)
    # A card keeps its type: drawn from a hash of the token, not afresh per transaction.
    unit = (_mix64(card) >> np.uint64(11)).astype(np.float64) / 2.0**53
    card_type = np.searchsorted(ctx.card_cdf, unit + industry, side="right") - industry * 3
    channel = _draw(ctx.channel_cdf, industry, len(CHANNELS), rng)
    terminal = merchant * 3 + np.floor(rng.random(n) * pop.terminals[merchant]).astype(np.int64)

    if inflated.any():
        who = merchant[inflated]
        k = int(inflated.sum())
        second[inflated] = _INFLATION_HOURS[0] * 3600 + rng.integers(
            0, 3600 * (_INFLATION_HOURS[1] - _INFLATION_HOURS[0]), k
        )
        steps = _INFLATION_STEPS[rng.integers(0, _INFLATION_STEPS.size, k)]
        amount[inflated] = (
            np.round(plan.inflated_ticket_fen[who] * steps / 100_00) * 100_00
        ).astype(np.int64)
        card[inflated] = (
            pop.card_offset[who] + pop.card_pool[who] + rng.integers(0, INFLATION_CARDS, k)
        )
        card_type[inflated] = CARD_TYPES.index(CardType.CREDIT)
        channel[inflated] = CHANNELS.index(Channel.CHIP)

    order = np.lexsort((np.arange(n), merchant, second))
    merchant, second, amount = merchant[order], second[order], amount[order]
    approved = kind[order] == 0
    turnover = np.bincount(merchant[approved], weights=amount[approved], minlength=pop.size)
    table = pa.Table.from_arrays(
        [
            numbered(f"P{today:%Y%m%d}", np.arange(n), 9),
            pick(ctx.merchant_ids, merchant),
            pick(ctx.terminal_ids, terminal[order]),
            timestamps(plan.day_start_utc[day] + second),
            pa.array(amount, type=pa.int64()),
            pick(_CNY, np.zeros(n, dtype=np.int64)),
            pick(ctx.kinds, kind[order]),
            numbered("tk", card[order], 10),
            pick(ctx.card_types, card_type[order]),
            pick(ctx.channels, channel[order]),
            pick(ctx.mccs, merchant),
        ],
        schema=POS_SCHEMA,
    )
    return table, np.round(turnover).astype(np.int64)
