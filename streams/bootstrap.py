"""A backfill's output directory: written by `backfill`, verified and seeded by the worker.

The directory holds ``bootstrap.parquet`` (merchant id, encoded feature state, encoded detector
state), ``detector-models.bin`` and ``manifest.json`` (through day, counts, sha256 of each file,
format versions). A worker started with ``MONITOR_BOOTSTRAP_DIR`` refuses a directory that does
not verify, seeds its tables with the states of its partitions' merchants that it does not hold
yet, and skips the source events of the days the backfill covered (docs/backfill.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka.partitioner import murmur2

from detectors.actions import ACTION_STATE_FORMAT
from detectors.features import FORMAT_VERSION, BusinessCalendar, FeatureParams
from detectors.pipeline import MODELS_FORMAT, MonitorModels
from detectors.state import STATE_FORMAT
from schemas import topics
from streams.errors import ConfigurationError
from streams.processor import in_partition, state_value

if TYPE_CHECKING:
    import faust

    from schemas.settings import Settings
    from streams.actions import ActionStage
    from streams.alerting import DetectionStage
    from streams.processor import BatchProcessor

log = logging.getLogger(__name__)

FORMAT = "merchant-monitor-bootstrap/2"
MANIFEST = "manifest.json"
STATES_FILE = "bootstrap.parquet"
MODELS_FILE = "detector-models.bin"
STATES_SCHEMA = pa.schema(
    [
        ("merchant_id", pa.string()),
        ("feature_state", pa.binary()),
        ("detector_state", pa.binary()),
        ("action_state", pa.binary()),
        ("limit", pa.binary()),
    ]
)
#: Table writes between yields to the event loop while seeding (lets the changelog drain).
_SEED_YIELD_EVERY = 1_000
_ROW_GROUP_ROWS = 65_536
_INPUTS = frozenset({topics.POS_TRANSACTIONS, topics.ACCOUNT_TRANSACTIONS})


class BootstrapError(ConfigurationError):
    """A bootstrap directory is missing, damaged, or does not fit this worker's settings."""


def partition_of(merchant_id: str, partitions: int) -> int:
    """The partition of the key ``merchant_id`` under Kafka's default partitioner (murmur2,
    as the Java client, kafka-python, aiokafka and so Faust's ``key_partition`` compute it).

    >>> [partition_of(m, 4) for m in ("M00001", "M00002", "M00003")]
    [0, 1, 0]
    """
    return int(murmur2(merchant_id.encode()) & 0x7FFFFFFF) % partitions


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def write_bootstrap(
    directory: Path,
    through: date,
    params: FeatureParams,
    states: Iterable[tuple[str, bytes, bytes, bytes, bytes | None]],
    models: MonitorModels,
    counts: Mapping[str, int],
) -> dict[str, Any]:
    """Write the directory; ``states`` are (merchant id, ``encode_state``, detector state,
    action state, the last published limit's JSON or None).

    The manifest is removed first and written last, so a directory left half-written by a
    crash has none and no worker accepts it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    rows = sorted(states)
    table = pa.table(
        {
            "merchant_id": [r[0] for r in rows],
            "feature_state": [r[1] for r in rows],
            "detector_state": [r[2] for r in rows],
            "action_state": [r[3] for r in rows],
            "limit": [r[4] for r in rows],
        },
        schema=STATES_SCHEMA,
    )
    partial = directory / (STATES_FILE + ".partial")
    pq.write_table(table, partial, compression="zstd", row_group_size=_ROW_GROUP_ROWS)
    os.replace(partial, directory / STATES_FILE)
    _atomic_write(directory / MODELS_FILE, models.to_bytes())
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "through": through.isoformat(),
        "through_day": BusinessCalendar.day_of_date(through),
        "business_timezone": params.business_timezone,
        "lateness_days": params.lateness_days,
        "feature_state_format": FORMAT_VERSION,
        "detector_state_format": STATE_FORMAT,
        "action_state_format": ACTION_STATE_FORMAT,
        "models_format": MODELS_FORMAT,
        "merchants": len(rows),
        "counts": dict(counts),
        "files": {
            name: {"sha256": sha256(directory / name), "bytes": (directory / name).stat().st_size}
            for name in (STATES_FILE, MODELS_FILE)
        },
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    _atomic_write(directory / MANIFEST, text.encode())
    return manifest


@dataclass
class Bootstrap:
    """A verified bootstrap directory (use :meth:`open`)."""

    directory: Path
    manifest: dict[str, Any]
    #: Events before this instant (the start of the day after the through day) are skipped.
    skip_before_s: int
    _partitions: dict[int, npt.NDArray[np.int16]] = field(default_factory=dict, repr=False)

    @property
    def through(self) -> date:
        return date.fromisoformat(self.manifest["through"])

    @property
    def through_day(self) -> int:
        return BusinessCalendar.day_of_date(self.through)

    @classmethod
    def open(cls, directory: Path, params: FeatureParams) -> Bootstrap:
        """Read and verify the manifest and the files' sha256; BootstrapError on any mismatch."""
        path = directory / MANIFEST
        where = f"MONITOR_BOOTSTRAP_DIR={directory}"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise BootstrapError(
                f"{where}: no {MANIFEST} (not a `merchant-monitor backfill` output, or the "
                "backfill did not finish)"
            ) from exc
        except (OSError, ValueError) as exc:
            raise BootstrapError(f"{where}: {MANIFEST} is not readable JSON: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            got = manifest.get("format") if isinstance(manifest, dict) else None
            raise BootstrapError(f"{where}: format {got!r}, this build reads {FORMAT!r}")
        expected = {
            "feature_state_format": FORMAT_VERSION,
            "detector_state_format": STATE_FORMAT,
            "action_state_format": ACTION_STATE_FORMAT,
            "models_format": MODELS_FORMAT,
            "business_timezone": params.business_timezone,
        }
        for name, value in expected.items():
            if manifest.get(name) != value:
                raise BootstrapError(
                    f"{where}: {name} is {manifest.get(name)!r}, this worker needs {value!r}"
                    + (" (MONITOR_BUSINESS_TIMEZONE)" if name == "business_timezone" else "")
                )
        files = manifest.get("files") or {}
        for name in (STATES_FILE, MODELS_FILE):
            entry = files.get(name)
            if not isinstance(entry, dict) or "sha256" not in entry:
                raise BootstrapError(f"{where}: the manifest lists no sha256 for {name}")
            try:
                actual = sha256(directory / name)
            except OSError as exc:
                raise BootstrapError(f"{where}: cannot read {name}: {exc}") from exc
            if actual != entry["sha256"]:
                raise BootstrapError(
                    f"{where}: {name} does not match its sha256 in {MANIFEST} "
                    "(changed or damaged after the backfill wrote it)"
                )
        try:
            through = date.fromisoformat(manifest["through"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BootstrapError(f"{where}: the manifest has no valid 'through' date") from exc
        skip = params.calendar.day_start_epoch_seconds(BusinessCalendar.day_of_date(through) + 1)
        return cls(directory, manifest, skip)

    def install_models(self, models_path: Path) -> bool:
        """Copy the learned models to ``models_path`` unless a models file is there already."""
        if models_path.exists():
            return False
        models_path.parent.mkdir(parents=True, exist_ok=True)
        partial = models_path.with_name(models_path.name + ".partial")
        shutil.copyfile(self.directory / MODELS_FILE, partial)
        os.replace(partial, models_path)
        return True

    def partitions(self, count: int) -> npt.NDArray[np.int16]:
        """Partition of every row of the states file for ``count`` partitions (cached)."""
        found = self._partitions.get(count)
        if found is None:
            ids = pq.read_table(self.directory / STATES_FILE, columns=["merchant_id"])
            found = np.array([partition_of(m, count) for m in ids.column(0).to_pylist()], np.int16)
            self._partitions[count] = found
        return found

    def states(self, partitions: set[int], count: int) -> Iterator[tuple[Any, ...]]:
        """(key, partition, feature state, detector state, action state, limit JSON or None) of
        the merchants of ``partitions``."""
        if not partitions:
            return
        of_row = self.partitions(count)
        wanted = np.isin(of_row, np.array(sorted(partitions), np.int16))
        start = 0
        for batch in pq.ParquetFile(self.directory / STATES_FILE).iter_batches(_ROW_GROUP_ROWS):
            rows = np.flatnonzero(wanted[start : start + batch.num_rows]).tolist()
            if rows:
                ids, features, detectors, actions, limits = (
                    batch.column(c).to_pylist() for c in range(5)
                )
                for i in rows:
                    key = ids[i].encode()
                    p = int(of_row[start + i])
                    yield key, p, features[i], detectors[i], actions[i], limits[i]
            start += batch.num_rows


async def seed_table(table: Any, entries: Iterable[tuple[bytes, int, bytes]]) -> tuple[int, int]:
    """Write each (key, partition, value) the table does not hold yet: (written, kept).

    A key the table holds (recovered from its changelog) is newer than the bootstrap: kept.
    """
    written = kept = 0
    for key, partition, value in entries:
        if table.get(key) is not None:
            kept += 1
            continue
        with in_partition(partition):
            table[key] = value
        written += 1
        if written % _SEED_YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return written, kept


def attach_bootstrap(
    settings: Settings,
    app: faust.App,
    processor: BatchProcessor,
    detection: DetectionStage,
    actions: ActionStage | None = None,
) -> Bootstrap | None:
    """Wire ``settings.bootstrap_dir`` (if set) into a worker: verify it (BootstrapError stops
    the start), install its models if the worker has none, seed the state tables after each
    recovery (and publish the seeded limits), and make the processor skip the events of the
    days it covers."""
    if settings.bootstrap_dir is None:
        return None
    bootstrap = Bootstrap.open(settings.bootstrap_dir, processor.params)
    if bootstrap.install_models(detection.models_path):
        detection.models = MonitorModels.from_bytes(detection.models_path.read_bytes())
        log.info("installed the backfill's detector models at %s", detection.models_path)
    processor.skip_before_s = bootstrap.skip_before_s
    count = settings.partitions

    def assigned() -> set[int]:
        # Source and table partitions are co-assigned; standby changelogs are not sources.
        return {tp.partition for tp in app.consumer.assignment() if tp.topic in _INPUTS}

    async def seed_features() -> None:
        parts = assigned()
        written, kept = await seed_table(
            processor.table,
            (
                (key, p, state_value(p, feature))
                for key, p, feature, *_ in bootstrap.states(parts, count)
            ),
        )
        log.info(
            "bootstrap %s: seeded %d merchant states of partitions %s (%d already held)",
            bootstrap.through,
            written,
            sorted(parts),
            kept,
        )

    async def seed_detectors() -> None:
        parts = assigned()
        written, kept = await seed_table(
            detection.table,
            ((key, p, state) for key, p, _, state, *_ in bootstrap.states(parts, count)),
        )
        log.info("bootstrap: seeded %d detector states (%d already held)", written, kept)

    # Recovery callbacks run after a table's changelog is read back and before the source
    # partitions resume, so a recovered (newer) state is seen and no event precedes the seed.
    processor.table.on_recover(seed_features)
    detection.table.on_recover(seed_detectors)
    if actions is not None:
        stage = actions

        async def seed_actions() -> None:
            parts = assigned()
            written, kept = await seed_table(
                stage.table,
                ((key, p, state) for key, p, _, _, state, _ in bootstrap.states(parts, count)),
            )
            log.info("bootstrap: seeded %d action states (%d already held)", written, kept)

        async def seed_limits() -> None:
            # The POS-loan product reads the compacted topic: a seeded limit is published too.
            seeded = []
            for key, p, *_, limit in bootstrap.states(assigned(), count):
                if limit is not None and stage.limits_table.get(key) is None:
                    with in_partition(p):
                        stage.limits_table[key] = limit
                    seeded.append((key, limit))
            for key, limit in seeded:
                await stage.limits_topic.send(key=key, value=limit)
            log.info("bootstrap: seeded and published %d POS-loan limits", len(seeded))

        stage.table.on_recover(seed_actions)
        stage.limits_table.on_recover(seed_limits)
    log.info(
        "bootstrap %s verified: events through %s are skipped (the backfill counted them)",
        bootstrap.directory,
        bootstrap.through,
    )
    return bootstrap
