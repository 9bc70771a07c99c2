"""Event-time watermark of one partition: which business days are final and may be closed."""

from __future__ import annotations

from datetime import datetime

from detectors.features.params import FeatureParams


class PartitionClock:
    """Watermark of one partition: max event time seen, minus the lateness, in business days.

    A business day is final once the newest event day of the partition is more than
    ``lateness_days`` later (the same rule ``step`` applies per merchant). When the partition is
    idle (no event for ``idle_timeout_s`` of wall-clock time), event time is assumed to have
    reached ``wall_clock_s - idle_timeout_s``, so silent days still close. No clock is read
    here: the worker passes wall-clock seconds explicitly.

    Parameters
    ----------
    params
        Feature parameters (lateness and business calendar).
    idle_timeout_s
        Wall-clock seconds without events after which the idle fallback applies.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> clock = PartitionClock(FeatureParams(lateness_days=3))
    >>> clock.observe(datetime(2026, 3, 1, 4, 0, tzinfo=UTC))
    >>> len(clock.closable_days())
    0
    >>> clock.observe(datetime(2026, 3, 5, 4, 0, tzinfo=UTC))  # 4 business days later
    >>> [str(FeatureParams().calendar.date_of_day(d)) for d in clock.closable_days()]
    ['2026-03-01']
    """

    __slots__ = (
        "closed_through_day",
        "idle_timeout_s",
        "last_event_wall_s",
        "max_event_s",
        "params",
    )

    def __init__(self, params: FeatureParams, idle_timeout_s: float = 300.0) -> None:
        self.params = params
        self.idle_timeout_s = idle_timeout_s
        #: Newest event time seen (whole seconds since the epoch); -1 before the first event.
        self.max_event_s = -1
        #: Wall-clock seconds of the last observed event, if the worker passed it.
        self.last_event_wall_s: float | None = None
        #: Last day handed out by closable_days; -1 before any.
        self.closed_through_day = -1

    def observe(self, event_time: datetime, wall_clock_s: float | None = None) -> None:
        """Record one event's time (call for every event, before ``step``)."""
        self.observe_epoch_seconds(int(event_time.timestamp()), wall_clock_s)

    def observe_epoch_seconds(self, epoch_s: int, wall_clock_s: float | None = None) -> None:
        """Record one event's time given in whole seconds since the epoch."""
        if epoch_s > self.max_event_s:
            if self.max_event_s < 0 and self.closed_through_day < 0:
                # Nothing before the first event's day can hold data of this partition.
                first = self.params.calendar.day_of_epoch_seconds(epoch_s)
                self.closed_through_day = first - 1
            self.max_event_s = epoch_s
        if wall_clock_s is not None:
            self.last_event_wall_s = wall_clock_s

    def watermark_day(self, wall_clock_s: float | None = None) -> int:
        """The newest final business day (events of it or before are late); -1 if none."""
        newest = self.max_event_s
        if newest < 0:
            return -1
        last_wall = self.last_event_wall_s
        if (
            wall_clock_s is not None
            and last_wall is not None
            and wall_clock_s - last_wall >= self.idle_timeout_s
        ):
            newest = max(newest, int(wall_clock_s - self.idle_timeout_s))
        day = self.params.calendar.day_of_epoch_seconds(newest)
        return day - self.params.lateness_days - 1

    def closable_days(self, wall_clock_s: float | None = None) -> range:
        """Days that became final since the last call; close them for every merchant."""
        final = self.watermark_day(wall_clock_s)
        start = self.closed_through_day + 1
        if final < start:
            return range(start, start)
        self.closed_through_day = final
        return range(start, final + 1)
