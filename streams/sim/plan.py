"""The daily plan: every merchant-day's expected trade, drawn counts and trajectory phases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from streams.sim import calendar
from streams.sim.population import STREAM_PLAN, Population, rng_for
from streams.sim.scenario import Scenario

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

#: Turnover left during a Spring Festival closure: "near zero", a stray sale can happen.
FESTIVAL_CLOSURE_LEVEL = 0.02
#: Inflating transactions per day on the owner's cards (Poisson mean).
INFLATION_TXNS_PER_DAY = 3.0
#: Days after the last sale when a churned merchant sweeps its balance to another bank.
SWEEP_AFTER_CHURN_DAYS = (3, 10)
#: Days after the sweep when the account falls silent (standing orders cancelled).
WIND_DOWN_AFTER_SWEEP_DAYS = 1
#: Share of customer transfers still arriving on the account of a dormant merchant.
DORMANT_ACCOUNT_ACTIVITY = 0.3


@dataclass(frozen=True, slots=True)
class Plan:
    """Matrices are (merchants, days); per-merchant day numbers equal ``days`` for "never"."""

    start: date
    days: int
    day_start_utc: I64
    weekday: I64
    rhythm: F32
    trajectory_factor: F32
    approved: I32
    declined: I32
    refund: I32
    chargeback: I32
    reversal: I32
    inflated: I32
    inflated_ticket_fen: I64
    account_factor: F32
    onboard_day: I64
    switch_from: I64
    settlement_moved_from: I64
    sweep_day: I64
    wind_down_from: I64
    squeeze_from: I64
    default_day: I64

    def date(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def approved_with_inflation(self) -> I32:
        return self.approved + self.inflated


def industry_rhythm(scenario: Scenario) -> F64:
    """Expected-trade multiplier per (industry, day) of the window, before merchant habits."""
    pop = scenario.population
    start, days = pop.start, pop.days
    weekday = calendar.weekdays(start, days)
    month_end = calendar.month_end_mask(start, days)
    payday = calendar.payday_mask(start, days, pop.paydays)
    offsets = calendar.festival_offsets(start, days)
    rows = []
    for _, cfg in scenario.industries.ordered():
        profile = np.asarray(cfg.weekday_profile, dtype=np.float64)
        row = (profile / profile.mean())[weekday]
        row = row * np.where(month_end, cfg.month_end_factor, 1.0)
        row = row * np.where(payday, cfg.payday_factor, 1.0)
        row = row * calendar.festival_open_factor(
            offsets, cfg.spring_festival_peak, cfg.spring_festival_dip
        )
        peaks = [(p.day_of_year, p.width_days, p.extra) for p in cfg.harvest_peaks]
        if peaks or cfg.harvest_base != 1.0:
            row = row * calendar.harvest_factor(start, days, cfg.harvest_base, peaks)
        rows.append(row)
    return np.stack(rows)


def build_plan(scenario: Scenario, pop: Population, seed: int) -> Plan:
    """Draw the daily counts of every merchant from its rhythms and trajectory."""
    rng = rng_for(seed, STREAM_PLAN)
    start, days, n = scenario.population.start, scenario.population.days, pop.size
    weekday = calendar.weekdays(start, days)
    offsets = calendar.festival_offsets(start, days)

    rhythm = industry_rhythm(scenario).astype(np.float32)[pop.industry]
    rhythm[pop.closed_weekday[:, None] == weekday[None, :]] = 0.0
    rel = offsets[None, :] - pop.festival_close_from[:, None]
    closed = pop.festival_closes[:, None] & (rel >= 0) & (rel < pop.festival_close_days[:, None])
    rhythm[closed] *= FESTIVAL_CLOSURE_LEVEL
    shape = scenario.population.daily_noise_shape
    rhythm *= rng.gamma(shape, 1.0 / shape, size=(n, days)).astype(np.float32)

    phases = _phases(pop, days, rng)
    factor = _trajectory_factor(pop, days)
    expected = pop.base_rate[:, None].astype(np.float32) * rhythm * factor
    configs = [cfg for _, cfg in scenario.industries.ordered()]
    rates = {
        name: np.asarray([getattr(c, name) for c in configs], dtype=np.float32)[pop.industry]
        for name in ("decline_rate", "refund_rate", "chargeback_rate", "reversal_rate")
    }
    approved = rng.poisson(expected).astype(np.int32)
    # Declines happen on attempts (expected trade); refunds and chargebacks follow sales.
    declined = rng.poisson(expected * rates["decline_rate"][:, None]).astype(np.int32)
    refund = rng.poisson(approved * rates["refund_rate"][:, None]).astype(np.int32)
    chargeback = rng.poisson(approved * rates["chargeback_rate"][:, None]).astype(np.int32)
    reversal = rng.poisson(approved * rates["reversal_rate"][:, None]).astype(np.int32)

    inflated, inflated_ticket = _inflation(pop, days, rng)
    return Plan(
        start=start,
        days=days,
        day_start_utc=calendar.day_starts_utc(start, days, scenario.population.timezone),
        weekday=weekday,
        rhythm=rhythm,
        trajectory_factor=factor,
        approved=approved,
        declined=declined,
        refund=refund,
        chargeback=chargeback,
        reversal=reversal,
        inflated=inflated,
        inflated_ticket_fen=inflated_ticket,
        account_factor=_account_factor(pop, factor, phases, days),
        **phases,
    )


def _day_grid(pop: Population, days: int) -> I64:
    """Days since each merchant's onset: (merchants, days)."""
    return np.arange(days, dtype=np.int64)[None, :] - pop.onset[:, None]


def _trajectory_factor(pop: Population, days: int) -> F32:
    n = pop.size
    factor = np.ones((n, days), dtype=np.float32)
    since = _day_grid(pop, days)
    length = np.maximum(pop.duration, 1)[:, None]
    progress = np.clip(since / length, 0.0, 1.0)

    def put(name: str, values: npt.NDArray[np.floating]) -> None:
        rows = pop.has(name)
        factor[rows] = values[rows]

    put("seasonal", np.where((since >= 0) & (since < length), 0.0, 1.0))
    put("growth", 1.0 + pop.strength[:, None] * progress)
    decline = np.where(since < 0, 1.0, pop.strength[:, None] ** progress)
    put("decline_churn", np.where(since >= length, 0.0, decline))
    put("acquirer_switch", np.where(since >= 0, 0.0, 1.0))
    put("dormant", np.where(since >= 0, 0.0, 1.0))
    put("dormant_reactivated", np.where((since >= 0) & (since < length), 0.0, 1.0))
    put("credit_default", 1.0 - pop.strength[:, None] * progress)
    ramp = np.minimum(1.0, 0.3 + 0.7 * progress)
    put("new_merchant", np.where(since < 0, 0.0, ramp))
    return factor


def _phases(pop: Population, days: int, rng: np.random.Generator) -> dict[str, I64]:
    never = np.full(pop.size, days, dtype=np.int64)
    onset, end = pop.onset, pop.onset + pop.duration
    churn = pop.has("decline_churn")
    sweep = np.where(churn, end + rng.integers(*SWEEP_AFTER_CHURN_DAYS, size=pop.size), days)
    return {
        "onboard_day": np.where(pop.has("new_merchant"), onset, np.minimum(onset, 0) - 1),
        "switch_from": np.where(pop.has("acquirer_switch"), onset, never),
        "settlement_moved_from": np.where(pop.has("settlement_moved"), onset, never),
        "sweep_day": np.minimum(sweep, days),
        "wind_down_from": np.where(
            churn, np.minimum(sweep + WIND_DOWN_AFTER_SWEEP_DAYS, days), days
        ),
        "squeeze_from": np.where(pop.has("credit_default"), onset, never),
        "default_day": np.where(pop.has("credit_default"), end, never),
    }


def _account_factor(pop: Population, factor: F32, phases: dict[str, I64], days: int) -> F32:
    """Activity of customer transfers into the account, following the merchant's fortunes."""
    out = np.ones_like(factor)
    since = _day_grid(pop, days)
    day = np.arange(days)[None, :]
    churn = pop.has("decline_churn")
    out[churn] = factor[churn]
    dormant = pop.has("dormant")
    out[dormant] = np.where(since[dormant] >= 0, DORMANT_ACCOUNT_ACTIVITY, 1.0)
    squeeze = pop.has("credit_default")
    progress = np.clip(since / np.maximum(pop.duration, 1)[:, None], 0.0, 1.0)
    out[squeeze] = (1.0 - 0.6 * progress)[squeeze]
    out[day < phases["onboard_day"][:, None]] = 0.0
    out[day >= phases["wind_down_from"][:, None]] = 0.0
    return out


def _inflation(pop: Population, days: int, rng: np.random.Generator) -> tuple[I32, I64]:
    since = _day_grid(pop, days)
    active = pop.has("inflated_turnover")[:, None] & (since >= 0) & (since < pop.duration[:, None])
    counts = np.where(active, rng.poisson(INFLATION_TXNS_PER_DAY, size=active.shape), 0)
    # Round sums of a few thousand yuan: sized so that the merchant's turnover grows by
    # ``strength`` times its normal level while the inflation lasts.
    raw = pop.strength * pop.base_rate * pop.mean_ticket_fen / INFLATION_TXNS_PER_DAY
    ticket: I64 = np.maximum(100_00, np.round(raw / 100_00) * 100_00).astype(np.int64)
    return counts.astype(np.int32), ticket
