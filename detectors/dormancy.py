"""Dormancy (休眠): silence judged against the merchant's own gaps, weekday-aware, season-aware."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from detectors.base import Detector, DetectorParamsError, clip, feature
from detectors.seasonal import days_from_spring_festival

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Past silences at least this long are remembered as closures (seasonal memory).
MIN_CLOSURE_DAYS = 10
#: Closures remembered per merchant (the longest recent ones): a bounded memory.
MAX_CLOSURES = 2


class DormancyState(IntEnum):
    ACTIVE = 0
    QUIET = 1
    DORMANT = 2
    LOST = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(slots=True)
class DormancyMemory:
    """What the dormancy detector keeps per merchant besides the feature state (bounded)."""

    state: DormancyState = DormancyState.ACTIVE
    #: Last day the merchant was dormant or lost (-1 never): resolves delayed churn labels.
    last_dormant_day: int = -1
    #: (first silent day, length in days) of past closures, at most MAX_CLOSURES.
    closures: list[tuple[int, int]] = field(default_factory=list)
    #: Silence of the previous closed day: the length of a closure that ends today.
    last_silence_days: int = 0


@dataclass(frozen=True, slots=True)
class DormancyVerdict:
    state: DormancyState
    score: float
    silence_days: int
    threshold_days: float
    expected_gap_days: float
    missed_open_days: float
    seasonal: bool
    reactivated: bool
    decided_by: str


class DormancyDetector(Detector):
    """Silence against the merchant's own gaps: active, quiet, dormant, lost.

    Parameters
    ----------
    quiet_ratio
        Quiet when the expected trading days missed in the silence exceed this multiple of the
        merchant's q95 gap (in expected trading days).
    gap_multiplier
        Dormant threshold in calendar days is at least this multiple of the q95 gap.
    min_dormant_days
        Floor of the dormant threshold (days of silence), outside known closure seasons.
    season_dormant_days
        Floor when the silence began in, or ran into, a known closure season (the Spring
        Festival, or a closure the merchant made at the same time of a previous year). Two
        days above ``min_dormant_days`` by default: the dormancy convention allows flagging up
        to two days after the crossing, and a shop closed for the festival gets them to reopen.
    lost_after_days
        Silence after which a merchant is lost (payment-industry convention: 3 months, then
        re-verification).
    min_gaps
        Gaps needed before the merchant's own gap quantiles are trusted (warm-up).
    season_before_days, season_after_days
        A silence with a day from this many days before .. after New Year's Day is seasonal
        (for the memory of past closures: one that began at their time of year).

    Examples
    --------
    >>> det = DormancyDetector()
    >>> x = {"ever_active": 1.0, "days_since_last_txn": 25.0, "gap_q95_days": 2.0,
    ...      "gap_count": 40.0, "weekday_of_day": 2.0}
    >>> v = det.assess(x, 20_000)
    >>> v.state.label, v.threshold_days
    ('quiet', 30.0)
    >>> det.score_one({"days_since_last_txn": 3.0})  # never active: nothing to judge
    0.0
    """

    def __init__(
        self,
        quiet_ratio: float = 1.5,
        gap_multiplier: float = 3.0,
        min_dormant_days: int = 30,
        season_dormant_days: int = 32,
        lost_after_days: int = 90,
        min_gaps: int = 5,
        season_before_days: int = 14,
        season_after_days: int = 7,
    ) -> None:
        if not 0 < min_dormant_days <= season_dormant_days < lost_after_days:
            msg = "need 0 < min_dormant_days <= season_dormant_days < lost_after_days"
            raise DetectorParamsError(msg)
        self.quiet_ratio = quiet_ratio
        self.gap_multiplier = gap_multiplier
        self.min_dormant_days = min_dormant_days
        self.season_dormant_days = season_dormant_days
        self.lost_after_days = lost_after_days
        self.min_gaps = min_gaps
        self.season_before_days = season_before_days
        self.season_after_days = season_after_days

    def score_one(self, x: Mapping[str, float]) -> float:
        return self.assess(x, int(feature(x, "day", 0.0))).score

    def _missed_open_days(self, x: Mapping[str, float], silence: int) -> tuple[float, float]:
        """Expected trading days missed in the silence, and the mean weekday active rate."""
        rates = [feature(x, f"weekday_active_rate_{wd}_12w", 1.0) for wd in WEEKDAYS]
        mean_rate = max(sum(rates) / 7.0, 1e-3)
        today = int(feature(x, "weekday_of_day"))
        weeks, rest = divmod(silence, 7)
        missed = weeks * sum(rates) + sum(rates[(today - k) % 7] for k in range(rest))
        return missed, mean_rate

    def in_festival_window(self, start_day: int, day: int) -> bool:
        """Whether a silence from ``start_day`` to ``day`` has a day in the festival window."""
        return days_from_spring_festival(start_day) <= self.season_after_days and (
            days_from_spring_festival(day) >= -self.season_before_days
        )

    def _customary(self, start_day: int, memory: DormancyMemory | None) -> int:
        """Length of a closure made at the same time of a previous year (within two weeks),
        0 if none."""
        longest = 0
        for closed_from, length in memory.closures if memory else ():
            since = start_day - closed_from
            if since >= 300 and ((since % 365) <= 14 or (since % 365) >= 351):
                longest = max(longest, length)
        return longest

    def _seasonal(self, start_day: int, day: int, memory: DormancyMemory | None) -> bool:
        # Any day of the silence in the festival window: begun in it, or run into it.
        if self.in_festival_window(start_day, day) or self._customary(start_day, memory):
            return True
        # A stray sale in a festival shutdown: a silence that resumes within two days of one.
        for closed_from, length in memory.closures[-1:] if memory else ():
            reopened = closed_from + length
            if start_day - reopened <= 2 and self.in_festival_window(closed_from, reopened - 1):
                return True
        return False

    def assess(
        self, x: Mapping[str, float], day: int, memory: DormancyMemory | None = None
    ) -> DormancyVerdict:
        """The dormancy verdict of a closed day (``memory`` holds the merchant's closures)."""
        silence = int(feature(x, "days_since_last_txn"))
        previous = memory.state if memory else DormancyState.ACTIVE
        if feature(x, "ever_active") < 1.0:
            return DormancyVerdict(
                DormancyState.ACTIVE,
                0.0,
                silence,
                0.0,
                0.0,
                0.0,
                False,
                False,
                "rules:never_active",
            )
        reactivated = silence == 0 and previous >= DormancyState.DORMANT
        warm = feature(x, "gap_count") >= self.min_gaps
        gap_q95 = max(feature(x, "gap_q95_days", 1.0), 1.0) if warm else 7.0
        missed, mean_rate = self._missed_open_days(x, silence)
        expected_open = max(gap_q95 * mean_rate, 1.0)
        seasonal = silence > 0 and self._seasonal(day - silence + 1, day, memory)
        floor = self.season_dormant_days if seasonal else self.min_dormant_days
        past = self._customary(day - silence + 1, memory) if seasonal else 0
        if past:
            floor = max(floor, past + 7)  # a closure it made a year ago, with a week's slack
        threshold = max(float(floor), self.gap_multiplier * gap_q95)
        if silence >= self.lost_after_days:
            state = DormancyState.LOST
        elif silence > threshold:
            state = DormancyState.DORMANT
        elif missed > self.quiet_ratio * expected_open and silence > gap_q95:
            state = DormancyState.QUIET
        else:
            state = DormancyState.ACTIVE
        decided_by = "rules:own_gaps" if warm else "rules:default_gaps_warmup"
        score = clip(silence / (threshold + 1.0))
        return DormancyVerdict(
            state, score, silence, threshold, gap_q95, missed, seasonal, reactivated, decided_by
        )

    def remember(self, memory: DormancyMemory, verdict: DormancyVerdict, day: int) -> None:
        """Update the merchant's memory after a verdict (closures are learned at reactivation)."""
        if verdict.state >= DormancyState.DORMANT:
            memory.last_dormant_day = day
        note_silence(memory, verdict.silence_days, day)
        memory.state = verdict.state


def note_silence(memory: DormancyMemory, silence_days: int, day: int) -> None:
    """Record the POS silence at the end of ``day``: a silence of at least ``MIN_CLOSURE_DAYS``
    that ends on it (a sale) becomes a remembered closure (the latest ``MAX_CLOSURES``).

    >>> memory = DormancyMemory(last_silence_days=12)
    >>> note_silence(memory, 0, 20_100)
    >>> memory.closures, memory.last_silence_days
    ([(20088, 12)], 0)
    """
    ended = memory.last_silence_days
    if silence_days == 0 and ended >= MIN_CLOSURE_DAYS:
        memory.closures.append((day - ended, ended))
        # Keep the most recent ones: old habits fade, memory stays bounded.
        memory.closures = memory.closures[-MAX_CLOSURES:]
    memory.last_silence_days = silence_days
