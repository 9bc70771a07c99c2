"""The worker's detection stage: closed days in, alerts to the topic and the warehouse out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from detectors.features import FeatureParams, close_through, step
from schemas.inputs import PosTransaction
from streams.alerting import DetectionStage
from streams.sink import WarehouseSink


class _Topic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


class _Writer:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def insert(self, table: str, rows: list[Any]) -> int:
        self.rows.setdefault(table, []).extend(dict(r) for r in rows)
        return len(rows)


def _silent_merchant_snapshots(params: FeatureParams) -> list[Any]:
    """Daily sales for 120 days, then 60 days of silence, closed day by day with features."""
    start = datetime(2025, 3, 1, 4, tzinfo=UTC)
    state = None
    for d in range(120):
        sale = PosTransaction(
            txn_id=f"t{d}",
            merchant_id="M-quiet",
            terminal_id="T1",
            event_time=start + timedelta(days=d),
            amount_fen=25_000,
            kind="approved",
            card_token=f"tok{d % 7:05d}x",
            channel="chip",
            mcc="5812",
        )
        state, _ = step(state, sale, params)
    assert state is not None
    last_day = params.calendar.day_of(start + timedelta(days=180))
    state, snapshots = close_through(state, last_day, params)
    return snapshots


def test_silence_raises_a_dormancy_alert_published_and_stored(tmp_path: Path) -> None:
    params = FeatureParams()
    writer, topic, table = _Writer(), _Topic(), {}
    sink = WarehouseSink(writer, max_buffer_rows=10_000)
    stage = DetectionStage(table, sink, topic, tmp_path / "models.bin")  # type: ignore[arg-type]
    stage.on_snapshots(0, _silent_merchant_snapshots(params))
    asyncio.run(stage.publish())
    asyncio.run(sink.flush())

    alerts = writer.rows.get("alerts", [])
    assert any(row["alert_type"] == "dormancy" for row in alerts)
    assert [key for key, _ in topic.sent] == [b"M-quiet"] * len(topic.sent)
    assert len(topic.sent) >= 1
    assert b"M-quiet" in table  # the detector state was kept
    assert writer.rows.get("model_metrics") is not None


def test_models_are_restored_after_a_restart(tmp_path: Path) -> None:
    params = FeatureParams()
    path = tmp_path / "models.bin"
    sink = WarehouseSink(_Writer(), max_buffer_rows=10_000)
    first = DetectionStage({}, sink, _Topic(), path)  # type: ignore[arg-type]
    first.on_snapshots(0, _silent_merchant_snapshots(params))
    first.save_models()
    again = DetectionStage({}, sink, _Topic(), path)  # type: ignore[arg-type]
    assert again.models.to_bytes() == first.models.to_bytes()
    path.write_bytes(b"not a model")
    fresh = DetectionStage({}, sink, _Topic(), path)  # type: ignore[arg-type]
    assert fresh.models.to_bytes() == type(fresh.models)().to_bytes()
