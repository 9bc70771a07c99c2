"""Account flows follow POS turnover and balances follow the bookings."""

from __future__ import annotations

from collections import Counter
from functools import cache

import numpy as np

from detectors.evaluation import DailySeries
from schemas import topics
from streams.evaluate import daily_series
from streams.sim import Scenario, Simulation, simulate
from streams.sim.account import fee_fen


@cache
def _sim() -> tuple[Simulation, DailySeries]:
    simulation = simulate(Scenario.default().resized(merchants=300, days=45), 21)
    return simulation, daily_series(simulation)


def test_fee_is_rounded_half_up_in_integers() -> None:
    turnover = np.array([0, 1, 83, 84, 100_000, 123_456_789], dtype=np.int64)
    assert fee_fen(turnover, 6000).tolist() == [0, 0, 0, 1, 600, 740_741]


def test_next_day_settlement_is_turnover_less_fee() -> None:
    simulation, series = _sim()
    mdr = simulation.scenario.accounts.mdr_ppm
    approved = series.column("pos_approved_amount_fen")
    settled = series.column("acct_settlement_amount_fen")
    moved = {lab.merchant_id for lab in simulation.labels if lab.trajectory == "settlement_moved"}
    checked = 0
    for row, merchant in enumerate(series.merchant_ids):
        if merchant in moved:
            continue
        expected = approved[row, :-1] - fee_fen(approved[row, :-1], mdr)
        assert (settled[row, 1:] == expected).all(), merchant
        checked += 1
    assert checked > 250


def test_balance_after_follows_the_bookings() -> None:
    table = _sim()[0].table(topics.ACCOUNT_TRANSACTIONS)
    merchant = np.asarray(table["merchant_id"].to_pylist())
    signed = (
        np.where(np.asarray(table["direction"].to_pylist()) == "credit", 1, -1)
        * table["amount_fen"].to_numpy()
    )
    balance = table["balance_after_fen"].to_numpy()
    order = np.argsort(merchant, kind="stable")  # rows are in event-time order already
    merchant, signed, balance = merchant[order], signed[order], balance[order]
    same = merchant[1:] == merchant[:-1]
    assert (balance[1:][same] == balance[:-1][same] + signed[1:][same]).all()


def test_returned_items_reverse_a_debit_and_cost_a_fee() -> None:
    rows = _sim()[0].table(topics.ACCOUNT_TRANSACTIONS).to_pylist()
    previous: dict[str, list[dict[str, object]]] = {}
    returned = 0
    for row in rows:
        history = previous.setdefault(str(row["merchant_id"]), [])
        if row["category"] == "returned_item":
            returned += 1
            assert row["direction"] == "credit"
            bounced = [
                r
                for r in history[-6:]
                if r["direction"] == "debit" and r["amount_fen"] == row["amount_fen"]
            ]
            assert bounced, row
        history.append(row)
    assert returned > 0


def test_monthly_cycles_are_present() -> None:
    simulation = _sim()[0]
    rows = simulation.table(topics.ACCOUNT_TRANSACTIONS).to_pylist()
    stable = {lab.merchant_id for lab in simulation.labels if lab.trajectory == "stable"}
    payroll = Counter(r["merchant_id"] for r in rows if r["category"] == "payroll")
    utility = Counter(r["merchant_id"] for r in rows if r["category"] == "utility")
    # 45 days from 5 January: one or two paydays and one or two utility bills each.
    assert all(1 <= payroll[m] <= 2 for m in stable)
    assert all(1 <= utility[m] <= 2 for m in stable)
    categories = Counter(r["category"] for r in rows)
    for category in (
        "tax",
        "loan_repayment_other",
        "loan_repayment_us",
        "transfer_in",
        "transfer_out",
        "cash_withdrawal",
        "fee",
        "pos_settlement",
    ):
        assert categories[category] > 0, category


def test_other_lender_repayments_name_a_lender() -> None:
    simulation = _sim()[0]
    lenders = set(simulation.scenario.population.lender_codes)
    table = simulation.table(topics.ACCOUNT_TRANSACTIONS).to_pylist()
    other = [r for r in table if r["category"] == "loan_repayment_other"]
    assert other
    assert all(r["counterparty_bank_code"] in lenders for r in other)
