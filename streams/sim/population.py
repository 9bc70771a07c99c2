"""The merchant population: who each merchant is, its size, habits and trajectory (vectorised)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from schemas.common import FEN_PER_CNY
from schemas.inputs import Industry
from streams.sim.scenario import TRAJECTORIES, Scenario

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

INDUSTRIES: tuple[Industry, ...] = tuple(Industry)
TRAJ = {name: code for code, name in enumerate(TRAJECTORIES)}

#: Extra card tokens reserved per merchant for turnover inflated on the owner's own cards.
INFLATION_CARDS = 3
#: Spread (lognormal sigma) of merchants' median tickets around the industry's median.
_TICKET_SPREAD = 0.5
#: Random stream ids: every part of the simulation draws from its own stream, so changing one
#: part (say, account flows) leaves the numbers drawn by the others unchanged.
STREAM_POPULATION, STREAM_PLAN, STREAM_POS, STREAM_ACCOUNT = 1, 2, 3, 4

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_SHOP_WORDS: dict[Industry, tuple[str, ...]] = {
    Industry.WHOLESALE_RETAIL: ("商行", "超市", "便利店", "五金店", "百货"),
    Industry.MANUFACTURING: ("加工厂", "机械厂", "五金制品厂", "包装厂"),
    Industry.CATERING: ("餐馆", "面馆", "小吃店", "火锅店", "饭店"),
    Industry.OTHER_SERVICES: ("美发店", "洗衣店", "汽修店", "培训中心", "摄影工作室"),
    Industry.AGRICULTURE: ("农资店", "种子站", "粮油加工坊", "茶叶合作社"),
}


def rng_for(seed: int, stream: int, *key: int) -> np.random.Generator:
    """An independent generator for one part (and e.g. one day) of the simulation."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, *key)))
    )


@dataclass(frozen=True, slots=True)
class Population:
    """Per-merchant attributes as arrays indexed by merchant number (0 .. merchants-1)."""

    merchant_ids: list[str]
    names: list[str]
    industry: I64
    region: I64
    grid: I64
    manager: I64
    mcc: list[str]
    terminals: I64
    onboarding: list[date]
    trajectory: I64
    onset: I64
    duration: I64
    strength: F64
    base_rate: F64
    ticket_median_fen: F64
    ticket_sigma: F64
    mean_ticket_fen: F64
    monthly_pos_fen: F64
    monthly_revenue_fen: F64
    card_pool: I64
    card_offset: I64
    closed_weekday: I64
    festival_closes: B
    festival_close_from: I64
    festival_close_days: I64
    buffer_fen: F64
    opening_balance_fen: I64
    payroll_fen: I64
    payroll_day: I64
    tax_share: F64
    tax_quarterly: B
    utility_fen: I64
    utility_day: I64
    other_loan_fen: I64
    other_loan_day: I64
    other_lender: I64
    supplier_bank: I64
    spend_share: F64

    @property
    def size(self) -> int:
        return len(self.merchant_ids)

    def has(self, trajectory: str) -> B:
        return np.asarray(self.trajectory == TRAJ[trajectory], dtype=np.bool_)


def assign_trajectories(scenario: Scenario, rng: np.random.Generator) -> I64:
    """Exact counts per trajectory (largest remainder), in random order over merchants."""
    n = scenario.population.merchants
    shares = np.array([getattr(scenario.trajectories, t).share for t in TRAJECTORIES])
    exact = shares * n
    counts = np.floor(exact).astype(np.int64)
    remainder = n - int(counts.sum())
    # Ties broken by trajectory order, so the counts do not depend on float noise.
    order = np.lexsort((np.arange(len(shares)), -(exact - counts)))
    counts[order[:remainder]] += 1
    codes = np.repeat(np.arange(len(shares), dtype=np.int64), counts)
    return rng.permutation(codes)


def _per_industry(values: list[float], industry: I64) -> F64:
    return np.asarray(values, dtype=np.float64)[industry]


def build_population(scenario: Scenario, seed: int) -> Population:
    """Draw every merchant's attributes from the scenario with the seed's population stream."""
    rng = rng_for(seed, STREAM_POPULATION)
    pop, acc = scenario.population, scenario.accounts
    n = pop.merchants
    configs = [cfg for _, cfg in scenario.industries.ordered()]
    industry = rng.choice(len(configs), size=n, p=[c.share for c in configs]).astype(np.int64)
    trajectory = assign_trajectories(scenario, rng)
    onset, duration, strength = _trajectory_timing(scenario, trajectory, rng)

    base_rate = _per_industry([c.txns_per_day for c in configs], industry) * np.exp(
        _per_industry([c.txns_per_day_sigma for c in configs], industry) * rng.standard_normal(n)
    )
    ticket_median = _per_industry([c.ticket_cny * FEN_PER_CNY for c in configs], industry) * np.exp(
        _TICKET_SPREAD * rng.standard_normal(n)
    )
    ticket_sigma = _per_industry([c.ticket_sigma for c in configs], industry)
    mean_ticket = ticket_median * np.exp(ticket_sigma**2 / 2)
    monthly_pos = base_rate * 30.0 * mean_ticket
    monthly_revenue = monthly_pos / _per_industry(
        [c.pos_share_of_revenue for c in configs], industry
    )

    card_pool = np.maximum(5, np.ceil(base_rate * pop.card_pool_days)).astype(np.int64)
    card_offset = np.concatenate(([0], np.cumsum(card_pool + INFLATION_CARDS)[:-1])).astype(
        np.int64
    )
    quietest = np.array([int(np.argmin(c.weekday_profile)) for c in configs], dtype=np.int64)
    closes_weekly = rng.random(n) < _per_industry(
        [c.closed_weekday_share for c in configs], industry
    )
    festival_closes = rng.random(n) < _per_industry(
        [c.spring_festival_closure_share for c in configs], industry
    )

    start = pop.start
    onboarding_offset = -rng.integers(120, 3000, size=n)
    new = trajectory == TRAJ["new_merchant"]
    onboarding_offset[new] = onset[new]

    buffer = _uniform(rng, acc.buffer_months, n) * monthly_revenue
    opening = np.where(new, 0, np.round(buffer * rng.uniform(0.8, 1.6, n))).astype(np.int64)
    payroll = _round_cny(_uniform(rng, acc.payroll_share, n) * monthly_revenue, 100)
    utility = _round_cny(_uniform(rng, acc.utility_share, n) * monthly_revenue, 1)
    has_other = rng.random(n) < acc.other_lender_share
    other_loan = np.where(
        has_other,
        _round_cny(_uniform(rng, acc.other_lender_installment, n) * monthly_revenue, 1),
        0,
    ).astype(np.int64)

    names, mccs = _names_and_mccs(scenario, industry, rng)
    region = rng.integers(0, len(pop.regions), size=n)
    return Population(
        merchant_ids=[f"M{i:07d}" for i in range(1, n + 1)],
        names=names,
        industry=industry,
        region=region,
        grid=rng.integers(0, pop.grids_per_region, size=n),
        manager=rng.integers(0, pop.managers_per_grid, size=n),
        mcc=mccs,
        terminals=1 + (rng.random(n) < 0.3) + (rng.random(n) < 0.1),
        onboarding=[start + timedelta(days=int(o)) for o in onboarding_offset],
        trajectory=trajectory,
        onset=onset,
        duration=duration,
        strength=strength,
        base_rate=base_rate,
        ticket_median_fen=ticket_median,
        ticket_sigma=ticket_sigma,
        mean_ticket_fen=mean_ticket,
        monthly_pos_fen=monthly_pos,
        monthly_revenue_fen=monthly_revenue,
        card_pool=card_pool,
        card_offset=card_offset,
        closed_weekday=np.where(closes_weekly, quietest[industry], -1),
        festival_closes=festival_closes,
        festival_close_from=-rng.integers(1, 8, size=n),
        festival_close_days=rng.integers(14, 29, size=n),
        buffer_fen=buffer,
        opening_balance_fen=opening,
        payroll_fen=payroll,
        payroll_day=rng.choice(np.asarray(acc.payroll_days, dtype=np.int64), size=n),
        tax_share=_uniform(rng, acc.tax_share, n),
        tax_quarterly=rng.random(n) < acc.quarterly_tax_share,
        utility_fen=utility,
        utility_day=rng.integers(18, 29, size=n),
        other_loan_fen=other_loan,
        other_loan_day=rng.integers(1, 29, size=n),
        other_lender=rng.integers(0, len(pop.lender_codes), size=n),
        supplier_bank=rng.integers(0, len(pop.other_bank_codes), size=n),
        spend_share=_uniform(rng, acc.spend_share, n),
    )


def _trajectory_timing(
    scenario: Scenario, trajectory: I64, rng: np.random.Generator
) -> tuple[I64, I64, F64]:
    days = scenario.population.days
    n = len(trajectory)
    onset = np.zeros(n, dtype=np.int64)
    duration = np.zeros(n, dtype=np.int64)
    strength = np.zeros(n, dtype=np.float64)
    for code, name in enumerate(TRAJECTORIES):
        cfg = getattr(scenario.trajectories, name)
        idx = np.flatnonzero(trajectory == code)
        lo, hi = cfg.onset
        # At least one day of normal trade before any onset, so every merchant has a history.
        onset[idx] = np.clip(np.floor(rng.uniform(lo, hi, idx.size) * days), 1, max(days - 1, 1))
        duration[idx] = rng.integers(cfg.duration_days[0], cfg.duration_days[1] + 1, idx.size)
        strength[idx] = rng.uniform(cfg.strength[0], cfg.strength[1], idx.size)
    # A POS loan falls due on day 1-28 of a month: a default planned for the 29th-31st moves
    # back to the 28th, so that the first missed repayment is exactly onset + duration.
    start = scenario.population.start
    for i in np.flatnonzero(trajectory == TRAJ["credit_default"]).tolist():
        dom = (start + timedelta(days=int(onset[i] + duration[i]))).day
        if dom > 28:
            duration[i] -= dom - 28
    return onset, duration, strength


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> F64:
    return rng.uniform(bounds[0], bounds[1], n)


def _round_cny(fen: F64, cny: int) -> I64:
    """Round an amount in fen to whole multiples of ``cny`` yuan (payroll is paid in round sums)."""
    step = cny * FEN_PER_CNY
    return np.maximum(step, np.round(fen / step) * step).astype(np.int64)


def _names_and_mccs(
    scenario: Scenario, industry: I64, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    configs = [cfg for _, cfg in scenario.industries.ordered()]
    surname = rng.integers(0, len(_SURNAMES), size=industry.size)
    word = rng.integers(0, 1_000_000, size=industry.size)
    mcc_pick = rng.integers(0, 1_000_000, size=industry.size)
    names, mccs = [], []
    for i, code in enumerate(industry.tolist()):
        words = _SHOP_WORDS[INDUSTRIES[code]]
        names.append(f"{_SURNAMES[surname[i]]}记{words[word[i] % len(words)]}")
        options = configs[code].mcc
        mccs.append(options[mcc_pick[i] % len(options)])
    return names, mccs


def add_months(day: date, months: int, day_of_month: int) -> date:
    """The date ``months`` calendar months from ``day``'s month, on ``day_of_month`` (<= 28)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, day_of_month)
