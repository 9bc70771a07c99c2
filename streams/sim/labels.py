"""Ground truth per merchant, derived from the plan so that it matches the generated events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from detectors.evaluation import Label
from streams.sim.loans import Loan
from streams.sim.plan import Plan
from streams.sim.population import Population
from streams.sim.scenario import TRAJECTORIES

I64 = npt.NDArray[np.int64]


def build_labels(pop: Population, plan: Plan, loans: list[Loan], settled_day0: I64) -> list[Label]:
    """One label per merchant; dates follow the table in docs/simulator.md.

    ``settled_day0`` is the turnover of the day before the window (settled on day 0).
    """
    days = plan.days
    active = plan.approved_with_inflation() > 0
    index = np.arange(days, dtype=np.int64)
    last_until = np.maximum.accumulate(np.where(active, index, -1), axis=1)
    first_from = np.minimum.accumulate(np.where(active, index, days)[:, ::-1], axis=1)[:, ::-1]
    disbursed = {loan.merchant: loan.disbursed for loan in loans}

    def day(i: int) -> date | None:
        return plan.start + timedelta(days=i) if 0 <= i < days else None

    def last_before(m: int, d: int) -> int:
        return int(last_until[m, d - 1]) if d >= 1 else -1

    def first_on(m: int, d: int) -> int:
        return int(first_from[m, d]) if d < days else days

    labels = []
    for m in range(pop.size):
        name = TRAJECTORIES[int(pop.trajectory[m])]
        onset, end = int(pop.onset[m]), int(pop.onset[m] + pop.duration[m])
        onset_date, event_date = day(onset), None
        if name == "stable":
            onset_date = None
        elif name in ("seasonal", "dormant_reactivated"):
            event_date = day(first_on(m, end))
        elif name == "decline_churn":
            event_date = day(int(last_until[m, -1])) if end < days else None
        elif name == "acquirer_switch":
            event_date = day(last_before(m, onset))
        elif name == "settlement_moved":
            event_date = day(_last_settlement(m, onset, last_before, settled_day0))
        elif name == "credit_default":
            event_date = day(int(plan.default_day[m]))
        elif name == "inflated_turnover":
            event_date = disbursed.get(m)
        if name in ("dormant", "dormant_reactivated"):
            # Silence starts the day after the last sale, which may precede the planned onset.
            last = last_before(m, onset)
            onset_date = day(last + 1) if last >= 0 else onset_date
            if name == "dormant":
                event_date = day(last)
        labels.append(Label(pop.merchant_ids[m], name, onset_date, event_date))
    return labels


def _last_settlement(
    m: int, moved: int, last_before: Callable[[int, int], int], settled_day0: I64
) -> int:
    """Last day before ``moved`` with a settlement credit (of the previous day's sales)."""
    sale = last_before(m, moved - 1)
    if sale >= 0:
        return int(sale) + 1
    return 0 if moved >= 1 and settled_day0[m] > 0 else -1
