"""The simulation engine: builds the population and plan, then yields the events day by day."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pyarrow as pa

from detectors.evaluation import Label
from schemas import topics
from streams.sim.account import AccountContext, account_day, initial_state
from streams.sim.labels import build_labels
from streams.sim.loans import build_loans, loan_rows
from streams.sim.plan import build_plan
from streams.sim.population import build_population
from streams.sim.pos import PosContext, pos_day
from streams.sim.reference import loan_event_rows, profile_rows
from streams.sim.scenario import Scenario
from streams.sim.schedule import build_schedule

log = logging.getLogger(__name__)

#: One day of events: topic name -> rows of that day sorted by event time.
DayBatch = dict[str, pa.Table]


class Engine:
    """Everything decided up front (population, daily plan, loans, schedules, labels); the
    transactions themselves are drawn one day at a time, so memory stays bounded by a day.

    Every random draw comes from a stream keyed by (seed, part, day): the same scenario and
    seed give the same events, however they are consumed.
    """

    def __init__(self, scenario: Scenario, seed: int) -> None:
        if seed < 0:
            raise ValueError("seed must be >= 0")
        self.scenario = scenario
        self.seed = seed
        pop = build_population(scenario, seed)
        plan = build_plan(scenario, pop, seed)
        loans = build_loans(scenario, pop, plan, seed)
        rows = loan_rows(loans, plan)
        schedule = build_schedule(scenario, pop, plan, rows, seed)
        self.population, self.plan = pop, plan
        self._pos = PosContext.build(scenario, pop, plan, seed)
        self._account = AccountContext.build(scenario, pop, plan, schedule, seed)
        self._profiles = profile_rows(scenario, pop, plan, loans, rows)
        self._loan_events = loan_event_rows(pop, plan, rows)
        self.labels: list[Label] = build_labels(
            pop, plan, loans, initial_state(self._account).turnover_fen
        )
        log.debug("planned %d merchants x %d days", pop.size, plan.days)

    def days(self) -> Iterator[DayBatch]:
        """The events of each day of the window, in order (a fresh pass each call)."""
        state = initial_state(self._account)
        for day in range(self.plan.days):
            today = self.plan.start + timedelta(days=day)
            pos, turnover = pos_day(self._pos, day, today)
            account = account_day(self._account, day, today, state, turnover)
            yield {
                topics.MERCHANT_PROFILES: self._profiles.day(day),
                topics.LOAN_EVENTS: self._loan_events.day(day),
                topics.ACCOUNT_TRANSACTIONS: account,
                topics.POS_TRANSACTIONS: pos,
            }
