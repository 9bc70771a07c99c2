"""Rhythms that must not look like trouble: weekdays, month end, festival, harvest."""

from __future__ import annotations

from datetime import date
from functools import cache

import numpy as np
import pytest

from detectors.evaluation import DailySeries
from schemas.inputs import Industry
from streams.evaluate import daily_series
from streams.sim import Scenario, Simulation, simulate
from streams.sim.calendar import SPRING_FESTIVAL, harvest_factor
from streams.sim.plan import industry_rhythm

INDUSTRY_CODE = {industry: code for code, industry in enumerate(Industry)}


@cache
def _stable() -> tuple[Simulation, DailySeries, dict[Industry, np.ndarray]]:
    """Approved turnover of stable merchants by industry (merchants x days)."""
    simulation = simulate(Scenario.default().resized(merchants=600, days=60), 9)
    series = daily_series(simulation)
    profiles = {p.merchant_id: p for p in simulation.profiles}
    amount = series.column("pos_approved_amount_fen")
    by_industry = {}
    for industry in Industry:
        rows = [
            i
            for i, lab in enumerate(simulation.labels)
            if lab.trajectory == "stable" and profiles[lab.merchant_id].industry == industry
        ]
        by_industry[industry] = amount[rows]
    return simulation, series, by_industry


def _weekday_profile(industry: Industry) -> np.ndarray:
    """Mean turnover per weekday (Monday first) over the four weeks before the festival run-up."""
    simulation, _, by_industry = _stable()
    days = 28
    totals = by_industry[industry][:, :days].sum(axis=0)
    weekday = (np.arange(days) + simulation.start.weekday()) % 7
    profile = np.array([totals[weekday == k].mean() for k in range(7)])
    return profile / profile.mean()


def test_weekday_profile_differs_per_industry() -> None:
    catering = _weekday_profile(Industry.CATERING)
    manufacturing = _weekday_profile(Industry.MANUFACTURING)
    # Restaurants do their best trade at the weekend, workshops on working days.
    assert catering[5:].mean() > 1.15 * catering[:5].mean()
    assert manufacturing[:5].mean() > 2.0 * manufacturing[5:].mean()
    assert catering[5] > catering[0]
    assert manufacturing[6] < 0.5 * manufacturing[0]


def test_spring_festival_dip_and_pre_festival_peak() -> None:
    simulation, _, by_industry = _stable()
    festival = (SPRING_FESTIVAL[2026] - simulation.start).days
    everyone = np.concatenate(list(by_industry.values())).sum(axis=0)
    january = everyone[:21].mean()
    assert everyone[festival : festival + 7].mean() < 0.5 * january
    retail = by_industry[Industry.WHOLESALE_RETAIL].sum(axis=0)
    assert retail[festival - 12 : festival - 2].mean() > 1.15 * retail[:21].mean()
    manufacturing = by_industry[Industry.MANUFACTURING].sum(axis=0)
    assert manufacturing[festival : festival + 7].mean() < 0.1 * manufacturing[:21].mean()


def test_month_end_and_payday_peaks() -> None:
    scenario = Scenario.default().resized(days=60)
    rhythm = industry_rhythm(scenario)
    start = scenario.population.start
    # 2026-01-27 and 2026-01-29 are both a Tuesday and a Thursday away from the 20th/22nd.
    month_end = (date(2026, 1, 29) - start).days
    mid_month = (date(2026, 1, 22) - start).days
    manufacturing = rhythm[INDUSTRY_CODE[Industry.MANUFACTURING]]
    assert manufacturing[month_end] == pytest.approx(1.4 * manufacturing[mid_month])
    payday = (date(2026, 1, 15) - start).days
    before = (date(2026, 1, 8) - start).days
    retail = rhythm[INDUSTRY_CODE[Industry.WHOLESALE_RETAIL]]
    assert retail[payday] == pytest.approx(1.12 * retail[before])


def test_harvest_seasons_lift_agricultural_trade() -> None:
    factor = harvest_factor(date(2026, 1, 1), 365, 0.7, [(165, 18, 0.8), (280, 25, 1.1)])
    assert factor[164] > 1.4
    assert factor[279] > 1.7
    assert factor[60] == pytest.approx(0.7, abs=0.01)
    scenario = Scenario.default().starting(date(2026, 3, 1)).resized(days=240)
    agriculture = industry_rhythm(scenario)[INDUSTRY_CODE[Industry.AGRICULTURE]]
    june = (date(2026, 6, 15) - date(2026, 3, 1)).days
    march = (date(2026, 3, 16) - date(2026, 3, 1)).days
    assert agriculture[june - 3 : june + 4].mean() > 1.5 * agriculture[march - 3 : march + 4].mean()


def test_card_mix_and_tickets_follow_the_industry() -> None:
    simulation = _stable()[0]
    pos = simulation.table("pos.transactions.v1").to_pydict()
    profiles = {p.merchant_id: p.industry for p in simulation.profiles}
    tickets: dict[Industry, list[int]] = {i: [] for i in Industry}
    for merchant, kind, amount in zip(
        pos["merchant_id"], pos["kind"], pos["amount_fen"], strict=True
    ):
        if kind == "approved":
            tickets[profiles[merchant]].append(amount)
    assert np.median(tickets[Industry.MANUFACTURING]) > 5 * np.median(tickets[Industry.CATERING])
    assert set(pos["card_type"]) <= {"debit", "credit", "prepaid"}
    assert all(token.startswith("tk") and not token.isdigit() for token in pos["card_token"][:1000])
