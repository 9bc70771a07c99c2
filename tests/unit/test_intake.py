"""The batch intake hands whole fetches to the processor with Faust's stream semantics: records
are tracked as unacknowledged when handed over, stale ones are skipped, and a rebalance clears
what was fetched before it."""

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
    return SimpleNamespace(topic="pos", offset=offset, generation_id=generation, tracked=False)


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


def test_a_rebalance_clears_what_was_fetched_before_it() -> None:
    app = _app()
    intake = BatchIntake(app, ["pos"])
    asyncio.run(intake.put([_record(0)]))
    assert intake.waiting()
    app.flow_control.suspend()  # a rebalance starts ...
    app.flow_control.resume()  # ... and ends: the partitions' new owners read those records
    assert not intake.waiting()
    assert app.consumer.tracked == []
