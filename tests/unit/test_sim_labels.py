"""Ground truth agrees with the events: what a label says happened is in the data."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from functools import cache

import numpy as np
import pyarrow.compute as pc
import pytest

from detectors.evaluation import DailySeries, Label
from schemas import topics
from streams.evaluate import daily_series
from streams.sim import TRAJECTORIES, Scenario, Simulation, simulate


@cache
def _sim() -> tuple[Simulation, DailySeries]:
    simulation = simulate(Scenario.default().resized(merchants=400, days=60), 3)
    return simulation, daily_series(simulation)


def _labels(trajectory: str) -> list[Label]:
    found = [lab for lab in _sim()[0].labels if lab.trajectory == trajectory]
    assert found, f"no {trajectory} merchant in the sample"
    return found


def _row(merchant_id: str) -> int:
    return _sim()[1].merchant_ids.index(merchant_id)


def _day(value: date) -> int:
    return (value - _sim()[0].start).days


def _approved(merchant_id: str) -> np.ndarray:
    return _sim()[1].column("pos_approved_count")[_row(merchant_id)]


def test_every_merchant_has_one_label_and_counts_follow_the_shares() -> None:
    simulation, series = _sim()
    assert [lab.merchant_id for lab in simulation.labels] == list(series.merchant_ids)
    counts = Counter(lab.trajectory for lab in simulation.labels)
    for name in TRAJECTORIES:
        share = getattr(simulation.scenario.trajectories, name).share
        assert abs(counts[name] - share * 400) < 1


@pytest.mark.parametrize("trajectory", ["decline_churn", "acquirer_switch", "dormant"])
def test_no_approved_sales_after_the_last_transaction(trajectory: str) -> None:
    checked = 0
    for lab in _labels(trajectory):
        if lab.event_date is None:
            continue
        approved = _approved(lab.merchant_id)
        assert approved[_day(lab.event_date)] > 0, lab
        assert approved[_day(lab.event_date) + 1 :].sum() == 0, lab
        checked += 1
    assert checked


def test_switched_merchants_keep_their_account() -> None:
    credits = _sim()[1].column("acct_credit_amount_fen")
    for lab in _labels("acquirer_switch"):
        assert lab.event_date is not None
        after = credits[_row(lab.merchant_id), _day(lab.event_date) + 3 :]
        assert after.size == 0 or after.sum() > 0, lab


def test_dormant_silence_and_reactivation() -> None:
    for lab in _labels("dormant"):
        assert lab.onset_date is not None
        assert lab.event_date is not None
        assert lab.onset_date == lab.event_date + timedelta(days=1)
    for lab in _labels("dormant_reactivated"):
        assert lab.onset_date is not None
        approved = _approved(lab.merchant_id)
        end = _day(lab.event_date) if lab.event_date else len(approved)
        assert approved[_day(lab.onset_date) : end].sum() == 0, lab
        if lab.event_date:
            assert approved[_day(lab.event_date)] > 0, lab


def test_seasonal_closures_reopen() -> None:
    reopened = 0
    for lab in _labels("seasonal"):
        assert lab.onset_date is not None
        approved = _approved(lab.merchant_id)
        if lab.event_date is not None:
            assert approved[_day(lab.onset_date) : _day(lab.event_date)].sum() == 0, lab
            assert approved[_day(lab.event_date)] > 0, lab
            reopened += 1
    assert reopened


def test_defaulters_have_overdue_events_with_growing_days_past_due() -> None:
    simulation = _sim()[0]
    loans = simulation.table(topics.LOAN_EVENTS)
    defaulted = 0
    for lab in _labels("credit_default"):
        if lab.event_date is None:
            continue
        rows = loans.filter(pc.equal(loans["merchant_id"], lab.merchant_id)).to_pylist()
        overdue = [r for r in rows if r["kind"] == "overdue"]
        if lab.event_date < simulation.end:
            assert overdue, lab
            assert [r["days_past_due"] for r in overdue] == list(range(1, len(overdue) + 1))
            assert {r["due_date"] for r in overdue} == {lab.event_date}
            defaulted += 1
        due = [r for r in rows if r["kind"] == "repayment_due" and r["due_date"] == lab.event_date]
        paid = [r for r in rows if r["kind"] == "repaid" and r["due_date"] >= lab.event_date]
        assert due, lab
        assert not paid, lab
    assert defaulted


def test_defaulters_show_stress_before_the_default() -> None:
    series = _sim()[1]
    returned = series.column("acct_returned_item_count")
    other_lenders = series.column("acct_loan_repayment_other_count")
    stressed = borrowing = total = 0
    for lab in _labels("credit_default"):
        if lab.event_date is None or lab.onset_date is None:
            continue
        total += 1
        row, start, end = _row(lab.merchant_id), _day(lab.onset_date), _day(lab.event_date)
        stressed += returned[row, start:end].sum() > 0
        borrowing += other_lenders[row, start:end].sum() > other_lenders[row, :start].sum()
    assert total
    assert stressed >= 0.7 * total
    assert borrowing >= 0.7 * total


def test_settlement_moves_while_card_sales_go_on() -> None:
    series = _sim()[1]
    settlement = series.column("acct_settlement_amount_fen")
    moved = _labels("settlement_moved")
    selling = 0
    for lab in moved:
        assert lab.onset_date is not None
        assert lab.event_date is not None
        row, onset = _row(lab.merchant_id), _day(lab.onset_date)
        assert settlement[row, _day(lab.event_date)] > 0
        assert settlement[row, _day(lab.event_date) + 1 :].sum() == 0
        selling += _approved(lab.merchant_id)[onset:].sum() > 0
    # Card sales go on (a few are closed for the Spring Festival until the window ends).
    assert selling >= 0.7 * len(moved)


def test_inflated_turnover_precedes_a_loan() -> None:
    simulation, series = _sim()
    loans = simulation.table(topics.LOAN_EVENTS)
    amount = series.column("pos_approved_amount_fen")
    for lab in _labels("inflated_turnover"):
        if lab.event_date is None:
            continue
        assert lab.onset_date is not None
        row, onset, event = _row(lab.merchant_id), _day(lab.onset_date), _day(lab.event_date)
        disbursed = loans.filter(
            pc.and_(
                pc.equal(loans["merchant_id"], lab.merchant_id),
                pc.equal(loans["kind"], "disbursed"),
            )
        )
        assert disbursed.num_rows == 1
        assert disbursed["event_time"][0].as_py().date() in (
            lab.event_date,
            lab.event_date - timedelta(1),
        )
        before = amount[row, max(0, onset - 14) : onset].mean() if onset else 0
        assert amount[row, onset:event].mean() > before


def test_new_merchants_start_at_onboarding() -> None:
    simulation, series = _sim()
    profiles = {p.merchant_id: p for p in simulation.profiles}
    for lab in _labels("new_merchant"):
        assert lab.onset_date is not None
        row = _row(lab.merchant_id)
        onset = _day(lab.onset_date)
        assert series.column("pos_approved_count")[row, :onset].sum() == 0
        assert series.column("acct_credit_amount_fen")[row, :onset].sum() == 0
        assert profiles[lab.merchant_id].onboarding_date == lab.onset_date
