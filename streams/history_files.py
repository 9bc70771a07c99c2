"""History files (CSV or Parquet) to plain-value columns for the backtest; bad rows reported.

POS files need ``merchant_id``, ``event_time`` (ISO 8601 timestamp, with or without offset, or
a ``YYYYMMDD`` / ``YYYY-MM-DD`` date) and ``amount`` (yuan, decimals allowed, converted exactly
to fen; a sub-fen amount is rejected, never rounded) or ``amount_fen`` (integer fen). Optional:
``kind`` (approved if absent), ``card_token`` (distinct cards read 1 without it), ``txn_id``
(de-duplication; without it every row is its own transaction). Account files need
``merchant_id``, ``event_time``, ``direction``, ``category``, ``amount``/``amount_fen`` and
``balance_after``/``balance_after_fen``; optional ``counterparty_bank_code``, ``txn_id``.
Times without an offset are in the business time zone.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow.parquet as pq

from detectors.features import FeatureParams, account_code, card_hash, lender_id, pos_txn_hash
from detectors.features.codes import POS_KIND_CODES
from schemas.inputs import AccountCategory, Direction
from streams.errors import InputFileError
from streams.history import AccountColumns, PosColumns
from streams.replay import to_fen

_KINDS = {kind.value: code for kind, code in POS_KIND_CODES.items()}
_NO_CARD = card_hash("")
_LENDER_CODE = account_code(AccountCategory.LOAN_REPAYMENT_OTHER, Direction.DEBIT)


@dataclass(frozen=True, slots=True)
class BadRow:
    file: str
    line: int
    reason: str
    detail: str


@dataclass(slots=True)
class Loaded:
    """Rows read per file kind, the bad ones, and the merchants seen (in order of first row)."""

    read: int = 0
    bad: list[BadRow] = field(default_factory=list)
    merchants: dict[str, int] = field(default_factory=dict)

    def index(self, merchant_id: str) -> int:
        found = self.merchants.get(merchant_id)
        if found is None:
            found = self.merchants[merchant_id] = len(self.merchants)
        return found

    def reasons(self) -> Counter[str]:
        return Counter(b.reason for b in self.bad)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InputFileError(f"{path} not found")
    if path.suffix.lower() == ".parquet":
        line = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
            for row in batch.to_pylist():
                line += 1
                yield line, row
        return
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        start = 2
        for record in reader:
            if len(record) != len(header):
                if record:
                    yield start, {"__error__": f"{len(record)} fields, header has {len(header)}"}
            else:
                yield start, dict(zip(header, record, strict=True))
            start = reader.line_num + 1


class _Times:
    """event_time text or datetime -> business day."""

    def __init__(self, params: FeatureParams) -> None:
        self.params = params
        self.zone = ZoneInfo(params.business_timezone)

    def day(self, value: Any) -> int:
        return self.instant(value)[0]

    def instant(self, value: Any) -> tuple[int, int | None]:
        """(business day, epoch microseconds) of a time; None microseconds for a bare date."""
        cal = self.params.calendar
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            return cal.day_of_date(value), None
        else:
            text = str(value).strip()
            if len(text) == 8 and text.isdigit():
                day = date(int(text[:4]), int(text[4:6]), int(text[6:]))
                return cal.day_of_date(day), None
            if len(text) == 10:
                return cal.day_of_date(date.fromisoformat(text)), None
            moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        epoch_s = int(moment.timestamp())
        return cal.day_of(moment), epoch_s * 1_000_000 + moment.microsecond


def _money(row: dict[str, Any], name: str) -> int:
    if row.get(f"{name}_fen") not in (None, ""):
        return to_fen(row[f"{name}_fen"], "fen")
    if row.get(name) not in (None, ""):
        return to_fen(row[name], "yuan")
    raise ValueError(f"no {name} (yuan) or {name}_fen")


def _required(path: Path, names: set[str], header: set[str]) -> None:
    missing = sorted(n for n in names if n not in header)
    if missing:
        raise InputFileError(f"{path}: missing column(s) {missing}")


def _header(path: Path) -> set[str]:
    if path.suffix.lower() == ".parquet":
        return set(pq.ParquetFile(path).schema_arrow.names)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return {h.strip() for h in next(csv.reader(fh), [])}


def read_pos(paths: list[Path], params: FeatureParams, loaded: Loaded) -> PosColumns:
    """POS rows of every file as columns; bad rows go to ``loaded.bad`` with file and line."""
    m: list[int] = []
    days: list[int] = []
    kinds: list[int] = []
    amounts: list[int] = []
    cards: list[int] = []
    txns: list[int] = []
    times = _Times(params)
    parts: list[PosColumns] = []
    for path in paths:
        if path.suffix.lower() == ".parquet":
            fast = _fast_parquet_pos(path, params, loaded)
            if fast is not None:
                parts.append(fast)
                continue
        header = _header(path)
        _required(path, {"merchant_id", "event_time"}, header)
        if not {"amount", "amount_fen"} & header:
            raise InputFileError(f"{path}: needs an amount (yuan) or amount_fen column")
        for line, row in _rows(path):
            loaded.read += 1
            try:
                if "__error__" in row:
                    raise ValueError(row["__error__"])
                mid = str(row.get("merchant_id") or "").strip()
                if not mid:
                    raise KeyError("merchant_id")
                day = times.day(row["event_time"])
                amount = _money(row, "amount")
                if amount <= 0:
                    raise ValueError(f"amount {amount} fen is not positive")
                kind_text = str(row.get("kind") or "approved").strip().lower()
                kind = _KINDS.get(kind_text)
                if kind is None:
                    raise ValueError(f"unknown kind {kind_text!r}")
            except KeyError as exc:
                loaded.bad.append(BadRow(str(path), line, "missing", f"empty {exc}"))
                continue
            except (ValueError, TypeError) as exc:
                loaded.bad.append(BadRow(str(path), line, "invalid", str(exc)))
                continue
            token = row.get("card_token")
            txn = row.get("txn_id")
            m.append(loaded.index(mid))
            days.append(day)
            kinds.append(kind)
            amounts.append(amount)
            cards.append((card_hash(str(token)) if token else _NO_CARD) if kind == 0 else 0)
            txns.append(pos_txn_hash(str(txn) if txn else f"{path.name}:{line}"))
    parts.append(
        PosColumns(
            np.array(m, np.int64),
            np.array(days, np.int64),
            np.array(kinds, np.int64),
            np.array(amounts, np.int64),
            cards,
            txns,
        )
    )
    return PosColumns(
        np.concatenate([p.merchant for p in parts]),
        np.concatenate([p.day for p in parts]),
        np.concatenate([p.kind for p in parts]),
        np.concatenate([p.amount_fen for p in parts]),
        [c for p in parts for c in p.card],
        [t for p in parts for t in p.txn],
    )


def read_accounts(paths: list[Path], params: FeatureParams, loaded: Loaded) -> AccountColumns:
    """Account bookings of every file as columns (bad rows reported like POS rows)."""
    cols: dict[str, list[Any]] = {
        k: [] for k in ("m", "day", "code", "amt", "bal", "us", "txn", "lender")
    }
    times = _Times(params)
    parts: list[AccountColumns] = []
    for path in paths:
        _required(path, {"merchant_id", "event_time", "direction", "category"}, _header(path))
        if path.suffix.lower() == ".parquet":
            fast = _fast_parquet_accounts(path, params, loaded)
            if fast is not None:
                parts.append(fast)
                continue
        for line, row in _rows(path):
            loaded.read += 1
            try:
                if "__error__" in row:
                    raise ValueError(row["__error__"])
                mid = str(row.get("merchant_id") or "").strip()
                if not mid:
                    raise ValueError("empty merchant_id")
                day, micros = times.instant(row["event_time"])
                bank = str(row.get("counterparty_bank_code") or "").strip() or None
                code = account_code(
                    AccountCategory(str(row["category"]).strip()),
                    Direction(str(row["direction"]).strip()),
                    bank,
                )
                amount = _money(row, "amount")
                balance = _money(row, "balance_after")
            except (ValueError, TypeError, KeyError) as exc:
                loaded.bad.append(BadRow(str(path), line, "invalid", str(exc)))
                continue
            cols["m"].append(loaded.index(mid))
            cols["day"].append(day)
            cols["code"].append(code)
            cols["amt"].append(amount)
            cols["bal"].append(balance)
            # The event time orders the day's bookings (the end-of-day balance), as in the
            # worker; a bare date counts as the start of its day, file order breaking ties.
            if micros is None:
                micros = params.calendar.day_start_epoch_seconds(day) * 1_000_000 + line
            cols["us"].append(micros)
            cols["txn"].append(str(row.get("txn_id") or f"{path.name}:{line}"))
            cols["lender"].append(lender_id(bank) if code == _LENDER_CODE else 0)
    parts.append(
        AccountColumns(
            np.array(cols["m"], np.int64),
            np.array(cols["day"], np.int64),
            np.array(cols["code"], np.int64),
            np.array(cols["amt"], np.int64),
            np.array(cols["bal"], np.int64),
            np.array(cols["us"], np.int64),
            cols["txn"],
            np.array(cols["lender"], np.int64),
        )
    )
    return AccountColumns(
        np.concatenate([p.merchant for p in parts]),
        np.concatenate([p.day for p in parts]),
        np.concatenate([p.code for p in parts]),
        np.concatenate([p.amount_fen for p in parts]),
        np.concatenate([p.balance_fen for p in parts]),
        np.concatenate([p.time_us for p in parts]),
        [t for p in parts for t in p.txn_id],
        np.concatenate([p.lender for p in parts]),
    )


def _fast_parquet_pos(path: Path, params: FeatureParams, loaded: Loaded) -> PosColumns | None:
    """Columnar read of a clean Parquet POS file (typed times, integer fen); None = use rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from streams.history import days_of_millis

    table = pq.read_table(path)
    names = set(table.schema.names)
    if not {"merchant_id", "event_time", "amount_fen"} <= names:
        return None
    times = table.column("event_time")
    if not pa.types.is_timestamp(times.type) or times.type.tz is None:
        return None
    if not pa.types.is_integer(table.column("amount_fen").type):
        return None
    mids = table.column("merchant_id")
    amounts = table.column("amount_fen")
    if mids.null_count or times.null_count or amounts.null_count:
        return None
    if pc.any(pc.less_equal(amounts, 0)).as_py() or pc.any(pc.equal(mids, "")).as_py():
        return None
    kinds_col = table.column("kind") if "kind" in names else None
    kind_codes = np.zeros(table.num_rows, np.int64)
    if kinds_col is not None:
        enc = pc.dictionary_encode(kinds_col).combine_chunks()
        values = enc.dictionary.to_pylist()
        if any(v not in _KINDS for v in values) or enc.null_count:
            return None
        lookup = np.array([_KINDS[v] for v in values], np.int64)
        kind_codes = lookup[enc.indices.to_numpy(zero_copy_only=False)]
    enc = pc.dictionary_encode(mids).combine_chunks()
    index = np.array([loaded.index(v) for v in enc.dictionary.to_pylist()], np.int64)
    merchant = index[enc.indices.to_numpy(zero_copy_only=False)]
    millis = np.asarray(pc.cast(times, pa.timestamp("ms", "UTC")).cast(pa.int64()).to_numpy())
    cards = [_NO_CARD] * table.num_rows
    if "card_token" in names:
        enc = pc.dictionary_encode(table.column("card_token")).combine_chunks()
        hashes = [card_hash(str(t)) if t else _NO_CARD for t in enc.dictionary.to_pylist()]
        idx = enc.indices.fill_null(0).to_numpy(zero_copy_only=False).tolist()
        cards = [hashes[i] for i in idx]
    cards = [c if k == 0 else 0 for c, k in zip(cards, kind_codes.tolist(), strict=True)]
    if "txn_id" in names and not table.column("txn_id").null_count:
        txns = [pos_txn_hash(t) for t in table.column("txn_id").to_pylist()]
    else:
        txns = [pos_txn_hash(f"{path.name}:{i + 1}") for i in range(table.num_rows)]
    loaded.read += table.num_rows
    return PosColumns(
        merchant,
        days_of_millis(millis, params),
        kind_codes,
        np.asarray(amounts.to_numpy(), np.int64),
        cards,
        txns,
    )


def _fast_parquet_accounts(
    path: Path, params: FeatureParams, loaded: Loaded
) -> AccountColumns | None:
    """Columnar read of a clean Parquet account file (typed times, integer fen, known
    categories); None = read it row by row, with every bad row reported."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from streams.history import days_of_millis

    table = pq.read_table(path)
    names = set(table.schema.names)
    needed = {"merchant_id", "event_time", "direction", "category"}
    needed |= {"amount_fen", "balance_after_fen"}
    if not needed <= names:
        return None
    times = table.column("event_time")
    if not pa.types.is_timestamp(times.type) or times.type.tz is None:
        return None
    for name in ("amount_fen", "balance_after_fen"):
        if not pa.types.is_integer(table.column(name).type):
            return None
    if any(table.column(n).null_count for n in needed):
        return None
    mids = table.column("merchant_id")
    if pc.any(pc.equal(mids, "")).as_py():
        return None
    banks: list[str | None] = [None] * table.num_rows
    if "counterparty_bank_code" in names:
        banks = [
            (str(b).strip() or None) if b is not None else None
            for b in table.column("counterparty_bank_code").to_pylist()
        ]
    codes: list[int] = []
    lenders: list[int] = []
    known: dict[tuple[str, str, bool], int] = {}
    try:
        for cat, way, bank in zip(
            table.column("category").to_pylist(),
            table.column("direction").to_pylist(),
            banks,
            strict=True,
        ):
            key = (cat, way, bank is not None)
            code = known.get(key)
            if code is None:
                code = known[key] = account_code(
                    AccountCategory(cat.strip()), Direction(way.strip()), bank
                )
            codes.append(code)
            lenders.append(lender_id(bank) if code == _LENDER_CODE else 0)
    except ValueError:
        return None  # an unknown category or direction: the row reader reports the line
    enc = pc.dictionary_encode(mids).combine_chunks()
    index = np.array([loaded.index(v) for v in enc.dictionary.to_pylist()], np.int64)
    merchant = index[enc.indices.to_numpy(zero_copy_only=False)]
    micros = np.asarray(pc.cast(times, pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy())
    millis = micros // 1000
    if "txn_id" in names and not table.column("txn_id").null_count:
        txns = [str(t) for t in table.column("txn_id").to_pylist()]
    else:
        txns = [f"{path.name}:{i + 1}" for i in range(table.num_rows)]
    loaded.read += table.num_rows
    return AccountColumns(
        merchant,
        days_of_millis(np.asarray(millis, np.int64), params),
        np.array(codes, np.int64),
        np.asarray(table.column("amount_fen").to_numpy(), np.int64),
        np.asarray(table.column("balance_after_fen").to_numpy(), np.int64),
        np.asarray(micros, np.int64),
        txns,
        np.array(lenders, np.int64),
    )
