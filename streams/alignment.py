"""Event-time alignment of the co-partitioned input topics of one partition.

POS and account events of a merchant share a partition number but live in two topics, and a
consumer reads each topic-partition at its own pace: while a backlog is read, one topic can run
weeks ahead of the other in event time. Like Kafka Streams' task-level timestamp alignment, we
(1) take the partition's watermark from the input that is furthest behind, and (2) hold back events
of an input that runs more than ``max_skew_s`` ahead of another one that still has records.
An input that has sent nothing for ``idle_s`` counts as caught up and holds no one back, unless
the broker says records of it are waiting beyond the consumer's position (``waiting``): then the
worker is only too busy to read it. A topic-partition's log is in event-time order, so an idle
input that ran ahead holds nothing older than what it already delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class InputProgress:
    """How far one input topic-partition has been read."""

    max_event_s: int = -1
    next_offset: int = 0
    last_wall_s: float | None = None


@dataclass
class PartitionAlignment:
    """The watermark of the inputs of one partition number.

    >>> align = PartitionAlignment(("pos", "acct"), max_skew_s=3600, idle_s=30, started_wall_s=0)
    >>> align.observe("pos", event_s=10_000, offset=5, wall_s=1)
    >>> align.observe("acct", event_s=2_000, offset=0, wall_s=1)
    >>> align.watermark_s(wall_s=2)   # the input furthest behind decides
    2000
    >>> align.observe("acct", event_s=9_500, offset=49, wall_s=3)
    >>> align.watermark_s(wall_s=3)
    9500
    >>> align.watermark_s(wall_s=40), align.all_idle(wall_s=40)  # all delivered is final
    (10000, True)
    """

    topics: tuple[str, ...]
    max_skew_s: int
    idle_s: float
    started_wall_s: float
    inputs: dict[str, InputProgress] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for topic in self.topics:
            self.inputs.setdefault(topic, InputProgress())

    def observe(self, topic: str, event_s: int, offset: int, wall_s: float) -> None:
        progress = self.inputs[topic]
        progress.max_event_s = max(progress.max_event_s, event_s)
        progress.next_offset = max(progress.next_offset, offset + 1)
        progress.last_wall_s = wall_s

    def _caught_up(self, topic: str, wall_s: float, waiting: int | None = None) -> bool:
        progress = self.inputs[topic]
        if waiting:
            return False  # the broker said more records are waiting
        last = progress.last_wall_s if progress.last_wall_s is not None else self.started_wall_s
        return wall_s - last >= self.idle_s

    def watermark_s(
        self, wall_s: float, waiting: dict[str, int | None] | None = None
    ) -> int | None:
        """Newest event time every busy input has reached; None while a busy input is unknown.

        ``waiting`` (records the broker holds beyond the consumer's position, where known) keeps
        an input that still has records waiting from counting as idle while the worker is too
        busy to read it.
        """
        marks = waiting or {}
        behind = [t for t in self.topics if not self._caught_up(t, wall_s, marks.get(t))]
        if behind:
            times = [self.inputs[t].max_event_s for t in behind]
            return None if min(times) < 0 else min(times)
        seen = [p.max_event_s for p in self.inputs.values() if p.max_event_s >= 0]
        return max(seen) if seen else None

    def all_idle(self, wall_s: float, waiting: dict[str, int | None] | None = None) -> bool:
        """True when no input has delivered anything for ``idle_s`` nor has records waiting."""
        marks = waiting or {}
        return all(self._caught_up(t, wall_s, marks.get(t)) for t in self.topics)
