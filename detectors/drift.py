"""Turnover drift per merchant: a two-sided Page-Hinkley test on log daily turnover (7-day mean)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class TurnoverDrift:
    """Per-merchant drift state: a few floats, serialised with the detector state.

    The same test as ``river.drift.PageHinkley`` (mode both), with an exponentially forgetting
    mean (``alpha``) so that an old level fades; ``direction`` says which way the level moved:
    -1 down (decline), +1 up (growth), 0 none. It restarts after an alarm, as River's does.
    Also keeps a fast and a slow exponential average of daily turnover (the merchant's own
    baseline for reason codes and lifecycle).

    Examples
    --------
    >>> d = TurnoverDrift()
    >>> for _ in range(40):
    ...     _ = d.update(10_000.0)
    >>> [d.update(2_000.0) for _ in range(10)][-1]
    -1
    """

    n: int = 0
    mean: float = 0.0
    sum_down: float = 0.0
    sum_up: float = 0.0
    direction: int = 0
    alarm_day: int = -1
    fast_fen: float = 0.0
    slow_fen: float = 0.0

    def update(
        self,
        turnover_fen_per_day: float,
        day: int = 0,
        *,
        delta: float = 0.05,
        threshold: float = 1.2,
        alpha: float = 0.97,
        min_instances: int = 21,
    ) -> int:
        """Feed one day's turnover (a 7-day daily mean is steadier); return the direction."""
        x = math.log1p(max(turnover_fen_per_day, 0.0))
        self.fast_fen += (turnover_fen_per_day - self.fast_fen) * (1.0 / 7.0)
        if self.n == 0:
            self.slow_fen = turnover_fen_per_day
        self.slow_fen += (turnover_fen_per_day - self.slow_fen) * (1.0 / 60.0)
        self.n += 1
        self.mean = x if self.n == 1 else alpha * self.mean + (1.0 - alpha) * x
        self.sum_down = max(0.0, self.sum_down + (self.mean - x - delta))
        self.sum_up = max(0.0, self.sum_up + (x - self.mean - delta))
        if self.n < min_instances:
            return 0
        if self.sum_down > threshold:
            self.direction, self.alarm_day = -1, day
            self.sum_down = self.sum_up = 0.0
        elif self.sum_up > threshold:
            self.direction, self.alarm_day = 1, day
            self.sum_down = self.sum_up = 0.0
        return self.direction

    def recent(self, day: int, within_days: int = 21) -> int:
        """The direction of an alarm raised in the last ``within_days``, else 0."""
        return self.direction if self.alarm_day >= 0 and day - self.alarm_day <= within_days else 0
