"""The detection stage of the worker: closed merchant-days in, alerts and model metrics out."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust

from detectors.features import DaySnapshot
from detectors.pipeline import (
    DayScores,
    MonitorModels,
    MonitorParams,
    on_day_closed,
    on_loan_event,
    on_profile,
)
from detectors.state import DetectorState
from schemas.inputs import LoanEvent, MerchantProfile
from schemas.outputs import Alert
from schemas.warehouse import AlertRow
from streams.codec import encode
from streams.processor import in_partition
from streams.sink import WarehouseSink

log = logging.getLogger(__name__)

#: What runs after the detectors on each closed merchant-day (the action stage).
DayHandler = Callable[[int, DaySnapshot, DetectorState, list[Alert], DayScores | None], None]

#: Segment of a merchant whose profile (industry) has not arrived yet.
DEFAULT_SEGMENT = "unknown"


class DetectionStage:
    """Runs the detectors on every closed merchant-day the processor emits.

    Per-merchant detector state lives in its own changelog-backed table, on the merchant's
    partition. The shared River models are the worker's own: they are restored from
    ``models_path`` at start and saved there periodically and at shutdown, so a restarted worker
    continues from what it learned instead of relearning.
    """

    def __init__(
        self,
        table: faust.Table,
        sink: WarehouseSink,
        alerts_topic: faust.TopicT,
        models_path: Path,
        params: MonitorParams | None = None,
        segments: Any = None,
    ) -> None:
        self.table = table
        #: merchant id -> industry (bytes), from the profiles topic; picks the shared models.
        self.segments: Any = segments if segments is not None else {}
        self.sink = sink
        self.alerts_topic = alerts_topic
        self.models_path = models_path
        self.params = params or MonitorParams()
        self.models = self._load_models()
        self._outbox: list[Alert] = []
        self._metrics_day = -1
        self.alerts_raised = 0
        #: Called with (partition, snapshot, detector state, alerts, scores) after each day.
        self.day_handlers: list[DayHandler] = []

    def _load_models(self) -> MonitorModels:
        if self.models_path.exists():
            try:
                models = MonitorModels.from_bytes(self.models_path.read_bytes())
            except Exception:  # a damaged file must not stop the worker: start afresh, loudly
                log.exception("cannot restore models from %s; starting new ones", self.models_path)
            else:
                log.info("restored detector models from %s", self.models_path)
                return models
        return MonitorModels()

    def save_models(self) -> None:
        """Write the models atomically (a crash mid-write leaves the previous file)."""
        self.models_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.models_path.with_suffix(".partial")
        partial.write_bytes(self.models.to_bytes())
        os.replace(partial, self.models_path)

    def on_snapshots(self, partition: int, snapshots: list[DaySnapshot]) -> None:
        for snapshot in snapshots:
            key = snapshot.merchant_id.encode()
            raw = self.table.get(key)
            state = DetectorState.decode(raw) if raw is not None else None
            segment = self.segments.get(key)
            state, alerts, scores = on_day_closed(
                state,
                snapshot,
                segment.decode() if segment else DEFAULT_SEGMENT,
                self.models,
                self.params,
            )
            with in_partition(partition):
                self.table[key] = state.encode()
            for alert in alerts:
                row = AlertRow.from_alert(alert).model_dump()
                self.sink.add("alerts", (alert.merchant_id, alert.alert_id, alert.version), row)
            self._outbox.extend(alerts)
            for handler in self.day_handlers:
                handler(partition, snapshot, state, alerts, scores)
            if snapshot.features and snapshot.day > self._metrics_day:
                self._metrics_day = snapshot.day

    def _state(self, key: bytes) -> DetectorState | None:
        raw = self.table.get(key)
        return DetectorState.decode(raw) if raw is not None else None

    def on_profile(self, profile: MerchantProfile) -> None:
        """A profile update: the merchant's segment and POS-loan exposure.

        Called while Faust processes the profile's own record, so the table writes land on
        the merchant's partition without help.
        """
        key = profile.merchant_id.encode()
        self.segments[key] = profile.industry.value.encode()
        self.table[key] = on_profile(self._state(key), profile.pos_loan_outstanding_fen).encode()

    def on_loan_event(self, event: LoanEvent, day: int) -> None:
        """A POS-loan event of business day ``day``: loan facts and delinquency labels."""
        key = event.merchant_id.encode()
        state = on_loan_event(
            self._state(key),
            event.kind.value,
            day,
            event.days_past_due,
            event.amount_fen,
            self.models,
            self.params,
        )
        self.table[key] = state.encode()

    async def publish(self) -> None:
        """Send the alerts raised since the last call, and today's model metrics."""
        outbox, self._outbox = self._outbox, []
        for alert in outbox:
            await self.alerts_topic.send(key=alert.merchant_id.encode(), value=encode(alert))
        self.alerts_raised += len(outbox)
        if self._metrics_day >= 0:
            for row in self.models.metric_rows(self._metrics_day):
                data: dict[str, Any] = row.model_dump()
                self.sink.add("model_metrics", (row.model, row.metric, row.day), data)
