"""POS loans at our bank: who holds one, their schedules, loan events and profile updates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from schemas.common import FEN_PER_CNY
from schemas.inputs import LoanEventKind
from streams.sim.plan import Plan
from streams.sim.population import TRAJ, Population, add_months, rng_for
from streams.sim.scenario import Scenario

STREAM_LOANS = 5

#: Local times of day (seconds after midnight) of loan-book events: the nightly batch posts
#: dues and days past due, the morning collection run debits repayments.
DUE_SECOND = 5 * 60
OVERDUE_SECOND = 10 * 60
REPAY_SECOND = 6 * 3600 + 30 * 60
DISBURSE_SECOND = 10 * 3600
PROFILE_LAG_SECONDS = 60
_MIN_LOAN_FEN = 10_000 * FEN_PER_CNY
_LOAN_STEP_FEN = 1_000 * FEN_PER_CNY


@dataclass(frozen=True, slots=True)
class Installment:
    number: int
    due: date
    principal_fen: int
    interest_fen: int

    @property
    def amount_fen(self) -> int:
        return self.principal_fen + self.interest_fen


@dataclass(frozen=True, slots=True)
class Loan:
    """One POS loan; ``default_due`` is the first repayment the merchant misses, if any."""

    merchant: int
    loan_id: str
    amount_fen: int
    disbursed: date
    installments: tuple[Installment, ...]
    default_due: date | None = None

    def outstanding_after(self, paid: int) -> int:
        return self.amount_fen - sum(i.principal_fen for i in self.installments[:paid])


def _schedule(
    amount: int, disbursed: date, due_day: int, term: int, rate: float
) -> tuple[Installment, ...]:
    principal = amount // term
    outstanding = amount
    out = []
    for k in range(1, term + 1):
        part = principal if k < term else amount - principal * (term - 1)
        interest = round(outstanding * rate / 12)
        out.append(Installment(k, add_months(disbursed, k, due_day), part, interest))
        outstanding -= part
    return tuple(out)


def _amount(
    cfg_months: tuple[float, float], monthly_fen: float, cap_fen: float, rng: np.random.Generator
) -> int:
    raw = rng.uniform(*cfg_months) * monthly_fen
    stepped = round(raw / _LOAN_STEP_FEN) * _LOAN_STEP_FEN
    return int(min(max(stepped, _MIN_LOAN_FEN), cap_fen))


def build_loans(scenario: Scenario, pop: Population, plan: Plan, seed: int) -> list[Loan]:
    """Loans running into the window, defaults of the credit trajectory, and new loans in it."""
    rng = rng_for(seed, STREAM_LOANS)
    cfg = scenario.loans
    start, days = plan.start, plan.days
    cap = cfg.product_cap_cny * FEN_PER_CNY
    loans: list[Loan] = []
    draws = rng.random(pop.size)
    for m in range(pop.size):
        traj = int(pop.trajectory[m])
        loan_id = f"PL{m + 1:07d}"
        monthly = float(pop.monthly_pos_fen[m])
        if traj == TRAJ["credit_default"]:
            default_due = plan.date(int(plan.default_day[m]))
            paid = int(rng.integers(3, 9))
            disbursed = add_months(default_due, -paid, default_due.day)
            amount = _amount(cfg.amount_months, monthly, cap, rng)
            schedule = _schedule(
                amount, disbursed, default_due.day, max(cfg.term_months, paid + 1), cfg.annual_rate
            )
            loans.append(Loan(m, loan_id, amount, disbursed, schedule, default_due))
        elif traj == TRAJ["inflated_turnover"] or (
            traj == TRAJ["growth"] and draws[m] < cfg.growth_loan_share
        ):
            day = int(pop.onset[m] + pop.duration[m])
            if day >= days:
                continue
            disbursed = start + timedelta(days=day)
            # The application is judged on the (inflated or grown) turnover of the last weeks.
            boost = 1.0 + float(pop.strength[m])
            amount = _amount(cfg.amount_months, monthly * boost, cap, rng)
            schedule = _schedule(
                amount, disbursed, min(disbursed.day, 28), cfg.term_months, cfg.annual_rate
            )
            loans.append(Loan(m, loan_id, amount, disbursed, schedule))
        elif traj != TRAJ["new_merchant"] and draws[m] < cfg.pos_loan_share:
            due_day = int(rng.integers(1, 29))
            paid = int(rng.integers(0, cfg.term_months))
            disbursed = add_months(start, -(paid + 1), due_day)
            amount = _amount(cfg.amount_months, monthly, cap, rng)
            schedule = _schedule(amount, disbursed, due_day, cfg.term_months, cfg.annual_rate)
            loans.append(Loan(m, loan_id, amount, disbursed, schedule))
    return loans


@dataclass(slots=True)
class LoanRows:
    """Loan events, the account bookings they cause, and profile updates, as plain rows."""

    events: list[tuple[int, int, int, str, str, int, date | None, int]] = field(
        default_factory=list
    )
    bookings: list[tuple[int, int, int, int, str, bool]] = field(default_factory=list)
    profiles: list[tuple[int, int, int, int, int]] = field(default_factory=list)


def loan_rows(loans: list[Loan], plan: Plan) -> LoanRows:
    """Everything the loan book does inside the window.

    events: (day, second, merchant, loan_id, kind, amount_fen, due_date, days_past_due);
    bookings: (day, second, merchant, signed amount_fen, kind, returned) where kind is
    "repayment" or "disbursement" and returned marks a collection that bounced;
    profiles: (day, second, merchant, facility_fen, outstanding_fen).
    """
    out = LoanRows()
    start, days = plan.start, plan.days
    end = start + timedelta(days=days)
    for loan in loans:
        m = loan.merchant
        if start <= loan.disbursed < end:
            day = (loan.disbursed - start).days
            out.events.append(
                (
                    day,
                    DISBURSE_SECOND,
                    m,
                    loan.loan_id,
                    LoanEventKind.DISBURSED,
                    loan.amount_fen,
                    None,
                    0,
                )
            )
            out.bookings.append(
                (day, DISBURSE_SECOND + 5, m, loan.amount_fen, "disbursement", False)
            )
            out.profiles.append(
                (day, DISBURSE_SECOND + PROFILE_LAG_SECONDS, m, loan.amount_fen, loan.amount_fen)
            )
        missed = 0
        for inst in loan.installments:
            if not start <= inst.due < end:
                continue
            day = (inst.due - start).days
            out.events.append(
                (
                    day,
                    DUE_SECOND,
                    m,
                    loan.loan_id,
                    LoanEventKind.REPAYMENT_DUE,
                    inst.amount_fen,
                    inst.due,
                    0,
                )
            )
            if loan.default_due is None or inst.due < loan.default_due:
                out.events.append(
                    (
                        day,
                        REPAY_SECOND,
                        m,
                        loan.loan_id,
                        LoanEventKind.REPAID,
                        inst.amount_fen,
                        inst.due,
                        0,
                    )
                )
                out.bookings.append((day, REPAY_SECOND, m, -inst.amount_fen, "repayment", False))
                out.profiles.append(
                    (
                        day,
                        REPAY_SECOND + PROFILE_LAG_SECONDS,
                        m,
                        loan.amount_fen,
                        loan.outstanding_after(inst.number),
                    )
                )
            else:
                missed += 1
                # The collection run tries, the account cannot pay, the debit comes back.
                out.bookings.append((day, REPAY_SECOND, m, -inst.amount_fen, "repayment", True))
        if loan.default_due is not None and loan.default_due < end:
            _overdue(out, loan, plan)
    return out


def _overdue(out: LoanRows, loan: Loan, plan: Plan) -> None:
    assert loan.default_due is not None
    first = (loan.default_due - plan.start).days + 1
    for day in range(max(first, 0), plan.days):
        today = plan.date(day)
        owed = sum(i.amount_fen for i in loan.installments if loan.default_due <= i.due < today)
        dpd = (today - loan.default_due).days
        out.events.append(
            (
                day,
                OVERDUE_SECOND,
                loan.merchant,
                loan.loan_id,
                LoanEventKind.OVERDUE,
                owed,
                loan.default_due,
                dpd,
            )
        )
