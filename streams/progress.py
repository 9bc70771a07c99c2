"""A one-line progress display on stderr for long CLI work (counts, rate, ETA)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Rewrites one stderr line at most every ``interval_s``; ``done()`` ends the line."""

    def __init__(self, label: str, total: int | None = None, interval_s: float = 0.5) -> None:
        self.label = label
        self.total = total
        self.interval_s = interval_s
        self._start = time.monotonic()
        self._last = 0.0
        self._tty = sys.stderr.isatty()

    def update(self, count: int, total: int | None = None, *, force: bool = False) -> None:
        if total is not None:
            self.total = total
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        rate = count / elapsed
        text = f"{self.label}: {count:,}"
        if self.total:
            share = count / self.total
            text += f" / {self.total:,} ({share:.0%})"
            if 0 < count < self.total and rate > 0:
                text += f", ETA {(self.total - count) / rate:.0f} s"
        text += f", {rate:,.0f}/s, {elapsed:.1f} s"
        # On a terminal the line is rewritten in place; in logs each update is its own line.
        sys.stderr.write(("\r" + text + "\033[K") if self._tty else (text + "\n"))
        sys.stderr.flush()

    def done(self, count: int) -> None:
        self.update(count, force=True)
        if self._tty:
            sys.stderr.write("\n")
