"""The batch intake hands whole fetches to the processor with Faust's stream semantics: records
are tracked as unacknowledged when handed over and stale ones are skipped; no record read is
dropped by a resume of flow, and none is handed over twice in a generation."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from mode.utils.queues import FlowControlEvent

from streams.intake import BatchIntake


class _Consumer:
    def __init__(self) -> None:
        self.tracked: list[Any] = []
        self.acked: list[Any] = []

    def track_message(self, message: Any) -> None:
        self.tracked.append(message)

    def ack(self, message: Any) -> None:
        self.acked.append(message)


def _app() -> Any:
    flow = FlowControlEvent()
    flow.resume()
    return SimpleNamespace(flow_control=flow, consumer=_Consumer(), consumer_generation_id=2)


def _record(offset: int, generation: int = 2) -> Any:
    return SimpleNamespace(
        topic="pos", partition=0, offset=offset, generation_id=generation, tracked=False
    )


def _offsets(intake: BatchIntake, *fetches: list[Any]) -> list[int]:
    async def run() -> list[int]:
        for fetch in fetches:
            await intake.put(fetch)
        return [r.offset for r in await anext(intake.batches(max_records=100))]

    return asyncio.run(run())


def test_fetches_are_merged_tracked_and_stale_records_skipped() -> None:
    app = _app()
    intake = BatchIntake(app, ["pos"])

    async def first_batch() -> list[Any]:
        await intake.put([_record(0), _record(1, generation=1)])  # 1: an older generation's
        await intake.put([_record(2)])
        return await anext(intake.batches(max_records=10))

    batch = asyncio.run(first_batch())
    assert [r.offset for r in batch] == [0, 2]
    assert app.consumer.tracked == batch  # unacknowledged from now on
    assert app.consumer.acked == []
    intake.ack(batch)
    assert app.consumer.acked == batch


def test_a_resume_of_flow_keeps_what_was_fetched() -> None:
    # Faust resumes flow several times while a worker starts (table recovery), each time
    # clearing the streams' buffers: fetched records must not be lost to that.
    app = _app()
    intake = BatchIntake(app, ["pos"])
    asyncio.run(intake.put([_record(0), _record(1)]))
    app.flow_control.resume()
    assert intake.waiting()
    assert [r.offset for r in asyncio.run(anext(intake.batches(max_records=10)))] == [0, 1]


def test_records_read_again_in_a_generation_are_handed_over_once() -> None:
    app = _app()
    intake = BatchIntake(app, ["pos"])
    assert _offsets(intake, [_record(0), _record(1), _record(2)]) == [0, 1, 2]
    # A seek back to the committed offset (end of recovery) reads 1 and 2 again.
    assert _offsets(intake, [_record(1), _record(2), _record(3)]) == [3]
    # After a rebalance (a new generation) the partition is read again from its committed
    # offset, and its records go to the processor again.
    app.consumer_generation_id = 3
    assert _offsets(intake, [_record(1, generation=3), _record(2, generation=3)]) == [1, 2]
