"""Exact daily totals: any order of the same events gives the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.daily import LateEventError, MerchantDays, daily_row, decode_days, encode_days
from schemas.inputs import AccountTransaction, PosTransaction
from tests.unit.test_schemas import ACCOUNT, POS

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 1, tzinfo=UTC)

pos_events = st.builds(
    lambda i, minutes, amount, kind: PosTransaction.model_validate(
        {
            **POS,
            "txn_id": f"P{i}",
            "event_time": (START + timedelta(minutes=minutes)).isoformat(),
            "amount_fen": amount,
            "kind": kind,
        }
    ),
    st.integers(0, 10**6),
    st.integers(0, 4 * 24 * 60),
    st.integers(1, 10**9),
    st.sampled_from(["approved", "declined", "refund", "chargeback", "reversal"]),
)
account_events = st.builds(
    lambda i, minutes, amount, balance: AccountTransaction.model_validate(
        {
            **ACCOUNT,
            "txn_id": f"A{i}",
            "event_time": (START + timedelta(minutes=minutes)).isoformat(),
            "amount_fen": amount,
            "balance_after_fen": balance,
        }
    ),
    st.integers(0, 10**6),
    st.integers(0, 4 * 24 * 60),
    st.integers(1, 10**9),
    st.integers(-(10**8), 10**8),
)


def _rows(events: list[PosTransaction | AccountTransaction]) -> dict[object, dict[str, object]]:
    state = MerchantDays()
    for event in events:
        state.apply(event, ZONE, retention_days=30)
    state = decode_days(encode_days(state))
    return {day: daily_row("M0001", day, totals) for day, totals in state.days.items()}


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.one_of(pos_events, account_events), max_size=40, unique_by=lambda e: e.txn_id
    ),
    data=st.data(),
)
def test_rows_do_not_depend_on_arrival_order(
    events: list[PosTransaction | AccountTransaction], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(events))
    assert _rows(events) == _rows(list(shuffled))


@settings(max_examples=60, deadline=None)
@given(events=st.lists(pos_events, max_size=40))
def test_approved_turnover_equals_naive_sum(events: list[PosTransaction]) -> None:
    rows = _rows(list(events))
    naive: dict[object, int] = {}
    for e in events:
        if e.kind == "approved":
            day = e.event_time.astimezone(ZONE).date()
            naive[day] = naive.get(day, 0) + e.amount_fen
    assert {d: r["pos_approved_amount_fen"] for d, r in rows.items() if naive.get(d)} == naive
    assert sum(r["version"] for r in rows.values()) == len(events)  # type: ignore[misc]


def test_events_older_than_the_kept_days_are_refused() -> None:
    state = MerchantDays()
    late = PosTransaction.model_validate({**POS, "event_time": "2026-03-01T12:00:00Z"})
    new = PosTransaction.model_validate({**POS, "event_time": "2026-03-09T12:00:00Z"})
    state.apply(new, ZONE, retention_days=7)
    with pytest.raises(LateEventError):
        state.apply(late, ZONE, retention_days=7)
    assert list(state.days) == [new.event_time.astimezone(ZONE).date()]
