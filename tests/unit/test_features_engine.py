"""Unit tests of the feature engine: lateness, de-duplication, calendar, closing, codec, clock."""

from __future__ import annotations

import pickle
import random
import re
import zlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.features import (
    BusinessCalendar,
    CloseOrderError,
    FeatureParams,
    FeatureParamsError,
    MerchantState,
    PartitionClock,
    StateDecodeError,
    StepStatus,
    account_code,
    card_hash,
    close_day,
    close_through,
    day_totals,
    decode_state,
    encode_state,
    feature_names,
    lender_id,
    pos_txn_hash,
    step,
    step_account,
    step_pos,
)
from detectors.features.sketches import gap_quantile, hll_estimate
from detectors.features.state import GAP_EDGES, HLL_REGISTERS
from schemas.inputs import AccountCategory, AccountTransaction, Direction, PosTransaction
from schemas.warehouse import MerchantDailyRow

PARAMS = FeatureParams()
DAY = 20_000  # 2024-10-04, a Friday
SETTLE = account_code(AccountCategory.POS_SETTLEMENT, Direction.CREDIT)
PAYROLL = account_code(AccountCategory.PAYROLL, Direction.DEBIT)
REPAY_OTHER = account_code(AccountCategory.LOAN_REPAYMENT_OTHER, Direction.DEBIT)
CASH = account_code(AccountCategory.CASH_WITHDRAWAL, Direction.DEBIT)


def sale(state: MerchantState, day: int, txn: int, amount: int = 1000, kind: int = 0):
    return step_pos(state, day, kind, amount, card_hash(f"tok_{txn:08d}"), txn, PARAMS)


def booking(state: MerchantState, day: int, code: int, amount: int, balance: int, txn: str):
    time_us = day * 86_400_000_000
    return step_account(state, day, code, amount, balance, time_us, txn, 0, PARAMS)


def pos_event(
    txn: str, when: datetime, kind: str = "approved", amount: int = 1000
) -> PosTransaction:
    return PosTransaction(
        txn_id=txn, merchant_id="m-1", terminal_id="p-1", event_time=when, amount_fen=amount,
        kind=kind, card_token="tok_card0001", channel="chip", mcc="5411",
    )  # fmt: skip


# ---- lateness and de-duplication ---------------------------------------------------------------


def test_lateness_boundary_is_exact() -> None:
    state = MerchantState("m-1", DAY)
    assert sale(state, DAY + 10, 1).status is StepStatus.APPLIED
    assert sale(state, DAY + 10 - PARAMS.lateness_days, 2).status is StepStatus.APPLIED
    late = sale(state, DAY + 9 - PARAMS.lateness_days, 3)
    assert (late.status, late.reason) == (StepStatus.LATE, "beyond_lateness")


def test_closed_day_rejects_events_and_late_events_change_nothing() -> None:
    state = MerchantState("m-1", DAY)
    sale(state, DAY, 1)
    state, _ = close_through(state, DAY, PARAMS)
    before = encode_state(state)
    late = sale(state, DAY, 2)
    assert (late.status, late.reason) == (StepStatus.LATE, "day_closed")
    assert encode_state(state) == before


def test_duplicate_counted_once_and_sources_do_not_collide() -> None:
    state = MerchantState("m-1", DAY)
    assert sale(state, DAY, 7).status is StepStatus.APPLIED
    dup = sale(state, DAY, 7)
    assert (dup.status, dup.reason) == (StepStatus.DUPLICATE, "duplicate_txn_id")
    # the same id on the account topic is another transaction
    assert booking(state, DAY, SETTLE, 500, 500, "7").status is StepStatus.APPLIED
    assert booking(state, DAY, SETTLE, 500, 500, "7").status is StepStatus.DUPLICATE
    assert day_totals(state, DAY).pos_approved_count == 1
    assert day_totals(state, DAY).acct_credit_count == 1


def test_dedup_capacity_forgets_the_oldest_id() -> None:
    params = FeatureParams(dedup_capacity=3)
    state = MerchantState("m-1", DAY)
    for txn in range(4):
        step_pos(state, DAY, 0, 100, 1, txn, params)
    assert len(state.seen) == 3
    # beyond the cap, the oldest id's duplicate counts again (documented)
    assert step_pos(state, DAY, 0, 100, 1, 0, params).status is StepStatus.APPLIED
    assert step_pos(state, DAY, 0, 100, 1, 3, params).status is StepStatus.DUPLICATE


def test_dedup_window_is_pruned_at_close() -> None:
    state = MerchantState("m-1", DAY)
    for day in range(DAY, DAY + 6):
        sale(state, day, day)
    state, _ = close_through(state, DAY + 2, PARAMS)
    assert sorted(set(state.seen.values())) == [DAY + 3, DAY + 4, DAY + 5]


# ---- the pydantic entry point and the business calendar ------------------------------------------


def test_step_uses_the_business_day_and_matches_the_plain_value_path() -> None:
    evening_utc = datetime(2024, 10, 3, 16, 30, tzinfo=UTC)  # 00:30 on 4 October in Shanghai
    state, result = step(None, pos_event("t1", evening_utc, amount=4321), PARAMS)
    assert result.day == DAY
    assert state.merchant_id == "m-1"
    plain = MerchantState("m-1", DAY)
    step_pos(plain, DAY, 0, 4321, card_hash("tok_card0001"), pos_txn_hash("t1"), PARAMS)
    assert plain == state
    booking_event = AccountTransaction(
        txn_id="a1", account_id="acc-1", merchant_id="m-1", event_time=evening_utc,
        direction="debit", amount_fen=900, balance_after_fen=-100,
        category="loan_repayment_other", counterparty_bank_code="CMB",
    )  # fmt: skip
    state, result = step(state, booking_event, PARAMS)
    time_us = int(evening_utc.timestamp()) * 1_000_000
    step_account(plain, DAY, REPAY_OTHER, 900, -100, time_us, "a1", lender_id("CMB"), PARAMS)
    assert result.status is StepStatus.APPLIED
    assert plain == state


@settings(max_examples=300, deadline=None)
@given(
    instant=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(
        ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
    ),
)
def test_business_day_matches_zoneinfo(instant: datetime, zone: str) -> None:
    calendar = BusinessCalendar(zone)
    expected = instant.astimezone(ZoneInfo(zone)).date()
    assert calendar.date_of_day(calendar.day_of(instant)) == expected


def test_dst_switch_day_is_exact_and_cached_days_stay_correct() -> None:
    calendar = BusinessCalendar("Europe/Berlin")
    switch = datetime(2024, 3, 31, 0, 0, tzinfo=UTC)  # clocks jump 01:00 UTC
    for minutes in range(0, 24 * 60, 7):
        instant = switch + timedelta(minutes=minutes)
        expected = instant.astimezone(ZoneInfo("Europe/Berlin")).date()
        assert calendar.date_of_day(calendar.day_of(instant)) == expected
    assert pickle.loads(pickle.dumps(calendar)).timezone == "Europe/Berlin"


def test_params_validate_and_pickle() -> None:
    with pytest.raises(FeatureParamsError):
        FeatureParams(windows_days=(7, 1))
    with pytest.raises(FeatureParamsError):
        FeatureParams(business_timezone="Mars/Olympus")
    params = FeatureParams(lateness_days=2)
    assert pickle.loads(pickle.dumps(params)) == params
    assert hash(params) == hash(FeatureParams(lateness_days=2))


# ---- closing -------------------------------------------------------------------------------------


def test_close_day_must_follow_the_order_and_close_through_is_idempotent() -> None:
    state = MerchantState("m-1", DAY)
    with pytest.raises(CloseOrderError):
        close_day(state, DAY + 1, PARAMS)
    state, snaps = close_through(state, DAY + 2, PARAMS)
    assert [s.day for s in snaps] == [DAY, DAY + 1, DAY + 2]
    assert close_through(state, DAY + 2, PARAMS)[1] == []


def test_snapshot_row_fields_make_a_valid_warehouse_row() -> None:
    state = MerchantState("m-1", DAY)
    sale(state, DAY, 1, 2500)
    sale(state, DAY, 2, 300, kind=2)
    booking(state, DAY, SETTLE, 9000, 12_000, "a1")
    booking(state, DAY, CASH, 500, 11_500, "a2")
    _, snap = close_day(state, DAY, PARAMS)
    fields = snap.daily_row_fields()
    assert list(fields) == [name for name in MerchantDailyRow.model_fields if name != "version"]
    row = MerchantDailyRow(**fields, version=snap.totals.event_count)
    assert row.day.isoformat() == "2024-10-04"
    assert (row.pos_approved_amount_fen, row.pos_refund_amount_fen) == (2500, 300)
    assert (row.acct_settlement_amount_fen, row.acct_debit_amount_fen) == (9000, 500)
    assert row.acct_end_balance_fen == 11_500
    assert row.version == 4


def test_day_totals_of_open_days_carry_the_balance() -> None:
    state = MerchantState("m-1", DAY)
    booking(state, DAY, SETTLE, 100, 700, "a1")
    assert day_totals(state, DAY + 1).acct_end_balance_fen == 700
    state, _ = close_through(state, DAY + 1, PARAMS)
    assert day_totals(state, DAY + 2).acct_end_balance_fen == 700
    assert day_totals(state, DAY).acct_credit_amount_fen == 100


def test_step_closes_days_itself_when_the_worker_falls_behind() -> None:
    state = MerchantState("m-1", DAY)
    sale(state, DAY, 1)
    result = sale(state, DAY + 30, 2)
    assert result.status is StepStatus.APPLIED
    assert [s.day for s in result.closed] == list(range(DAY, DAY + 21))
    assert result.closed[0].totals.pos_approved_count == 1
    assert state.next_day_to_close == DAY + 21


# ---- cash-flow semantics -------------------------------------------------------------------------


def test_zero_balance_is_not_an_overdraft() -> None:
    state = MerchantState("m-1", DAY)
    booking(state, DAY, CASH, 100, 0, "a1")
    booking(state, DAY + 1, CASH, 100, -1, "a2")
    _, snaps = close_through(state, DAY + 1, PARAMS)
    assert [s.features["overdraft_days_30d"] for s in snaps] == [0.0, 1.0]


def test_settlement_moving_away_shows_in_the_settlement_ratio() -> None:
    state = MerchantState("m-1", DAY)
    snaps = []
    for day in range(DAY, DAY + 60):
        sale(state, day, day, 10_000)
        if DAY < day < DAY + 30:  # settled here T+1 for a month, then elsewhere
            booking(state, day, SETTLE, 10_000, 10_000 * (day - DAY), f"s{day}")
        state, closed = close_through(state, day - 4, PARAMS)
        snaps += closed
    state, closed = close_through(state, DAY + 59, PARAMS)
    snaps += closed
    by_day = {s.day: s.features["settlement_to_pos_ratio_30d"] for s in snaps}
    assert by_day[DAY + 29] == 1.0
    assert by_day[DAY + 59] == 0.0


def test_regular_payments_and_new_lenders() -> None:
    state = MerchantState("m-1", DAY)
    for month in range(3):
        booking(state, DAY + 30 * month, PAYROLL, 50_000, 0, f"p{month}")
    lender = lender_id("ICBC")
    step_account(
        state, DAY + 80, REPAY_OTHER, 7_000, 0, (DAY + 80) * 86_400_000_000, "r1", lender, PARAMS
    )
    state, snaps = close_through(state, DAY + 85, PARAMS)
    last = snaps[-1].features
    assert last["payroll_months_paid_3m"] == 3
    assert last["days_since_payroll"] == 25
    assert last["other_lender_new_30d"] == 1
    assert last["other_lender_repay_amount_sum_30d_fen"] == 7000
    assert last["days_since_tax"] == -1


# ---- sketches ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 50, 500, 5000, 50_000])
def test_distinct_card_estimate_error_is_within_the_documented_bound(n: int) -> None:
    errors = []
    for seed in range(8):
        rng = random.Random(seed)
        registers = [0] * HLL_REGISTERS
        for _ in range(n):
            h = card_hash(f"tok_{rng.getrandbits(64):016x}")
            register, rank = h & (HLL_REGISTERS - 1), 59 - (h >> 6).bit_length()
            registers[register] = max(registers[register], rank)
        errors.append(hll_estimate(registers) / n - 1)
    rms = (sum(e * e for e in errors) / len(errors)) ** 0.5
    assert rms < 0.2, errors  # documented: about 13 % standard error, better below ~160


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 9), min_size=1, max_size=60), q=st.sampled_from([0.5, 0.9, 0.95])
)
def test_gap_quantile_is_exact_for_gaps_up_to_nine_days(gaps: list[int], q: float) -> None:
    hist = [0] * len(GAP_EDGES)
    for gap in gaps:
        hist[gap - 1] += 1
    assert gap_quantile(hist, q) == float(np.quantile(gaps, q, method="inverted_cdf"))


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.integers(1, 400), min_size=1, max_size=60), q=st.sampled_from([0.5, 0.95]))
def test_gap_quantile_stays_within_the_bin_of_the_true_quantile(gaps: list[int], q: float) -> None:
    hist = [0] * len(GAP_EDGES)
    for gap in gaps:
        hist[max(i for i, edge in enumerate(GAP_EDGES) if edge <= gap)] += 1
    true = float(np.quantile(gaps, q, method="inverted_cdf"))
    i = max(i for i, edge in enumerate(GAP_EDGES) if edge <= true)
    high = GAP_EDGES[i + 1] - 1 if i + 1 < len(GAP_EDGES) else GAP_EDGES[i]
    assert GAP_EDGES[i] <= gap_quantile(hist, q) <= high


# ---- codec ---------------------------------------------------------------------------------------


def test_decode_rejects_unknown_versions_and_corrupt_data() -> None:
    state = MerchantState("m-1", DAY)
    sale(state, DAY, 1)
    blob = encode_state(state)
    with pytest.raises(StateDecodeError, match="version 2"):
        decode_state(bytes((2,)) + blob[1:])
    with pytest.raises(StateDecodeError, match="corrupt"):
        decode_state(blob[:-3])
    with pytest.raises(StateDecodeError):
        decode_state(b"")
    closed_len = int.from_bytes(blob[1:5], "little")
    open_part = zlib.decompress(blob[5 + closed_len :])
    with pytest.raises(StateDecodeError):
        decode_state(blob[: 5 + closed_len] + zlib.compress(open_part + b"x"))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_corrupt_parts_raise_state_decode_error_only(data: st.DataObject) -> None:
    state = MerchantState("m-1", DAY)
    for day in range(DAY, DAY + 12):
        sale(state, day, day)
        booking(state, day, SETTLE, 100, day, f"a{day}")
    state, _ = close_through(state, DAY + 7, PARAMS)
    blob = encode_state(state)
    closed_len = int.from_bytes(blob[1:5], "little")
    parts = [blob[5 : 5 + closed_len], blob[5 + closed_len :]]
    which = data.draw(st.sampled_from([0, 1]))
    body = bytearray(zlib.decompress(parts[which]))
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    parts[which] = zlib.compress(bytes(body))
    corrupt = blob[:1] + len(parts[0]).to_bytes(4, "little") + parts[0] + parts[1]
    try:
        decoded = decode_state(corrupt)
    except StateDecodeError:
        return
    assert isinstance(decoded, MerchantState)


def test_encode_caches_the_closed_part_until_the_next_close() -> None:
    state = MerchantState("m-1", DAY)
    for day in range(DAY, DAY + 40):
        sale(state, day, day)
    state, _ = close_through(state, DAY + 35, PARAMS)
    first = encode_state(state)
    cached = state.closed_blob
    sale(state, DAY + 39, 99_999)
    assert state.closed_blob is cached
    assert encode_state(state) != first
    state, _ = close_day(state, DAY + 36, PARAMS)
    assert state.closed_blob is None
    assert decode_state(encode_state(state)) == state


def test_lender_cap_eviction_keeps_the_cached_encoding_true() -> None:
    state = MerchantState("m-1", DAY)
    lender = lender_id("ICBC")
    for i in range(64):
        time_us = (DAY + i // 2) * 86_400_000_000
        step_account(state, DAY + i // 2, REPAY_OTHER, 100 + i, 0, time_us, f"r{i}", lender, PARAMS)
    state, _ = close_through(state, DAY + 31, PARAMS)
    encode_state(state)  # caches the closed part
    time_us = (DAY + 33) * 86_400_000_000
    step_account(state, DAY + 33, REPAY_OTHER, 999, 0, time_us, "r-new", lender, PARAMS)
    assert decode_state(encode_state(state)).lender_events == state.lender_events


# ---- partition clock -----------------------------------------------------------------------------


def test_partition_clock_closes_days_by_watermark_and_idle_fallback() -> None:
    clock = PartitionClock(PARAMS, idle_timeout_s=600)
    start = datetime(2024, 10, 4, 2, 0, tzinfo=UTC)  # business day DAY
    clock.observe(start, wall_clock_s=1000.0)
    assert len(clock.closable_days(wall_clock_s=1000.0)) == 0
    clock.observe(start + timedelta(days=4), wall_clock_s=1001.0)
    assert list(clock.closable_days()) == [DAY]
    assert len(clock.closable_days()) == 0
    # nothing arrives for a long while: event time is assumed to follow the wall clock
    wall = (start + timedelta(days=8)).timestamp()
    days = clock.closable_days(wall_clock_s=wall)
    assert list(days) == [DAY + 1, DAY + 2, DAY + 3, DAY + 4]
    assert pickle.loads(pickle.dumps(clock)).closed_through_day == DAY + 4


def test_feature_names_are_stable_and_carry_units_or_windows() -> None:
    names = feature_names(PARAMS)
    assert len(names) == len(set(names))
    unitless = {"ever_active", "weekday_of_day", "silence_ratio_q95", "gap_count"}
    for name in names:
        assert re.search(r"_fen|_\d+[dwm](_|$)|_days|days_since_", name) or name in unitless, name
