"""The warehouse backends against the real engine: chdb always, a ClickHouse server when set."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas.common import MAX_AMOUNT_FEN
from schemas.outputs import (
    Alert,
    AlertStatus,
    AlertType,
    OutreachTask,
    PosLoanLimit,
    PriorityExplanation,
    ReasonCode,
    Severity,
    TaskStatus,
    TaskType,
)
from schemas.settings import Settings
from schemas.warehouse import (
    WAREHOUSE_ROWS,
    AlertRow,
    DeadLetterRow,
    MerchantDailyRow,
    OutreachTaskRow,
    PipelineMetricRow,
    PosLoanLimitRow,
)
from streams.commands.db import command as db_command
from streams.errors import WarehouseError
from streams.migrations import default_directory, load_migrations, migrate
from streams.warehouse import INSERT_CHUNK_ROWS, ChdbWarehouse, Warehouse, open_warehouse
from tests.fixtures.warehouse import TEST_DATABASE

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 31, 23, 59, 58, 123000, tzinfo=UTC)  # millisecond precision: DateTime64(3)
#: Quotes, backslashes, escape sequences, control characters, non-ASCII and placeholder syntax.
HOSTILE = (
    "it's \"quoted\" \\ back\\slash \\N \\' '; DROP TABLE merchant_daily; --"
    "\t\n\r\0 é 商户 {v:String}"
)

ALERT = Alert(
    alert_id="alert-1",
    merchant_id="m-001",
    alert_type=AlertType.CHURN,
    severity=Severity.HIGH,
    status=AlertStatus.OPEN,
    version=3,
    score=0.875,
    decided_by="churn_policy",
    model_version="hst-2024.03",
    as_of_date=date(2024, 3, 31),
    opened_at=T0 - timedelta(days=2),
    updated_at=T0,
    reasons=(
        ReasonCode(feature="amount_sum_7d", value=1250.5, baseline=9800.0, contribution=0.6),
        ReasonCode(feature="days_since_last_txn", value=9.0),
    ),
    exposure_fen=MAX_AMOUNT_FEN,
)
TASK = OutreachTask(
    task_id="task-7",
    merchant_id="m-001",
    manager_id="am-42",
    task_type=TaskType.RETENTION_VISIT,
    status=TaskStatus.OPEN,
    priority=0.75,
    explanation=PriorityExplanation(
        value_at_stake_fen=987_654_321_01, urgency=0.5, likelihood_of_success=0.25
    ),
    reason=HOSTILE[:200],
    suggested_action="Visit the shop; ask about the new competitor",
    due_date=date(2024, 4, 5),
    created_at=T0 - timedelta(hours=1),
    updated_at=T0,
    source_alert_id="alert-1",
)
LIMIT = PosLoanLimit(
    merchant_id="m-001",
    version=12,
    as_of=T0,
    eligible=True,
    limit_fen=5_000_000_00,
    previous_limit_fen=6_000_000_00,
    cap_fen=MAX_AMOUNT_FEN,
    turnover_based_fen=7_123_456_78,
    repayment_based_fen=5_000_000_00,
    stability_haircut=0.15,
    risk_factor=0.2,
    outstanding_fen=1,
    reasons=("turnover_down_30pct", "it's 'quoted'"),
)

#: One row per table, with edge values: largest fen amounts, negative balances, end-of-month
#: instants, a non-ASCII and hostile text, empty and null optionals.
SAMPLES: dict[str, BaseModel] = {
    "merchant_daily": MerchantDailyRow(
        merchant_id="m-001",
        day=date(2024, 2, 29),
        pos_approved_count=4_000_000_000,
        pos_approved_amount_fen=MAX_AMOUNT_FEN,
        pos_declined_count=3,
        pos_refund_count=2,
        pos_refund_amount_fen=12_345,
        pos_chargeback_count=1,
        pos_chargeback_amount_fen=999,
        pos_reversal_count=5,
        acct_credit_count=6,
        acct_credit_amount_fen=987_654_321_09,
        acct_debit_count=7,
        acct_debit_amount_fen=123_456_789_01,
        acct_settlement_amount_fen=555,
        acct_end_balance_fen=-MAX_AMOUNT_FEN,
        version=2**62,
    ),
    "dead_letters": DeadLetterRow(
        source_topic="pos.transactions.v1",
        partition=3,
        offset=2**60,
        key="",
        reason="invalid_payload",
        error=HOSTILE,
        payload='{"amount_fen": "12.5"}',
        received_at=T0,
    ),
    "alerts": AlertRow.from_alert(ALERT),
    "outreach_tasks": OutreachTaskRow.from_task(TASK),
    "pos_loan_limits": PosLoanLimitRow.from_limit(LIMIT),
    "pipeline_metrics": PipelineMetricRow(
        ts=T0, worker="worker-1@host:6066", metric="consumer_lag", partition=-1, value=1e-9
    ),
}


def _table(warehouse: Warehouse, table: str) -> list[dict[str, Any]]:
    return warehouse.query("SELECT * FROM {table:Identifier}", {"table": table})


def _daily(merchant_id: str, day: date, version: int, amount_fen: int) -> dict[str, Any]:
    return MerchantDailyRow(
        merchant_id=merchant_id,
        day=day,
        pos_approved_count=1,
        pos_approved_amount_fen=amount_fen,
        version=version,
    ).model_dump()


# --- schema -------------------------------------------------------------------------------------


def test_second_migrate_applies_nothing(warehouse: ChdbWarehouse) -> None:
    assert migrate(warehouse) == []
    recorded = warehouse.query("SELECT version, name FROM schema_migrations FINAL ORDER BY version")
    expected = load_migrations(default_directory())
    assert recorded == [{"version": m.version, "name": m.name} for m in expected]


@pytest.mark.parametrize("table", sorted(WAREHOUSE_ROWS))
def test_table_columns_match_row_model(any_warehouse: Warehouse, table: str) -> None:
    columns = any_warehouse.query(
        "SELECT name, type FROM system.columns "
        "WHERE database = currentDatabase() AND table = {table:String} ORDER BY position",
        {"table": table},
    )
    names = [c["name"] for c in columns]
    expected = list(WAREHOUSE_ROWS[table].model_fields)
    if table == "merchant_daily":
        expected.append("inserted_at")
    assert names == expected
    for column in columns:
        if column["name"].endswith("_fen"):
            assert column["type"] == "Int64", column
        if column["name"].endswith(("_at", "ts", "as_of")):
            assert column["type"] == "DateTime64(3, 'UTC')", column


# --- inserts and queries ------------------------------------------------------------------------


@pytest.mark.parametrize("table", sorted(SAMPLES))
def test_round_trip_of_every_row_model(any_warehouse: Warehouse, table: str) -> None:
    sample = SAMPLES[table]
    assert any_warehouse.insert(table, [sample.model_dump()]) == 1
    [stored] = _table(any_warehouse, table)
    inserted_at = stored.pop("inserted_at", None)
    assert WAREHOUSE_ROWS[table].model_validate(stored) == sample
    for name, value in sample.model_dump().items():
        if isinstance(value, datetime):
            assert stored[name] == value
            assert stored[name].utcoffset() == timedelta(0)
        elif isinstance(value, int | str | date) and not isinstance(value, bool):
            assert stored[name] == value, name
            assert type(stored[name]) is type(value) or isinstance(value, str), name
    if table == "merchant_daily":
        assert abs(inserted_at - datetime.now(UTC)) < timedelta(minutes=5)


def test_int64_fen_stays_exact_beyond_float_precision(any_warehouse: Warehouse) -> None:
    row = _daily("m-big", date(2024, 1, 1), 1, 0)
    row["acct_end_balance_fen"] = -(2**62) - 1  # not representable as a float
    row["acct_credit_amount_fen"] = 2**63 - 1
    any_warehouse.insert("merchant_daily", [row])
    [stored] = any_warehouse.query(
        "SELECT acct_end_balance_fen AS balance, acct_credit_amount_fen AS credit, "
        "balance + credit AS total FROM merchant_daily"
    )
    assert stored == {"balance": -(2**62) - 1, "credit": 2**63 - 1, "total": 2**62 - 2}


def test_other_timezones_are_stored_as_the_same_instant(warehouse: ChdbWarehouse) -> None:
    shanghai = timezone(timedelta(hours=8))
    row = SAMPLES["pipeline_metrics"].model_dump() | {"ts": T0.astimezone(shanghai)}
    warehouse.insert("pipeline_metrics", [row])
    [stored] = _table(warehouse, "pipeline_metrics")
    assert stored["ts"] == T0
    assert stored["ts"].utcoffset() == timedelta(0)


def test_merchant_daily_keeps_the_latest_version_under_final(any_warehouse: Warehouse) -> None:
    day = date(2024, 5, 1)
    any_warehouse.insert("merchant_daily", [_daily("m-1", day, 1, 100), _daily("m-2", day, 1, 7)])
    any_warehouse.insert("merchant_daily", [_daily("m-1", day, 3, 300)])
    any_warehouse.insert("merchant_daily", [_daily("m-1", day, 2, 200)])  # late, older
    any_warehouse.insert("merchant_daily", [_daily("m-1", day, 3, 300)])  # replayed
    rows = any_warehouse.query(
        "SELECT merchant_id, version, pos_approved_amount_fen AS fen "
        "FROM merchant_daily FINAL ORDER BY merchant_id"
    )
    assert rows == [
        {"merchant_id": "m-1", "version": 3, "fen": 300},
        {"merchant_id": "m-2", "version": 1, "fen": 7},
    ]
    [total] = any_warehouse.query(
        "SELECT sum(pos_approved_amount_fen) AS fen FROM merchant_daily FINAL"
    )
    assert total == {"fen": 307}


def test_replayed_dead_letters_count_once(any_warehouse: Warehouse) -> None:
    letter = SAMPLES["dead_letters"].model_dump()
    other = letter | {"offset": 1}
    any_warehouse.insert("dead_letters", [letter, other])
    any_warehouse.insert("dead_letters", [letter | {"received_at": T0 + timedelta(days=40)}])
    [counted] = any_warehouse.query("SELECT count() AS n FROM dead_letters FINAL")
    assert counted == {"n": 2}


def test_batch_larger_than_a_chunk(warehouse: ChdbWarehouse) -> None:
    count = 2 * INSERT_CHUNK_ROWS + 17
    start = date(2024, 1, 1)
    rows = [
        _daily(f"m-{i % 997}", start + timedelta(days=i // 997), 1, i * 1_000_003)
        for i in range(count)
    ]
    assert warehouse.insert("merchant_daily", rows) == count
    [stored] = warehouse.query(
        "SELECT count() AS n, sum(pos_approved_amount_fen) AS fen FROM merchant_daily"
    )
    assert stored == {"n": count, "fen": sum(r["pos_approved_amount_fen"] for r in rows)}


def test_threads_can_share_one_warehouse(warehouse: ChdbWarehouse) -> None:
    def write(worker: int) -> int:
        rows = [
            _daily(f"m-{worker}", date(2024, 1, 1) + timedelta(days=d), 1, d) for d in range(50)
        ]
        return sum(warehouse.insert("merchant_daily", rows[i : i + 10]) for i in range(0, 50, 10))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(write, range(16))) == 800
    assert warehouse.query("SELECT count() AS n FROM merchant_daily") == [{"n": 800}]


def test_empty_insert_writes_nothing(warehouse: ChdbWarehouse) -> None:
    assert warehouse.insert("merchant_daily", []) == 0


# --- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [HOSTILE, "", "\\", "'", "\\N", "a\\tb", "end\\", "{x:String}", "%(x)s %s", "\x00\x01\x7f"],
)
def test_string_parameter_round_trips(any_warehouse: Warehouse, value: str) -> None:
    assert any_warehouse.query("SELECT {v:String} AS v", {"v": value}) == [{"v": value}]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text())
def test_any_text_parameter_round_trips(warehouse: ChdbWarehouse, value: str) -> None:
    assert warehouse.query("SELECT {v:String} AS v", {"v": value}) == [{"v": value}]


def test_parameter_matches_stored_text_without_injection(any_warehouse: Warehouse) -> None:
    letter = SAMPLES["dead_letters"].model_dump() | {"payload": HOSTILE}
    any_warehouse.insert("dead_letters", [letter])
    found = any_warehouse.query(
        "SELECT payload, error FROM dead_letters WHERE payload = {p:String} AND error = {e:String}",
        {"p": HOSTILE, "e": HOSTILE},
    )
    assert found == [{"payload": HOSTILE, "error": HOSTILE}]
    assert any_warehouse.query("SELECT count() AS n FROM merchant_daily") == [{"n": 0}]


def test_typed_parameters(any_warehouse: Warehouse) -> None:
    shanghai = timezone(timedelta(hours=8))
    [row] = any_warehouse.query(
        "SELECT {d:Date} AS d, {t:DateTime64(3, 'UTC')} AS t, {s:DateTime('UTC')} AS s, "
        "{i:Int64} AS i, {u:UInt64} AS u, {f:Float64} AS f, {b:Bool} AS b, "
        "{n:Nullable(String)} AS n, {e:String} AS e, {a:Array(String)} AS a, "
        "{ds:Array(Date)} AS ds, {m:Decimal(18, 2)} AS m",
        {
            "d": date(2024, 2, 29),
            "t": T0.astimezone(shanghai),
            "s": datetime(2024, 1, 1, 8, tzinfo=shanghai),
            "i": -(2**63),
            "u": 2**64 - 1,
            "f": 0.1,
            "b": True,
            "n": None,
            "e": AlertType.CHURN,
            "a": [HOSTILE, "", "x"],
            "ds": (date(2024, 1, 1), date(2024, 12, 31)),
            "m": Decimal("-12.34"),
        },
    )
    assert row == {
        "d": date(2024, 2, 29),
        "t": T0,
        "s": datetime(2024, 1, 1, tzinfo=UTC),
        "i": -(2**63),
        "u": 2**64 - 1,
        "f": 0.1,
        "b": True,
        "n": None,
        "e": "churn",
        "a": [HOSTILE, "", "x"],
        "ds": [date(2024, 1, 1), date(2024, 12, 31)],
        "m": Decimal("-12.34"),
    }


def test_parameters_filter_rows(any_warehouse: Warehouse) -> None:
    day = date(2024, 5, 1)
    any_warehouse.insert("merchant_daily", [_daily(f"m-{i}", day, 1, i) for i in range(5)])
    rows = any_warehouse.query(
        "SELECT merchant_id FROM merchant_daily "
        "WHERE merchant_id IN {ids:Array(String)} AND day = {day:Date} ORDER BY merchant_id",
        {"ids": ["m-1", "m-3", "m-9' OR '1'='1"], "day": day},
    )
    assert rows == [{"merchant_id": "m-1"}, {"merchant_id": "m-3"}]


def test_naive_datetime_parameter_is_refused(warehouse: ChdbWarehouse) -> None:
    with pytest.raises(WarehouseError, match="naive datetime"):
        warehouse.query("SELECT {t:DateTime64(3, 'UTC')} AS t", {"t": datetime(2024, 1, 1)})


def test_parameters_need_placeholders(warehouse: ChdbWarehouse) -> None:
    with pytest.raises(WarehouseError, match=r"no \{name:Type\} placeholder"):
        warehouse.query("SELECT %(v)s AS v", {"v": "x"})


def test_missing_parameter_is_a_warehouse_error(warehouse: ChdbWarehouse) -> None:
    with pytest.raises(WarehouseError, match=r"UNKNOWN_QUERY_PARAMETER|not set"):
        warehouse.query("SELECT {v:String} AS v, {w:String} AS w", {"v": "x"})


# --- errors -------------------------------------------------------------------------------------


def test_bad_sql_is_a_warehouse_error_with_the_statement(any_warehouse: Warehouse) -> None:
    with pytest.raises(
        WarehouseError, match=r"`SELEC 1 AS x`.*(SYNTAX_ERROR|Syntax error)"
    ) as info:
        any_warehouse.query("\n  SELEC 1 AS x\nFROM nowhere")
    assert info.value.__cause__ is not None


def test_unknown_table_is_a_warehouse_error(any_warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseError, match="no_such_table"):
        any_warehouse.insert("no_such_table", [{"x": 1}])
    with pytest.raises(WarehouseError, match="no_such_table"):
        any_warehouse.command("DROP TABLE no_such_table")


def test_bad_value_is_a_warehouse_error(any_warehouse: Warehouse) -> None:
    row = _daily("m-1", date(2024, 1, 1), 1, 0) | {"pos_approved_amount_fen": "lots"}
    with pytest.raises(WarehouseError, match="merchant_daily"):
        any_warehouse.insert("merchant_daily", [row])


@pytest.mark.parametrize(
    "table",
    ["merchant_daily; DROP TABLE alerts", "`merchant_daily`", "db.merchant_daily", "", "a\n"],
)
def test_table_name_must_be_an_identifier(warehouse: ChdbWarehouse, table: str) -> None:
    with pytest.raises(WarehouseError, match="invalid table name"):
        warehouse.insert(table, [_daily("m-1", date(2024, 1, 1), 1, 0)])


def test_column_names_must_be_identifiers(warehouse: ChdbWarehouse) -> None:
    row = _daily("m-1", date(2024, 1, 1), 1, 0) | {"version) SELECT 1 --": 1}
    with pytest.raises(WarehouseError, match="invalid column name"):
        warehouse.insert("merchant_daily", [row, row])


def test_rows_must_share_their_columns(warehouse: ChdbWarehouse) -> None:
    first = _daily("m-1", date(2024, 1, 1), 1, 0)
    second = {k: v for k, v in first.items() if k != "version"}
    with pytest.raises(WarehouseError, match=r"row 1 .*\['version'\]"):
        warehouse.insert("merchant_daily", [first, second])


def test_closed_warehouse_refuses_calls(warehouse: ChdbWarehouse) -> None:
    warehouse.close()
    warehouse.close()  # idempotent
    with pytest.raises(WarehouseError, match="closed"):
        warehouse.query("SELECT 1 AS x")


# --- the embedded engine's directory --------------------------------------------------------------


def test_data_survives_reopening(warehouse_factory: Any, tmp_path: Path) -> None:
    first = warehouse_factory()
    first.insert("merchant_daily", [_daily("m-1", date(2024, 1, 1), 1, 42)])
    first.close()
    again = warehouse_factory()  # migrates again: nothing to apply
    assert again.query("SELECT pos_approved_amount_fen AS fen FROM merchant_daily") == [{"fen": 42}]
    assert migrate(again) == []


def test_directory_locked_by_another_process(warehouse: ChdbWarehouse) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from streams.errors import WarehouseError\n"
        "from streams.warehouse import ChdbWarehouse\n"
        "try:\n"
        "    ChdbWarehouse(Path(sys.argv[1]), 'other').close()\n"
        "except WarehouseError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(warehouse.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 3, result.stderr
    assert "locked by another process" in result.stdout
    assert f"PID {os.getpid()}" in result.stdout
    # The holder is unaffected.
    assert warehouse.query("SELECT 1 AS x") == [{"x": 1}]


def test_second_directory_in_one_process_is_refused(
    warehouse: ChdbWarehouse, tmp_path: Path
) -> None:
    with pytest.raises(WarehouseError, match="already has the embedded warehouse"):
        ChdbWarehouse(tmp_path / "another", TEST_DATABASE)
    assert warehouse.query("SELECT 1 AS x") == [{"x": 1}]


def test_open_warehouse_is_embedded_by_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, warehouse_database="monitor_settings_test")
    with open_warehouse(settings) as opened:
        assert isinstance(opened, ChdbWarehouse)
        assert opened.path == (tmp_path / "warehouse").resolve()
        assert opened.query("SELECT currentDatabase() AS db") == [{"db": "monitor_settings_test"}]


def test_db_migrate_command(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, warehouse_database=TEST_DATABASE)
    runner = CliRunner()
    first = runner.invoke(db_command, ["migrate"], obj=settings)
    assert first.exit_code == 0, first.output
    names = [m.name for m in load_migrations(default_directory())]
    assert f"applied {len(names)} migration(s)" in first.output
    assert all(name in first.output for name in names)
    second = runner.invoke(db_command, ["migrate"], obj=settings)
    assert second.exit_code == 0, second.output
    assert second.output.startswith("up to date")
