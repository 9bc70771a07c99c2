"""Replay of a bank's own exported history (CSV or Parquet) as topic messages, in event-time order.

A mapping (TOML) says which of their columns holds each of our fields, how their codes map to
ours, and whether amounts are in fen or yuan (converted exactly, never through a float). Every
row is validated with the topic's pydantic model; a bad row is reported with its file and line,
counted and written to the rejects file; it is never silently dropped.
"""

from __future__ import annotations

import csv
import heapq
import logging
import tomllib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas import topics
from schemas.inputs import AccountTransaction, PosTransaction
from streams.errors import InputFileError
from streams.sim.payloads import Message

log = logging.getLogger(__name__)

TopicChoice = Literal["pos", "account"]
MODELS: dict[TopicChoice, tuple[str, type[BaseModel]]] = {
    "pos": (topics.POS_TRANSACTIONS, PosTransaction),
    "account": (topics.ACCOUNT_TRANSACTIONS, AccountTransaction),
}
#: Fields holding money: converted from the export's unit to integer fen.
AMOUNT_FIELDS = ("amount_fen", "balance_after_fen")
_PARQUET_BATCH_ROWS = 65_536


class ReplayMapping(BaseModel):
    """How the export's columns and codes map to a topic's fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: TopicChoice | None = None
    columns: dict[str, str] = Field(default_factory=dict, description="our field -> their column")
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="our field -> {their value: our value}"
    )
    defaults: dict[str, str] = Field(default_factory=dict, description="our field -> constant")
    amount_unit: Literal["fen", "yuan"] = "fen"
    timezone: str = Field(default="Asia/Shanghai", description="Zone of times without an offset.")
    time_format: str | None = Field(default=None, description="strptime format; default ISO 8601")
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not a known IANA time zone") from exc
        return value

    @classmethod
    def load(cls, path: Path) -> ReplayMapping:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputFileError(f"cannot read mapping {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InputFileError(f"mapping {path} is not valid TOML: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise InputFileError(f"mapping {path} is invalid:\n" + "\n".join(lines)) from exc

    def for_topic(self, choice: TopicChoice | None) -> tuple[TopicChoice, str, type[BaseModel]]:
        if choice and self.topic and choice != self.topic:
            raise InputFileError(f"--topic {choice} contradicts the mapping's topic {self.topic!r}")
        chosen = choice or self.topic
        if chosen is None:
            raise InputFileError("which topic? give --topic pos|account or topic in the mapping")
        name, model = MODELS[chosen]
        unknown = sorted(
            (set(self.columns) | set(self.defaults) | set(self.values)) - set(model.model_fields)
        )
        if unknown:
            raise InputFileError(f"mapping names fields that {model.__name__} lacks: {unknown}")
        return chosen, name, model

    def column_of(self, field_name: str) -> str | None:
        """Their column for our field: mapped, else a column of the same name if not defaulted."""
        if field_name in self.columns:
            return self.columns[field_name]
        return None if field_name in self.defaults else field_name


@dataclass(frozen=True, slots=True)
class Reject:
    file: str
    line: int
    reason: str
    detail: str
    row: Mapping[str, Any]


@dataclass(slots=True)
class ReplayReport:
    """Counts of a replay: rows read, accepted, rejected (by reason), published."""

    files: list[str] = field(default_factory=list)
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    published: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [
            f"files: {len(self.files)}; rows read: {self.read:,}; accepted: {self.accepted:,}; "
            f"rejected: {self.rejected:,}; published: {sum(self.published.values()):,}"
        ]
        lines += [f"  rejected for {reason}: {n:,}" for reason, n in self.reasons.most_common()]
        return "\n".join(lines)


class RowConverter:
    """One raw row (their columns) -> one validated model, or a (reason, detail) rejection."""

    def __init__(self, mapping: ReplayMapping, model: type[BaseModel]) -> None:
        self.mapping = mapping
        self.model = model
        self.zone = ZoneInfo(mapping.timezone)
        self.sources = {name: mapping.column_of(name) for name in model.model_fields}

    def required_columns(self) -> set[str]:
        """Columns the file must have: those of required fields without a default."""
        return {
            column
            for name, info in self.model.model_fields.items()
            if info.is_required() and (column := self.sources[name]) is not None
        }

    def convert(self, row: Mapping[str, Any]) -> BaseModel | tuple[str, str]:
        data: dict[str, Any] = dict(self.mapping.defaults)
        for name, column in self.sources.items():
            if column is None or column not in row:
                continue
            value = row[column]
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if name in self.mapping.values and isinstance(value, str):
                value = self.mapping.values[name].get(value.strip(), value)
            try:
                data[name] = self._field(name, value)
            except ValueError as exc:
                return name, str(exc)
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            detail = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors()
            )
            return ".".join(map(str, first["loc"])) or "row", detail

    def _field(self, name: str, value: Any) -> Any:
        if name in AMOUNT_FIELDS:
            return to_fen(value, self.mapping.amount_unit)
        if name == "event_time":
            return self._time(value)
        return value.strip() if isinstance(value, str) else value

    def _time(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            moment = value
        else:
            text = str(value).strip()
            try:
                if self.mapping.time_format:
                    moment = datetime.strptime(text, self.mapping.time_format)
                else:
                    moment = datetime.fromisoformat(text)
            except ValueError as exc:
                raise ValueError(f"cannot read time {text!r}: {exc}") from exc
        return moment if moment.tzinfo else moment.replace(tzinfo=self.zone)


def to_fen(value: Any, unit: Literal["fen", "yuan"]) -> int:
    """An amount in the export's unit as exact integer fen.

    >>> to_fen("12.34", "yuan"), to_fen("1,200", "yuan"), to_fen(1250, "fen"), to_fen(0.1, "yuan")
    (1234, 120000, 1250, 10)
    """
    if isinstance(value, bool):
        raise ValueError(f"amount {value!r} is not a number")
    # A float's repr is its shortest round-trip text: 0.1 stays "0.1", not 0.1000000000000000055.
    text = repr(value) if isinstance(value, float) else str(value).strip().replace(",", "")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"amount {value!r} is not a number") from exc
    if not amount.is_finite():
        raise ValueError(f"amount {value!r} is not finite")
    fen = amount * 100 if unit == "yuan" else amount
    if fen != fen.to_integral_value():
        raise ValueError(f"amount {value!r} {unit} is not a whole number of fen")
    return int(fen)


def _csv_rows(path: Path, mapping: ReplayMapping) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding=mapping.encoding, newline="") as fh:
            yield from _csv_records(fh, path, mapping)
    except UnicodeDecodeError as exc:
        # The whole file is in the wrong encoding, not one bad row: say so once.
        raise InputFileError(
            f"{path} is not {mapping.encoding} text ({exc}); set encoding"
        ) from exc


def _csv_records(
    fh: TextIO, path: Path, mapping: ReplayMapping
) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(fh, delimiter=mapping.delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputFileError(f"{path}:1: unreadable header: {exc}") from exc
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, {"__error__": f"malformed CSV: {exc}"}
            start = reader.line_num + 1
            continue
        if not record:
            pass  # a blank line is not a row
        elif len(record) != len(header):
            cells = {str(i): cell for i, cell in enumerate(record)}
            yield (
                start,
                {"__error__": f"{len(record)} fields, the header has {len(header)}", **cells},
            )
        else:
            yield start, dict(zip(header, record, strict=True))
        start = reader.line_num + 1


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    line = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                line += 1
                yield line, row
    except (OSError, pa.ArrowException) as exc:
        raise InputFileError(f"{path}: unreadable Parquet after row {line}: {exc}") from exc


def _header(path: Path, mapping: ReplayMapping) -> list[str]:
    try:
        if path.suffix.lower() == ".parquet":
            return list(pq.ParquetFile(path).schema_arrow.names)
        with path.open(encoding=mapping.encoding, newline="") as fh:
            return next(csv.reader(fh, delimiter=mapping.delimiter), [])
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{path} is not {mapping.encoding} text ({exc}); set encoding"
        ) from exc
    except (OSError, csv.Error, pa.ArrowException) as exc:
        raise InputFileError(f"cannot read the header of {path}: {exc}") from exc


class Replay:
    """Validates the files up front (reporting every bad row), then yields messages merged
    across files in event-time order. Rows of a file that is already in time order are
    streamed; a file out of order is sorted in memory."""

    def __init__(
        self, paths: Sequence[Path], mapping: ReplayMapping, topic: TopicChoice | None
    ) -> None:
        self.paths = list(paths)
        self.mapping = mapping
        self.choice, self.topic, model = mapping.for_topic(topic)
        self.converter = RowConverter(mapping, model)
        self.report = ReplayReport(files=[str(p) for p in self.paths])
        self._bad: list[set[int]] = []
        self._ordered: list[bool] = []

    def rows(self, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
        if not path.is_file():
            raise InputFileError(f"{path} not found")
        if path.suffix.lower() not in (".csv", ".parquet"):
            raise InputFileError(f"{path}: only .csv and .parquet exports are read")
        missing = self.converter.required_columns() - set(_header(path, self.mapping))
        if missing:
            raise InputFileError(f"{path}: missing column(s) {sorted(missing)} (see --mapping)")
        return (
            _parquet_rows(path)
            if path.suffix.lower() == ".parquet"
            else _csv_rows(path, self.mapping)
        )

    def check(self) -> Iterator[Reject]:
        """First pass over every file: count rows, yield each reject, learn file order."""
        for path in self.paths:
            bad: set[int] = set()
            ordered, previous = True, None
            for line, row in self.rows(path):
                self.report.read += 1
                result = self._convert(row)
                if isinstance(result, tuple):
                    bad.add(line)
                    self.report.rejected += 1
                    self.report.reasons[result[0]] += 1
                    yield Reject(str(path), line, result[0], result[1], row)
                    continue
                self.report.accepted += 1
                moment = result.event_time  # type: ignore[attr-defined]
                ordered = ordered and (previous is None or previous <= moment)
                previous = moment
            self._bad.append(bad)
            self._ordered.append(ordered)
            if not ordered:
                log.info("%s is not in event-time order: it is sorted in memory", path)

    def _convert(self, row: Mapping[str, Any]) -> BaseModel | tuple[str, str]:
        if "__error__" in row:
            return "row", str(row["__error__"])
        return self.converter.convert(row)

    def _accepted(self, index: int) -> Iterator[tuple[datetime, int, int, Message]]:
        bad = self._bad[index]
        for line, row in self.rows(self.paths[index]):
            if line in bad:
                continue
            model = self._convert(row)
            if isinstance(model, tuple):  # the file changed since the first pass
                raise InputFileError(f"{self.paths[index]}:{line} changed during the replay")
            message = self._message(model)
            yield message[3], index, line, message

    def _file_messages(self, index: int) -> Iterator[tuple[datetime, int, int, Message]]:
        rows = self._accepted(index)
        yield from rows if self._ordered[index] else sorted(rows, key=lambda item: item[:3])

    def _message(self, model: BaseModel) -> Message:
        payload = orjson.dumps(model.model_dump(mode="json"))
        key = str(model.merchant_id).encode()  # type: ignore[attr-defined]
        return self.topic, key, payload, model.event_time  # type: ignore[attr-defined]

    def messages(self) -> Iterator[Message]:
        """Accepted rows of every file as messages, merged in event-time order (run check first)."""
        if len(self._bad) != len(self.paths):
            raise RuntimeError("call check() before messages()")
        merged = heapq.merge(
            *(self._file_messages(i) for i in range(len(self.paths))), key=lambda item: item[:3]
        )
        for *_, message in merged:
            yield message


def write_rejects(rejects: Iterator[Reject], path: Path, limit_log: int = 20) -> int:
    """Write rejects as CSV (file, line, reason, detail, row as JSON); log the first few."""
    count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["file", "line", "reason", "detail", "row"])
        for reject in rejects:
            count += 1
            if count <= limit_log:
                log.warning(
                    "%s:%d rejected (%s): %s",
                    reject.file,
                    reject.line,
                    reject.reason,
                    reject.detail,
                )
            raw = {str(k): v for k, v in reject.row.items()}
            writer.writerow(
                [
                    reject.file,
                    reject.line,
                    reject.reason,
                    reject.detail,
                    orjson.dumps(raw, default=str).decode(),
                ]
            )
    if count > limit_log:
        log.warning("%d more rejected rows, all in %s", count - limit_log, path)
    return count
