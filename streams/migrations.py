"""Schema migrations: apply deploy/clickhouse/NNNN_name.sql in order, once each, checksummed."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from streams.errors import WarehouseError
from streams.warehouse import Warehouse

log = logging.getLogger(__name__)

#: The bookkeeping table; created by `migrate` itself, in the connection's database.
#: (Spelled out in the SQL below too: statements are constant text.)
MIGRATIONS_TABLE = "schema_migrations"

_FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9][a-z0-9_]*)\.sql")
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""

_APPLIED = "SELECT version, name, checksum FROM schema_migrations FINAL ORDER BY version"


def default_directory() -> Path:
    """deploy/clickhouse of the repository this package runs from (installed editable)."""
    return Path(__file__).resolve().parent.parent / "deploy" / "clickhouse"


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: ``NNNN_name.sql``."""

    version: int
    name: str
    path: Path
    checksum: str
    statements: tuple[str, ...]


def split_statements(text: str) -> list[str]:
    """The statements of a migration file: ``;`` at the end of a line ends a statement.

    Full-line ``--`` comments are dropped first, so a comment may end with ``;``.

    >>> split_statements("-- two tables;\\nCREATE TABLE a (x Int8) ENGINE = Log;\\n"
    ...                  "CREATE TABLE b\\n(x Int8) ENGINE = Log;  \\n")
    ['CREATE TABLE a (x Int8) ENGINE = Log', 'CREATE TABLE b\\n(x Int8) ENGINE = Log']
    """
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in _STATEMENT_END.split(code) if part.strip()]


def _checksum(text: str) -> str:
    # Line endings normalised: a checkout with CRLF is the same migration.
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def load_migrations(directory: Path) -> list[Migration]:
    """Every ``NNNN_name.sql`` under ``directory``, by version.

    Any other ``.sql`` file there is an error rather than silently skipped: a misnamed
    migration would otherwise never run.
    """
    if not directory.is_dir():
        raise WarehouseError(f"migrations directory {directory} does not exist")
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise WarehouseError(
                f"migration file {path} is not named NNNN_name.sql (4 digits, lower-case name)"
            )
        version = int(match["version"])
        if version in migrations:
            raise WarehouseError(
                f"migrations {migrations[version].path.name} and {path.name} share version "
                f"{version:04d}"
            )
        text = path.read_text(encoding="utf-8")
        statements = tuple(split_statements(text))
        if not statements:
            raise WarehouseError(f"migration file {path} holds no statement")
        migrations[version] = Migration(
            version=version,
            name=path.stem,
            path=path,
            checksum=_checksum(text),
            statements=statements,
        )
    return [migrations[version] for version in sorted(migrations)]


def _applied(warehouse: Warehouse) -> dict[int, dict[str, object]]:
    return {int(row["version"]): row for row in warehouse.query(_APPLIED)}


def _check_unchanged(migrations: list[Migration], applied: dict[int, dict[str, object]]) -> None:
    """WarehouseError if an applied migration's file was edited or renamed since."""
    on_disk = {m.version: m for m in migrations}
    for version, row in applied.items():
        migration = on_disk.get(version)
        if migration is None:
            log.warning("applied migration %s has no file any more", row["name"])
            continue
        if row["name"] != migration.name:
            raise WarehouseError(
                f"migration version {version:04d} was applied as {row['name']} but the file is "
                f"now {migration.path.name}; restore the file name"
            )
        if row["checksum"] != migration.checksum:
            raise WarehouseError(
                f"migration file {migration.path} changed after it was applied (checksum "
                f"{str(row['checksum'])[:12]}... recorded, {migration.checksum[:12]}... now): "
                "restore it and put the change in a new migration"
            )


def _plan(
    warehouse: Warehouse, directory: Path | None
) -> tuple[list[Migration], dict[int, dict[str, object]]]:
    migrations = load_migrations(directory or default_directory())
    exists = warehouse.query(
        "SELECT count() AS n FROM system.tables "
        "WHERE database = currentDatabase() AND name = {table:String}",
        {"table": MIGRATIONS_TABLE},
    )[0]["n"]
    applied = _applied(warehouse) if exists else {}
    _check_unchanged(migrations, applied)
    return [m for m in migrations if m.version not in applied], applied


def pending_migrations(warehouse: Warehouse, directory: Path | None = None) -> list[Migration]:
    """Migrations not applied yet, after checking that applied ones are unchanged.

    Reads only: needs no DDL rights (a worker's database user may not have any).
    """
    return _plan(warehouse, directory)[0]


def check_migrated(warehouse: Warehouse, directory: Path | None = None) -> None:
    """WarehouseError unless every migration is applied and unchanged (for workers at start)."""
    pending = pending_migrations(warehouse, directory)
    if pending:
        names = ", ".join(m.name for m in pending)
        raise WarehouseError(
            f"the warehouse ({warehouse.database}) lacks migration(s) {names}: "
            "run `merchant-monitor db migrate`"
        )


def migrate(warehouse: Warehouse, directory: Path | None = None) -> list[str]:
    """Apply the pending migrations in version order; returns their names (``NNNN_name``).

    Idempotent: applied files are skipped. A file changed after it was applied raises
    WarehouseError before anything runs. A file is recorded only after all of its statements
    succeeded; ClickHouse DDL is not transactional, so a failed file is re-run whole next time
    (its statements are written to be idempotent).
    """
    warehouse.command(_CREATE_TABLE)
    pending, applied = _plan(warehouse, directory)
    newest = max(applied, default=0)
    names = []
    for migration in pending:
        if migration.version < newest:
            log.warning("applying %s after the newer %04d (out of order)", migration.name, newest)
        for number, statement in enumerate(migration.statements, start=1):
            try:
                warehouse.command(statement)
            except WarehouseError as exc:
                raise WarehouseError(
                    f"migration {migration.path.name}, statement {number} of "
                    f"{len(migration.statements)} failed: {exc}"
                ) from exc
        warehouse.insert(
            MIGRATIONS_TABLE,
            [
                {
                    "version": migration.version,
                    "name": migration.name,
                    "checksum": migration.checksum,
                    "applied_at": datetime.now(UTC),
                }
            ],
        )
        log.info("applied migration %s (%d statements)", migration.name, len(migration.statements))
        names.append(migration.name)
    return names
