"""The worker's detection stage: closed days in, alerts to the topic and the warehouse out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from detectors.features import FeatureParams, close_through, step
from schemas.inputs import LoanEvent, MerchantProfile, PosTransaction
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
    """Daily sales for 120 days, then silence to day 180: the snapshots (with features) of the
    days closed after the last sale; ``step`` closed the earlier days itself as it went."""
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


def test_profiles_set_the_segment_and_overdue_loans_raise_a_credit_alert(tmp_path: Path) -> None:
    params = FeatureParams()
    writer, table, segments = _Writer(), {}, {}
    sink = WarehouseSink(writer, max_buffer_rows=10_000)
    stage = DetectionStage(
        table,  # type: ignore[arg-type]
        sink,
        _Topic(),  # type: ignore[arg-type]
        tmp_path / "models.bin",
        segments=segments,
    )
    stage.on_profile(
        MerchantProfile(
            merchant_id="M-quiet",
            name="Noodle bar",
            industry="catering",
            region="R1",
            grid_id="G1",
            account_manager_id="AM1",
            onboarding_date="2024-01-02",
            pos_loan_facility_fen=5_000_000,
            pos_loan_outstanding_fen=3_000_000,
            updated_at=datetime(2025, 3, 1, tzinfo=UTC),
        )
    )
    assert segments[b"M-quiet"] == b"catering"
    snapshots = _silent_merchant_snapshots(params)
    overdue_day = snapshots[5].day
    stage.on_loan_event(
        LoanEvent(
            event_id="E1",
            loan_id="L1",
            merchant_id="M-quiet",
            event_time=datetime(2025, 6, 9, tzinfo=UTC),
            kind="overdue",
            days_past_due=12,
        ),
        overdue_day,
    )
    stage.on_snapshots(1, snapshots[5:])
    asyncio.run(sink.flush())
    credit = [row for row in writer.rows["alerts"] if row["alert_type"] == "credit"]
    assert credit
    assert credit[0]["exposure_fen"] == 3_000_000
