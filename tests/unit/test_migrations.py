"""Migration files and the migrate/check logic, against an in-memory stand-in warehouse."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from schemas.warehouse import WAREHOUSE_ROWS
from streams.errors import WarehouseError
from streams.migrations import (
    MIGRATIONS_TABLE,
    check_migrated,
    default_directory,
    load_migrations,
    migrate,
    pending_migrations,
    split_statements,
)
from streams.warehouse import Warehouse


class FakeWarehouse(Warehouse):
    """Records statements; keeps schema_migrations rows; fails statements containing ``fail_on``."""

    database = "fake"

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.recorded: list[dict[str, Any]] = []
        self.fail_on: str | None = None

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        if self.fail_on is not None and self.fail_on in sql:
            raise WarehouseError("warehouse rejected it: boom")
        self.statements.append(sql)

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if "system.tables" in sql:
            assert parameters == {"table": MIGRATIONS_TABLE}
            created = any(f"EXISTS {MIGRATIONS_TABLE}" in s for s in self.statements)
            return [{"n": int(created)}]
        assert f"FROM {MIGRATIONS_TABLE}" in sql
        return sorted(
            ({k: row[k] for k in ("version", "name", "checksum")} for row in self.recorded),
            key=lambda row: row["version"],
        )

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        assert table == MIGRATIONS_TABLE
        self.recorded.extend(dict(row) for row in rows)
        return len(rows)

    def close(self) -> None:
        pass

    @property
    def migration_statements(self) -> list[str]:
        return [s for s in self.statements if MIGRATIONS_TABLE not in s]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    path = tmp_path / "migrations"
    path.mkdir()
    (path / "0001_first.sql").write_text(
        "-- the first table;\nCREATE TABLE IF NOT EXISTS a (x Int8) ENGINE = Log;\n"
        "CREATE TABLE IF NOT EXISTS b\n(\n    x Int8\n)\nENGINE = Log;\n",
        encoding="utf-8",
    )
    (path / "0002_second.sql").write_text(
        "CREATE TABLE IF NOT EXISTS c (s String DEFAULT 'a;b') ENGINE = Log;\n", encoding="utf-8"
    )
    return path


def test_split_statements_on_semicolon_at_end_of_line() -> None:
    text = (
        "-- header comment;\n"
        "CREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Log;\n"
        "\n"
        "  -- an indented comment;\n"
        "CREATE TABLE b\n"
        "(\n"
        "    x Int8 -- inline note\n"
        ")\n"
        "ENGINE = Log ;   \n"
        "SELECT 1\n"
    )
    assert split_statements(text) == [
        "CREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Log",
        "CREATE TABLE b\n(\n    x Int8 -- inline note\n)\nENGINE = Log",
        "SELECT 1",
    ]


def test_split_statements_of_only_comments_is_empty() -> None:
    assert split_statements("-- nothing here;\n\n   \n") == []


def test_load_migrations_orders_by_version(directory: Path) -> None:
    (directory / "0010_tenth.sql").write_text("SELECT 10;\n", encoding="utf-8")
    (directory / "README.md").write_text("not a migration", encoding="utf-8")
    migrations = load_migrations(directory)
    assert [(m.version, m.name) for m in migrations] == [
        (1, "0001_first"),
        (2, "0002_second"),
        (10, "0010_tenth"),
    ]
    assert len(migrations[0].statements) == 2
    assert all(re.fullmatch(r"[0-9a-f]{64}", m.checksum) for m in migrations)


@pytest.mark.parametrize("bad_name", ["1_short.sql", "0003-dash.sql", "0003_Upper.sql", "x.sql"])
def test_misnamed_sql_file_is_an_error(directory: Path, bad_name: str) -> None:
    (directory / bad_name).write_text("SELECT 1;\n", encoding="utf-8")
    with pytest.raises(WarehouseError, match=re.escape(bad_name)):
        load_migrations(directory)


def test_duplicate_version_is_an_error(directory: Path) -> None:
    (directory / "0002_other.sql").write_text("SELECT 1;\n", encoding="utf-8")
    with pytest.raises(WarehouseError, match="share version 0002"):
        load_migrations(directory)


def test_empty_migration_is_an_error(directory: Path) -> None:
    (directory / "0003_empty.sql").write_text("-- nothing yet\n", encoding="utf-8")
    with pytest.raises(WarehouseError, match=r"0003_empty\.sql holds no statement"):
        load_migrations(directory)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="does not exist"):
        load_migrations(tmp_path / "nowhere")


def test_migrate_applies_in_order_then_nothing(directory: Path) -> None:
    warehouse = FakeWarehouse()
    assert migrate(warehouse, directory) == ["0001_first", "0002_second"]
    assert warehouse.migration_statements == [
        "CREATE TABLE IF NOT EXISTS a (x Int8) ENGINE = Log",
        "CREATE TABLE IF NOT EXISTS b\n(\n    x Int8\n)\nENGINE = Log",
        "CREATE TABLE IF NOT EXISTS c (s String DEFAULT 'a;b') ENGINE = Log",
    ]
    assert [row["version"] for row in warehouse.recorded] == [1, 2]
    assert all(row["applied_at"].utcoffset().total_seconds() == 0 for row in warehouse.recorded)

    assert migrate(warehouse, directory) == []
    assert len(warehouse.migration_statements) == 3
    assert len(warehouse.recorded) == 2


def test_migrate_applies_only_new_files(directory: Path) -> None:
    warehouse = FakeWarehouse()
    migrate(warehouse, directory)
    (directory / "0003_third.sql").write_text("CREATE TABLE d (x Int8) ENGINE = Log;\n")
    assert migrate(warehouse, directory) == ["0003_third"]
    assert warehouse.migration_statements[-1] == "CREATE TABLE d (x Int8) ENGINE = Log"


def test_changed_applied_file_is_refused_before_anything_runs(directory: Path) -> None:
    warehouse = FakeWarehouse()
    migrate(warehouse, directory)
    (directory / "0001_first.sql").write_text("CREATE TABLE a (x Int16) ENGINE = Log;\n")
    (directory / "0003_third.sql").write_text("CREATE TABLE d (x Int8) ENGINE = Log;\n")
    ran = len(warehouse.migration_statements)
    with pytest.raises(WarehouseError, match=r"0001_first\.sql changed after it was applied"):
        migrate(warehouse, directory)
    with pytest.raises(WarehouseError, match=r"0001_first\.sql changed"):
        check_migrated(warehouse, directory)
    assert len(warehouse.migration_statements) == ran


def test_line_endings_do_not_change_the_checksum(directory: Path) -> None:
    warehouse = FakeWarehouse()
    migrate(warehouse, directory)
    path = directory / "0002_second.sql"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert migrate(warehouse, directory) == []


def test_renamed_applied_file_is_refused(directory: Path) -> None:
    warehouse = FakeWarehouse()
    migrate(warehouse, directory)
    (directory / "0002_second.sql").rename(directory / "0002_renamed.sql")
    with pytest.raises(WarehouseError, match="applied as 0002_second"):
        migrate(warehouse, directory)


def test_failed_statement_is_reported_and_not_recorded(directory: Path) -> None:
    warehouse = FakeWarehouse()
    warehouse.fail_on = "EXISTS b"
    with pytest.raises(WarehouseError, match=r"0001_first\.sql, statement 2 of 2 failed.*boom"):
        migrate(warehouse, directory)
    assert warehouse.recorded == []
    warehouse.fail_on = None
    assert migrate(warehouse, directory) == ["0001_first", "0002_second"]


def test_check_migrated_reports_pending_by_name(directory: Path) -> None:
    warehouse = FakeWarehouse()
    with pytest.raises(WarehouseError, match=r"0001_first, 0002_second.*db migrate"):
        check_migrated(warehouse, directory)
    # A check only reads: it creates nothing (the workers' database user cannot).
    assert warehouse.statements == []
    migrate(warehouse, directory)
    check_migrated(warehouse, directory)
    assert pending_migrations(warehouse, directory) == []


# --- the repository's own migrations ---------------------------------------------------------


def test_repository_migrations_load() -> None:
    migrations = load_migrations(default_directory())
    assert migrations[0].name == "0001_core"
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)


def test_repository_migrations_name_no_database() -> None:
    # Statements must run in the connection's database, whatever it is called.
    for migration in load_migrations(default_directory()):
        for statement in migration.statements:
            assert not re.search(r"\b(CREATE|DROP)\s+DATABASE\b|^\s*USE\b", statement, re.I)
            assert "merchant_monitor" not in statement, migration.name
            # A qualified name db.table in a DDL target would pin the database.
            assert not re.search(r"\bTABLE\s+(IF\s+NOT\s+EXISTS\s+)?\w+\.\w+", statement, re.I)


def test_every_row_model_has_a_table() -> None:
    created = {
        match
        for migration in load_migrations(default_directory())
        for statement in migration.statements
        for match in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", statement)
    }
    assert set(WAREHOUSE_ROWS) <= created
