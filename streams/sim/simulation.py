"""A finished simulation in memory: tables per topic, labels, profiles; files and messages."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from detectors.evaluation import Label
from schemas import topics
from schemas.inputs import MerchantProfile
from streams.sim import files
from streams.sim.arrow import SCHEMAS
from streams.sim.calendar import day_starts_utc
from streams.sim.engine import Engine
from streams.sim.payloads import Message, merged
from streams.sim.scenario import Scenario

log = logging.getLogger(__name__)


class Simulation:
    """Events of every topic (Arrow tables sorted by event time) with their ground truth."""

    def __init__(
        self, scenario: Scenario, seed: int, tables: dict[str, pa.Table], labels: list[Label]
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.tables = tables
        self.labels = labels
        self._profiles: list[MerchantProfile] | None = None

    @property
    def start(self) -> date:
        return self.scenario.population.start

    @property
    def days(self) -> int:
        return self.scenario.population.days

    @property
    def end(self) -> date:
        """The last day of the window."""
        return self.start + timedelta(days=self.days - 1)

    @property
    def window_start_utc(self) -> datetime:
        """Local midnight of the first day, as a UTC instant."""
        pop = self.scenario.population
        return datetime.fromtimestamp(int(day_starts_utc(pop.start, 1, pop.timezone)[0]), UTC)

    @property
    def merchant_ids(self) -> list[str]:
        return [lab.merchant_id for lab in self.labels]

    def table(self, topic: str) -> pa.Table:
        return self.tables[topic]

    def counts(self) -> dict[str, int]:
        """Rows per topic."""
        return {topic: table.num_rows for topic, table in self.tables.items()}

    @property
    def profiles(self) -> list[MerchantProfile]:
        """The latest profile of each merchant (what the compacted topic ends up holding)."""
        if self._profiles is None:
            latest: dict[str, dict[str, Any]] = {}
            for row in self.tables[topics.MERCHANT_PROFILES].to_pylist():
                latest[row["merchant_id"]] = row
            self._profiles = [MerchantProfile.model_validate(latest[m]) for m in sorted(latest)]
        return self._profiles

    def messages(self) -> Iterator[Message]:
        """(topic, key, value, event_time) of every event, in event-time order across topics."""
        return merged(self.tables)

    def write(self, directory: Path | str) -> dict[str, Any]:
        """Write the files (see docs/simulator.md); returns the manifest."""
        directory = Path(directory)
        with files.SimWriter(directory) as writer:
            for topic in SCHEMAS:
                for batch in self.tables[topic].to_batches():
                    writer.write(topic, batch)
        return files.finish(
            directory, writer.rows, self.labels, run_header(self.scenario, self.seed)
        )

    @classmethod
    def read(cls, directory: Path | str) -> Simulation:
        """Load a simulation written by :meth:`write` or ``merchant-monitor simulate``."""
        directory = Path(directory)
        manifest = files.read_manifest(directory)
        scenario = Scenario.from_mapping(manifest["scenario"], f"{directory / files.MANIFEST}")
        tables = files.read_tables(directory, manifest)
        labels = files.read_labels(directory / manifest["labels"]["path"])
        return cls(scenario, int(manifest["seed"]), tables, labels)


def run_header(scenario: Scenario, seed: int) -> dict[str, Any]:
    pop = scenario.population
    return {
        "seed": seed,
        "merchants": pop.merchants,
        "days": pop.days,
        "start": pop.start.isoformat(),
        "timezone": pop.timezone,
        "scenario": scenario.model_dump(mode="json"),
    }


def simulate(scenario: Scenario, seed: int) -> Simulation:
    """Run the scenario with the seed and keep every event in memory."""
    engine = Engine(scenario, seed)
    batches: dict[str, list[pa.Table]] = {topic: [] for topic in SCHEMAS}
    for day in engine.days():
        for topic, table in day.items():
            batches[topic].append(table)
    tables = {
        topic: pa.concat_tables(parts) if parts else SCHEMAS[topic].empty_table()
        for topic, parts in batches.items()
    }
    return Simulation(scenario, seed, tables, engine.labels)
