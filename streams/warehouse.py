"""The warehouse: one small interface over embedded chdb (default) and a ClickHouse server."""

from __future__ import annotations

import enum
import fcntl
import logging
import os
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from pydantic import SecretStr

from schemas.settings import Settings
from streams.errors import WarehouseError

log = logging.getLogger(__name__)

#: Table, column and database names: a plain identifier, so quoting it can never break out.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: A server-side parameter placeholder, ``{name:Type}``.
_PLACEHOLDER = re.compile(r"\{\s*[A-Za-z_][A-Za-z0-9_]*\s*:")
#: Rows encoded per chunk of a chdb insert: bounds the memory of one encoded chunk.
INSERT_CHUNK_ROWS = 50_000
_MAX_MESSAGE_CHARS = 2_000

#: What a parameter value becomes before the engine sees it (lists for Array parameters).
Plain = str | int | float | None | list["Plain"]


def check_identifier(name: str, what: str = "table") -> str:
    """``name`` if it is a plain identifier; a WarehouseError otherwise."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise WarehouseError(f"invalid {what} name {name!r}: expected [A-Za-z_][A-Za-z0-9_]*")
    return name


def _quote(name: str) -> str:
    # Only ever applied to names that passed check_identifier: no backtick can occur inside.
    return f"`{name}`"


def _first_line(sql: str) -> str:
    for line in sql.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= 200 else line[:197] + "..."
    return "<empty statement>"


def _engine_error(sql: str, exc: BaseException) -> WarehouseError:
    message = " ".join(str(exc).split())
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[: _MAX_MESSAGE_CHARS - 3] + "..."
    # No parameter values are added (they may carry customer data); the engine quotes one only
    # when it cannot parse it.
    return WarehouseError(f"warehouse rejected `{_first_line(sql)}`: {message}")


# --- parameters -------------------------------------------------------------------------------


def _plain(value: Any) -> Plain:
    """A parameter value as text-ready Python: strings, integers, floats, None and lists.

    Datetimes must be timezone-aware; they are sent in UTC, with the fraction only when there is
    one (a ``DateTime`` parameter does not accept a fraction, ``DateTime64`` accepts both).
    """
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, bool):
        return int(value)  # 1/0 parse as Bool and as UInt8 alike
    if value is None or isinstance(value, str | int | float):
        plain: str | int | float | None = value
        return plain
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise WarehouseError(
                f"naive datetime parameter {value.isoformat()}: pass a timezone-aware (UTC) value"
            )
        instant: datetime = value.astimezone(UTC)
        pattern = "%Y-%m-%d %H:%M:%S.%f" if instant.microsecond else "%Y-%m-%d %H:%M:%S"
        return instant.strftime(pattern)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [_plain(item) for item in items]
    raise WarehouseError(f"unsupported parameter type {type(value).__name__}")


def plain_parameters(sql: str, parameters: Mapping[str, Any] | None) -> dict[str, Plain]:
    """Checked parameters for ``{name:Type}`` placeholders, values made plain."""
    if not parameters:
        return {}
    if not _PLACEHOLDER.search(sql):
        # clickhouse-connect would fall back to client-side %-formatting: refuse instead.
        raise WarehouseError(
            f"parameters given but `{_first_line(sql)}` has no {{name:Type}} placeholder"
        )
    return {check_identifier(name, "parameter"): _plain(v) for name, v in parameters.items()}


#: Escapes of ClickHouse's text formats; parameters are parsed as escaped text by the engine.
_ESCAPES = str.maketrans(
    {"\\": "\\\\", "'": "\\'", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\b": "\\b"}
)


def escaped_text(value: Plain, top_level: bool = True) -> str:
    r"""A plain value as the text ClickHouse parses a query parameter from.

    The engine parses the text as a *value* of the declared type, never as SQL, so this is not
    SQL quoting; escaping only keeps tabs, newlines and backslashes in a string intact.
    clickhouse-connect does the same for a server. Inside an array, strings are quoted.

    >>> print(escaped_text("it's a \\ path\twith a tab"))
    it\'s a \\ path\twith a tab
    >>> print(escaped_text(["a'b", None, 3]))
    ['a\'b', NULL, 3]
    """
    if value is None:
        return "\\N" if top_level else "NULL"
    if isinstance(value, str):
        text = value.translate(_ESCAPES)
        return text if top_level else f"'{text}'"
    if isinstance(value, list):
        return "[" + ", ".join(escaped_text(item, top_level=False) for item in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


# --- rows ----------------------------------------------------------------------------------------


def _columns(table: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The column names of a batch: the keys of its first row, which every row must share."""
    check_identifier(table)
    keys = rows[0].keys()
    for index, row in enumerate(rows):
        if row.keys() != keys:
            diff = sorted(set(row.keys()) ^ set(keys))
            raise WarehouseError(
                f"row {index} for {table} has different columns than row 0 (differing: {diff})"
            )
    return [check_identifier(name, "column") for name in keys]


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"type {type(value).__name__} is not serialisable")


def encode_rows(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """A JSON array of the rows: dates ISO, datetimes ISO with offset (naive ones taken as UTC)."""
    batch = rows if isinstance(rows, list | tuple) else list(rows)
    return orjson.dumps(batch, default=_json_default, option=orjson.OPT_NAIVE_UTC)


# --- the interface ------------------------------------------------------------------------------


class Warehouse(ABC):
    """What the pipeline needs from the warehouse: statements, queries and batched inserts.

    Statements take server-side parameters only: ``{name:Type}`` placeholders in the SQL and
    their values in ``parameters``; no value is ever pasted into SQL text. Every engine error
    becomes a :class:`~streams.errors.WarehouseError`. Datetimes are stored at the precision of
    their column (``DateTime64(3)``: milliseconds) and read back timezone-aware.
    """

    database: str

    @abstractmethod
    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement (DDL, INSERT ... SELECT, OPTIMIZE, ...) and discard any result."""

    @abstractmethod
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a query; rows as dicts with Python values (int, float, str, date, datetime...)."""

    @abstractmethod
    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert rows in one batch; returns the number of rows written.

        Every row has the same keys (the column names; missing columns take their defaults);
        values are plain Python: int, float, str, bool, date, timezone-aware datetime, enum,
        list or tuple (Array), None (Nullable). Row models' ``model_dump()`` fits.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the connection; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# --- embedded chdb ------------------------------------------------------------------------------

# chdb runs one embedded server per process, bound to one directory: track which directory this
# process has open (and how many warehouses share it) to give a clear error instead of chdb's.
_registry_lock = threading.Lock()
_open_paths: dict[Path, int] = {}


def _raise_if_locked_elsewhere(path: Path) -> None:
    """WarehouseError if another process holds the directory (ClickHouse flocks ``status``)."""
    status = path / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            match = re.search(r"^PID: (\d+)", status.read_text(errors="replace"), re.MULTILINE)
            if match:
                holder = f" (PID {match.group(1)})"
            raise WarehouseError(
                f"the embedded warehouse directory {path} is locked by another process{holder}: "
                "one process opens a warehouse directory at a time; stop that process, use "
                "another MONITOR_DATA_DIR, or set MONITOR_WAREHOUSE_URL to share a ClickHouse "
                "server"
            ) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class ChdbWarehouse(Warehouse):
    """The embedded ClickHouse engine (chdb), persistent at ``path``.

    One process opens a directory at a time (another process gets a WarehouseError saying so),
    and a process has at most one directory open at a time (a chdb limit); it may switch to
    another directory after closing every warehouse on the first. Calls are serialised by a
    lock, so threads (``asyncio.to_thread``) may share one instance.
    """

    def __init__(self, path: Path, database: str) -> None:
        self.database = check_identifier(database, "database")
        self.path = Path(path).expanduser().resolve()
        if "?" in str(self.path):
            # chdb reads '?' as the start of connection options.
            raise WarehouseError(f"warehouse path must not contain '?': {self.path}")
        self._lock = threading.Lock()
        self._session: Any = None
        self.path.mkdir(parents=True, exist_ok=True)
        with _registry_lock:
            other = next((p for p in _open_paths if p != self.path), None)
            if other is not None:
                raise WarehouseError(
                    f"this process already has the embedded warehouse at {other} open; chdb "
                    f"opens one directory per process, so close it before opening {self.path}"
                )
            if self.path not in _open_paths:
                _raise_if_locked_elsewhere(self.path)
            try:
                # Imported here: a server deployment never loads the embedded engine.
                from chdb.session import Session

                self._session = Session(str(self.path))  # type: ignore[no-untyped-call]
            except RuntimeError as exc:
                _raise_if_locked_elsewhere(self.path)  # lost a race with another process
                raise WarehouseError(
                    f"cannot open the embedded warehouse at {self.path}: {exc}"
                ) from exc
            _open_paths[self.path] = _open_paths.get(self.path, 0) + 1
        try:
            self.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", {"db": self.database})
            # The session keeps its current database: unqualified names resolve in it.
            self.command("USE {db:Identifier}", {"db": self.database})
        except WarehouseError:
            self.close()
            raise
        log.debug("opened embedded warehouse %s (database %s)", self.path, self.database)

    def __repr__(self) -> str:
        return f"ChdbWarehouse(path={str(self.path)!r}, database={self.database!r})"

    def _run(self, sql: str, parameters: Mapping[str, Any] | None, fmt: str) -> Any:
        params = {
            name: escaped_text(value) for name, value in plain_parameters(sql, parameters).items()
        }
        with self._lock:
            if self._session is None:
                raise WarehouseError(f"{self!r} is closed")
            try:
                return self._session.query(sql, fmt, params=params)
            except RuntimeError as exc:  # chdb's ChdbError derives from RuntimeError
                raise _engine_error(sql, exc) from exc

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        self._run(sql, parameters, "Null")

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        # Parquet, unlike Arrow, carries DateTime as a UTC timestamp (Arrow gives a bare UInt32),
        # so every type comes back as the same Python value a server client returns.
        data = self._run(sql, parameters, "Parquet").bytes()
        if not data:
            return []
        rows: list[dict[str, Any]] = pq.read_table(pa.BufferReader(data)).to_pylist()
        return rows

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        columns = _columns(table, rows)
        # One JSON array streamed in chunks: measured fastest here (one orjson call per chunk,
        # not per row); best_effort parses ISO datetimes with their UTC offset.
        head = (
            f"INSERT INTO {_quote(table)} ({', '.join(_quote(c) for c in columns)}) "
            "SETTINGS date_time_input_format = 'best_effort'"
        )
        started = time.perf_counter()
        with self._lock:
            if self._session is None:
                raise WarehouseError(f"{self!r} is closed")
            try:
                with self._session.send_insert(head, "JSONEachRow") as inserter:
                    inserter.append(b"[")
                    for start in range(0, len(rows), INSERT_CHUNK_ROWS):
                        encoded = encode_rows(rows[start : start + INSERT_CHUNK_ROWS])
                        inserter.append((b"," if start else b"") + encoded[1:-1])
                    inserter.append(b"]")
                    inserter.finish()
            except orjson.JSONEncodeError as exc:
                raise WarehouseError(f"cannot encode rows for {table}: {exc}") from exc
            except RuntimeError as exc:
                raise _engine_error(head, exc) from exc
        log.debug(
            "inserted %d rows into %s in %.3f s", len(rows), table, time.perf_counter() - started
        )
        return len(rows)

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is None:
            return
        session.close()
        with _registry_lock:
            remaining = _open_paths.get(self.path, 1) - 1
            if remaining > 0:
                _open_paths[self.path] = remaining
            else:
                _open_paths.pop(self.path, None)
        log.debug("closed embedded warehouse %s", self.path)

    def __del__(self) -> None:
        # A forgotten warehouse would keep the process's one chdb directory registered.
        if getattr(self, "_session", None) is not None:
            self.close()


# --- ClickHouse server --------------------------------------------------------------------------


class ServerWarehouse(Warehouse):
    """A ClickHouse server over HTTP(S), through clickhouse-connect.

    Needs SELECT and INSERT on the database; creating the database (when it is missing) and
    migrations need DDL rights. Datetimes come back timezone-aware in UTC.
    """

    def __init__(self, url: str, user: str, password: SecretStr, database: str) -> None:
        # Imported here: the embedded default never needs the HTTP client.
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import ClickHouseError

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WarehouseError(f"warehouse URL must be http(s)://host:port, got {url!r}")
        port = parts.port or (8443 if parts.scheme == "https" else 8123)
        # Credentials come from settings, never from the URL: keep the URL printable.
        where = f"{parts.scheme}://{parts.hostname}:{port}"
        try:
            client = clickhouse_connect.get_client(
                host=parts.hostname,
                port=port,
                interface=parts.scheme,
                username=user,
                password=password.get_secret_value(),
                tz_mode="aware",
                # No server session: lets threads share the client without session locks.
                autogenerate_session_id=False,
            )
        except (ClickHouseError, OSError) as exc:
            raise WarehouseError(f"cannot connect to ClickHouse at {where}: {exc}") from exc
        self._attach(client, database, where)

    @classmethod
    def from_client(cls, client: Any, database: str, url: str = "client") -> ServerWarehouse:
        """Wrap a clickhouse-connect client made elsewhere (create it with ``tz_mode="aware"``).

        Tests use it with clickhouse-connect's in-process chdb interface to run this class's
        code against the real engine when no server is at hand.
        """
        warehouse = cls.__new__(cls)
        warehouse._attach(client, database, url)
        return warehouse

    def _attach(self, client: Any, database: str, url: str) -> None:
        from clickhouse_connect.driver.exceptions import ClickHouseError

        self._errors: tuple[type[BaseException], ...] = (ClickHouseError, OSError)
        self._client = client
        self.url = url
        self.database = check_identifier(database, "database")
        try:
            exists = self.query(
                "SELECT count() AS n FROM system.databases WHERE name = {db:String}",
                {"db": self.database},
            )[0]["n"]
            if not exists:
                # Only then: the workers' user may have no right to CREATE DATABASE at all.
                self.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", {"db": self.database})
        except WarehouseError:
            self.close()
            raise
        self._client.database = self.database
        log.debug("connected to ClickHouse at %s (database %s)", self.url, self.database)

    def __repr__(self) -> str:
        return f"ServerWarehouse(url={self.url!r}, database={self.database!r})"

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        params = plain_parameters(sql, parameters)
        try:
            self._client.command(sql, parameters=params or None)
        except self._errors as exc:
            raise _engine_error(sql, exc) from exc

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        params = plain_parameters(sql, parameters)
        try:
            return list(self._client.query(sql, parameters=params or None).named_results())
        except self._errors as exc:
            raise _engine_error(sql, exc) from exc

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        columns = _columns(table, rows)
        # Native format, column types from the table: values go in as Python objects.
        data = [[row[name] for name in columns] for row in rows]
        try:
            self._client.insert(table, data, column_names=columns, database=self.database)
        except self._errors as exc:
            raise _engine_error(f"INSERT INTO {table}", exc) from exc
        except (ValueError, TypeError) as exc:
            # clickhouse-connect serialises on the client: a bad value fails before the server.
            raise WarehouseError(f"cannot encode rows for {table}: {exc}") from exc
        return len(rows)

    def close(self) -> None:
        self._client.close()


def open_warehouse(settings: Settings) -> Warehouse:
    """The configured warehouse: a server when MONITOR_WAREHOUSE_URL is set, else embedded chdb.

    The database (MONITOR_WAREHOUSE_DATABASE) is created when missing; tables come from
    migrations (``merchant-monitor db migrate``).
    """
    if settings.warehouse_url:
        return ServerWarehouse(
            settings.warehouse_url,
            settings.warehouse_user,
            settings.warehouse_password,
            settings.warehouse_database,
        )
    return ChdbWarehouse(settings.warehouse_dir, settings.warehouse_database)
