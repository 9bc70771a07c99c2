"""A one-line progress report on stderr: counts, rate, ETA (rewritten in place on a terminal)."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta


class ProgressLine:
    """Reports ``done`` of ``total`` (or, without a total, how far event time has got through
    ``span`` from ``origin``) at most once a second."""

    def __init__(
        self,
        verb: str,
        unit: str,
        *,
        enabled: bool = True,
        total: int | None = None,
        span: timedelta | None = None,
        origin: datetime | None = None,
    ) -> None:
        self.verb, self.unit = verb, unit
        self.enabled = enabled
        self.total = total
        self.span = span
        self.origin = origin
        self.started = time.monotonic()
        self._last = 0.0
        self._tty = sys.stderr.isatty()

    def update(self, done: int, event_time: datetime | None = None, *, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._last < 1.0):
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        text = f"{self.verb} {done:,}" + (f" / {self.total:,}" if self.total else "")
        rate = done / elapsed
        text += f" {self.unit}, {rate:,.{0 if rate >= 100 else 1}f} {self.unit}/s"
        if event_time is not None:
            text += f", event time {event_time:%Y-%m-%d %H:%M}"
        share = self._share(done, event_time)
        if final:
            text += f", {elapsed:.1f} s"
        elif share is not None and 0 < share < 1:
            text += f", ETA {timedelta(seconds=round(elapsed * (1 - share) / share))}"
        sys.stderr.write(("\r" + text + "\033[K") if self._tty else text + "\n")
        if final and self._tty:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def _share(self, done: int, event_time: datetime | None) -> float | None:
        if self.total:
            return done / self.total
        if self.span and self.origin and event_time:
            return (event_time - self.origin) / self.span
        return None
