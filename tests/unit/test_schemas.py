"""Contracts: what each topic payload accepts and refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.common import MAX_AMOUNT_FEN
from schemas.inputs import AccountTransaction, LoanEvent, MerchantProfile, PosTransaction
from schemas.jsonschema import render_all
from schemas.settings import Settings
from schemas.topics import TOPICS
from streams.cli import main

POS = {
    "txn_id": "T-1",
    "merchant_id": "M0001",
    "terminal_id": "TERM1",
    "event_time": "2026-03-01T10:15:00+08:00",
    "amount_fen": 12_345,
    "kind": "approved",
    "card_token": "tok_abcdef123",
    "card_type": "credit",
    "channel": "contactless",
    "mcc": "5812",
}
ACCOUNT = {
    "txn_id": "A-1",
    "account_id": "ACC1",
    "merchant_id": "M0001",
    "event_time": "2026-03-02T01:00:00Z",
    "direction": "credit",
    "amount_fen": 12_271,
    "balance_after_fen": -5,
    "category": "pos_settlement",
}


def test_pos_event_time_is_normalised_to_utc() -> None:
    txn = PosTransaction.model_validate(POS)
    assert txn.event_time == datetime(2026, 3, 1, 2, 15, tzinfo=UTC)
    assert txn.event_time.utcoffset() is not None
    assert txn.event_time.tzinfo is UTC


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_time", "2026-03-01T10:15:00"),  # naive
        ("event_time", "1970-01-01T00:00:00Z"),  # epoch zero
        ("amount_fen", 0),
        ("amount_fen", -100),
        ("amount_fen", MAX_AMOUNT_FEN + 1),
        ("amount_fen", 12.5),  # fractional fen
        ("merchant_id", "M 1"),
        ("merchant_id", "x" * 65),
        ("merchant_id", ""),
        ("kind", "approve"),
        ("mcc", "58"),
        ("card_token", "4111111111111111"),  # a card number, Luhn-valid
        ("currency", "USD"),
    ],
)
def test_pos_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        PosTransaction.model_validate({**POS, field: value})


def test_pos_ignores_unknown_fields_on_purpose() -> None:
    txn = PosTransaction.model_validate({**POS, "added_in_a_later_minor_version": 1})
    assert not hasattr(txn, "added_in_a_later_minor_version")


def test_card_token_of_digits_that_fail_luhn_is_a_token() -> None:
    assert PosTransaction.model_validate({**POS, "card_token": "4111111111111112"})


def test_account_category_must_fit_direction() -> None:
    assert AccountTransaction.model_validate(ACCOUNT).balance_after_fen == -5
    with pytest.raises(ValidationError, match="must be a credit"):
        AccountTransaction.model_validate({**ACCOUNT, "direction": "debit"})
    with pytest.raises(ValidationError, match="must be a debit"):
        AccountTransaction.model_validate({**ACCOUNT, "category": "payroll", "direction": "credit"})


def test_loan_event_days_past_due_only_when_overdue() -> None:
    base = {
        "event_id": "E1",
        "loan_id": "L1",
        "merchant_id": "M1",
        "event_time": "2026-03-01T00:00:00Z",
    }
    assert LoanEvent.model_validate({**base, "kind": "overdue", "days_past_due": 8})
    with pytest.raises(ValidationError):
        LoanEvent.model_validate({**base, "kind": "overdue"})
    with pytest.raises(ValidationError):
        LoanEvent.model_validate({**base, "kind": "repaid", "days_past_due": 3})
    with pytest.raises(ValidationError):
        LoanEvent.model_validate({**base, "kind": "disbursed"})


def test_profile_outstanding_cannot_exceed_facility() -> None:
    profile = {
        "merchant_id": "M1",
        "name": "老王面馆",
        "industry": "catering",
        "region": "SH-PD",
        "grid_id": "G01",
        "account_manager_id": "AM7",
        "onboarding_date": "2024-05-01",
        "pos_loan_facility_fen": 100,
        "pos_loan_outstanding_fen": 101,
        "flags": ["key_account"],
        "updated_at": "2026-03-01T00:00:00Z",
    }
    with pytest.raises(ValidationError, match="exceeds"):
        MerchantProfile.model_validate(profile)
    ok = MerchantProfile.model_validate({**profile, "pos_loan_outstanding_fen": 100})
    assert ok.name == "老王面馆"


@given(amount=st.integers(min_value=1, max_value=MAX_AMOUNT_FEN))
def test_amounts_round_trip_exactly_through_json(amount: int) -> None:
    txn = PosTransaction.model_validate({**POS, "amount_fen": amount})
    again = PosTransaction.model_validate_json(txn.model_dump_json())
    assert again.amount_fen == amount
    assert again == txn


def test_every_topic_is_keyed_and_versioned() -> None:
    for spec in TOPICS:
        assert spec.name.endswith(".v1"), spec.name
        assert spec.key_field in spec.model.model_fields, spec.name


def test_json_schema_files_are_current() -> None:
    root = Path(__file__).resolve().parents[2] / "deploy" / "schemas"
    for name, text in render_all().items():
        path = root / name
        assert path.exists(), f"{name} missing: run `make schemas`"
        assert path.read_text(encoding="utf-8") == text, f"{name} stale: run `make schemas`"


def test_schemas_export_check_reports_stale_files(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["schemas", "export", "--out", str(tmp_path), "--check"])
    assert result.exit_code == 1
    assert "out of date" in result.output
    result = runner.invoke(main, ["schemas", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0
    result = runner.invoke(main, ["schemas", "export", "--out", str(tmp_path), "--check"])
    assert result.exit_code == 0, result.output


def test_settings_reject_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_BROKER_URL", "localhost:9092")
    with pytest.raises(ValidationError, match="kafka://"):
        Settings()
    monkeypatch.setenv("MONITOR_BROKER_URL", "kafka://a:1;b:2")
    assert Settings().bootstrap_servers == ["a:1", "b:2"]
    monkeypatch.setenv("MONITOR_BUSINESS_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError, match="time zone"):
        Settings()


def test_state_writes_are_no_more_frequent_than_flushes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_SINK_FLUSH_INTERVAL_S", "10")
    assert Settings().state_write_interval_s == 10.0  # the default gives way
    monkeypatch.setenv("MONITOR_STATE_WRITE_INTERVAL_S", "3")
    with pytest.raises(ValidationError, match="at least sink_flush_interval_s"):
        Settings()
    monkeypatch.setenv("MONITOR_SINK_FLUSH_INTERVAL_S", "1")
    assert Settings().state_write_interval_s == 3.0


def test_cli_reports_bad_settings_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_PARTITIONS", "0")
    result = CliRunner().invoke(main, ["schemas", "export", "--check"])
    assert result.exit_code == 2
    assert "MONITOR_PARTITIONS" in result.output


def test_secrets_are_not_shown() -> None:
    settings = Settings(warehouse_password="s3cret")  # type: ignore[arg-type]
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.model_dump())
