"""Reference data and loan-book rows of the simulation: merchant profiles and loan events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from schemas.inputs import MerchantFlag
from streams.sim.arrow import LOAN_SCHEMA, PROFILE_SCHEMA, pick, timestamps
from streams.sim.loans import Loan, LoanRows
from streams.sim.plan import Plan
from streams.sim.population import INDUSTRIES, Population
from streams.sim.scenario import Scenario

I64 = npt.NDArray[np.int64]

#: Merchants above this quantile of revenue carry the key-account flag.
KEY_ACCOUNT_QUANTILE = 0.98


@dataclass(frozen=True, slots=True)
class DayIndexed:
    """Rows sorted by (day, second, merchant), sliced per day."""

    table: pa.Table
    bounds: I64

    def day(self, day: int) -> pa.Table:
        lo, hi = int(self.bounds[day]), int(self.bounds[day + 1])
        return self.table.slice(lo, hi - lo)


def _index(day: I64, second: I64, merchant: I64, days: int) -> tuple[I64, I64]:
    order = np.lexsort((merchant, second, day))
    return order, np.searchsorted(day[order], np.arange(days + 1))


def profile_rows(
    scenario: Scenario, pop: Population, plan: Plan, loans: list[Loan], rows: LoanRows
) -> DayIndexed:
    """The first profile of every merchant (at the window start or on onboarding) and updates."""
    facility = np.zeros(pop.size, dtype=np.int64)
    outstanding = np.zeros(pop.size, dtype=np.int64)
    for loan in loans:
        if loan.disbursed < plan.start:
            paid = sum(1 for i in loan.installments if i.due < plan.start)
            facility[loan.merchant] = loan.amount_fen
            outstanding[loan.merchant] = loan.outstanding_after(paid)
    first_day = np.maximum(plan.onboard_day, 0)
    # The first profile comes at local midnight of the first day (or of the onboarding day):
    # before any event of the merchant, so that consumers know whom an event is about.
    first_second = np.zeros(pop.size, dtype=np.int64)
    keep = first_day < plan.days
    merchants = np.flatnonzero(keep)
    day = first_day[merchants]
    second = first_second[merchants]
    fac, out = facility[merchants], outstanding[merchants]
    if rows.profiles:
        d, s, m, f, o = (np.asarray(c, dtype=np.int64) for c in zip(*rows.profiles, strict=True))
        day, second, merchants = np.r_[day, d], np.r_[second, s], np.r_[merchants, m]
        fac, out = np.r_[fac, f], np.r_[out, o]
    order, bounds = _index(day, second, merchants, plan.days)
    day, second, merchants, fac, out = (
        day[order],
        second[order],
        merchants[order],
        fac[order],
        out[order],
    )

    pop_cfg = scenario.population
    regions = [pop_cfg.regions[r] for r in pop.region.tolist()]
    grids = [f"{regions[i]}.g{g + 1:02d}" for i, g in enumerate(pop.grid.tolist())]
    managers = [
        f"AM{r + 1:02d}{g + 1:02d}{k + 1:02d}"
        for r, g, k in zip(
            pop.region.tolist(), pop.grid.tolist(), pop.manager.tolist(), strict=True
        )
    ]
    key = pop.monthly_revenue_fen >= np.quantile(pop.monthly_revenue_fen, KEY_ACCOUNT_QUANTILE)
    flags = pa.array(
        [[MerchantFlag.KEY_ACCOUNT.value] if k else [] for k in key.tolist()],
        type=pa.list_(pa.string()),
    )
    onboarding = pa.array(pop.onboarding, type=pa.date32())
    idx = pa.array(merchants, type=pa.int64())
    table = pa.Table.from_arrays(
        [
            pick(pop.merchant_ids, merchants),
            pick(pop.names, merchants),
            pick([i.value for i in INDUSTRIES], pop.industry[merchants]),
            pick(regions, merchants),
            pick(grids, merchants),
            pick(managers, merchants),
            onboarding.take(idx),
            pa.array(fac, type=pa.int64()),
            pa.array(out, type=pa.int64()),
            flags.take(idx),
            timestamps(plan.day_start_utc[day] + second)
            if day.size
            else pa.array([], PROFILE_SCHEMA.field("updated_at").type),
        ],
        schema=PROFILE_SCHEMA,
    )
    return DayIndexed(table, bounds)


def loan_event_rows(pop: Population, plan: Plan, rows: LoanRows) -> DayIndexed:
    """Loan events of the window as a table, sliced per day."""
    if not rows.events:
        return DayIndexed(LOAN_SCHEMA.empty_table(), np.zeros(plan.days + 1, dtype=np.int64))
    day, second, merchant, loan_id, kind, amount, due, dpd = zip(*rows.events, strict=True)
    day_a, second_a, merchant_a = (np.asarray(c, dtype=np.int64) for c in (day, second, merchant))
    order, bounds = _index(day_a, second_a, merchant_a, plan.days)
    pick_rows = order.tolist()
    dates = [plan.start + timedelta(days=int(d)) for d in day_a[order]]
    event_ids = [f"{loan_id[i]}-{kind[i]}-{dates[j]:%Y%m%d}" for j, i in enumerate(pick_rows)]
    due_dates: list[date | None] = [due[i] for i in pick_rows]
    table = pa.Table.from_arrays(
        [
            pa.array(event_ids, type=pa.string()),
            pa.array([loan_id[i] for i in pick_rows], type=pa.string()),
            pick(pop.merchant_ids, merchant_a[order]),
            timestamps(plan.day_start_utc[day_a[order]] + second_a[order]),
            pa.array([str(kind[i]) for i in pick_rows], type=pa.string()),
            pa.array([amount[i] for i in pick_rows], type=pa.int64()),
            pa.array(due_dates, type=pa.date32()),
            pa.array([dpd[i] for i in pick_rows], type=pa.int64()),
        ],
        schema=LOAN_SCHEMA,
    )
    return DayIndexed(table, bounds)
