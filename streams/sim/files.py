"""The simulation on disk: one Parquet file per topic, labels.csv and manifest.json."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from detectors.evaluation import Label
from streams.errors import ConfigurationError, InputFileError
from streams.sim.arrow import SCHEMAS, TIME_COLUMN

FORMAT = "merchant-monitor-simulation/1"
MANIFEST = "manifest.json"
LABELS = "labels.csv"
LABEL_COLUMNS = ("merchant_id", "trajectory", "onset_date", "event_date")
#: Parquet settings are fixed here: together with the seed they make the files byte-identical.
_ROW_GROUP_ROWS = 1 << 20
_COMPRESSION = "zstd"


def topic_file(topic: str) -> str:
    return f"{topic}.parquet"


class SimWriter:
    """Writes day batches as they come: each day of a topic is one Parquet row group."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._writers = {
                topic: pq.ParquetWriter(
                    directory / topic_file(topic),
                    schema,
                    compression=_COMPRESSION,
                    write_statistics=True,
                )
                for topic, schema in SCHEMAS.items()
            }
        except OSError as exc:
            raise ConfigurationError(f"cannot write the simulation to {directory}: {exc}") from exc
        self.rows = dict.fromkeys(SCHEMAS, 0)

    def write(self, topic: str, table: pa.Table | pa.RecordBatch) -> None:
        if table.num_rows == 0:
            return
        batch = table if isinstance(table, pa.Table) else pa.Table.from_batches([table])
        self._writers[topic].write_table(batch, row_group_size=_ROW_GROUP_ROWS)
        self.rows[topic] += batch.num_rows

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def __enter__(self) -> SimWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def labels_csv(labels: Iterable[Label]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    for lab in sorted(labels, key=lambda item: item.merchant_id):
        writer.writerow(
            [lab.merchant_id, lab.trajectory, _iso(lab.onset_date), _iso(lab.event_date)]
        )
    return out.getvalue()


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def finish(
    directory: Path, rows: Mapping[str, int], labels: list[Label], header: dict[str, Any]
) -> dict[str, Any]:
    """Write labels.csv and the manifest (no wall-clock time in it: it must be reproducible)."""
    (directory / LABELS).write_text(labels_csv(labels), encoding="utf-8")
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab.trajectory] = counts.get(lab.trajectory, 0) + 1
    manifest = {
        "format": FORMAT,
        **header,
        "files": {
            topic: {
                "path": topic_file(topic),
                "rows": rows[topic],
                "time_column": TIME_COLUMN[topic],
                "sha256": sha256(directory / topic_file(topic)),
            }
            for topic in SCHEMAS
        },
        "labels": {"path": LABELS, "rows": len(labels), "sha256": sha256(directory / LABELS)},
        "trajectories": dict(sorted(counts.items())),
    }
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (directory / MANIFEST).write_text(text, encoding="utf-8")
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputFileError(f"{path} not found: is {directory} a simulation directory?") from exc
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path} is not readable JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise InputFileError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def read_tables(directory: Path, manifest: Mapping[str, Any]) -> dict[str, pa.Table]:
    tables = {}
    for topic, schema in SCHEMAS.items():
        path = directory / manifest["files"][topic]["path"]
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputFileError(f"cannot read {path}: {exc}") from exc
        if not table.schema.equals(schema):
            raise InputFileError(f"{path}: columns {table.schema.names} differ from {schema.names}")
        tables[topic] = table
    return tables


def read_labels(path: Path) -> list[Label]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != LABEL_COLUMNS:
        raise InputFileError(f"{path}: header {reader.fieldnames}, expected {list(LABEL_COLUMNS)}")
    labels = []
    for line, row in enumerate(reader, start=2):
        try:
            labels.append(
                Label(
                    row["merchant_id"],
                    row["trajectory"],
                    date.fromisoformat(row["onset_date"]) if row["onset_date"] else None,
                    date.fromisoformat(row["event_date"]) if row["event_date"] else None,
                )
            )
        except ValueError as exc:
            raise InputFileError(f"{path}:{line}: {exc}") from exc
    return labels
