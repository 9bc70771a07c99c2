"""Parameters of the feature engine and the business calendar (instant -> business day number)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detectors.features.errors import FeatureParamsError

if TYPE_CHECKING:
    from schemas.settings import Settings

SECONDS_PER_DAY = 86_400
#: Day number 0 is 1970-01-01, a Thursday; ``(day + 3) % 7`` is the weekday with Monday = 0.
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

#: Day buckets kept per merchant; a power of two so that a day's slot is ``day & RING_MASK``.
RING_DAYS = 128
RING_MASK = RING_DAYS - 1
#: "A quarter ago" is 13 weeks back, so that the compared windows hold the same weekdays.
QUARTER_DAYS = 91
#: Length of the windows compared by ``trend_28d_vs_quarter_ago`` (whole weeks).
QUARTER_TREND_DAYS = 28
#: Oldest bucket a day close reads: ``day - HISTORY_DAYS + 1`` (the quarter-ago trend window).
HISTORY_DAYS = QUARTER_DAYS + QUARTER_TREND_DAYS
#: Largest POS window; distinct-card registers and lender and payment lists keep this long.
MAX_WINDOW_DAYS = 90
#: Account bookings are kept per day for this long (the 30-day cash-flow windows).
ACCOUNT_DAYS = 30
#: How far a merchant's newest bucket may run ahead of its next day to close before the engine
#: closes days itself: beyond it the ring would overwrite buckets that close still reads.
MAX_OPEN_DAYS = RING_DAYS - HISTORY_DAYS
#: Largest lateness allowed: it keeps two days of slack inside MAX_OPEN_DAYS.
MAX_LATENESS_DAYS = MAX_OPEN_DAYS - 2


class BusinessCalendar:
    """Maps UTC instants to business-day numbers (days since 1970-01-01 in the business zone).

    The UTC offset is cached per UTC day; a day on which the zone changes its offset (a DST
    switch) is resolved exactly through zoneinfo for every instant of that day.

    Examples
    --------
    >>> from datetime import UTC
    >>> cal = BusinessCalendar("Asia/Shanghai")
    >>> day = cal.day_of(datetime(2026, 3, 1, 16, 30, tzinfo=UTC))  # 00:30 on 2 March in Beijing
    >>> BusinessCalendar.date_of_day(day)
    datetime.date(2026, 3, 2)
    >>> BusinessCalendar.weekday_of_day(day)  # a Monday
    0
    """

    __slots__ = ("_offsets", "_varying", "_zone", "timezone")

    def __init__(self, timezone: str = "Asia/Shanghai") -> None:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"business timezone {timezone!r} is not a known IANA time zone"
            raise FeatureParamsError(msg) from exc
        self.timezone = timezone
        self._zone = zone
        self._offsets: dict[int, int] = {}
        self._varying: set[int] = set()

    def __reduce__(self) -> tuple[Any, ...]:
        # The cache is rebuilt on demand; pickles carry the zone name only.
        return (BusinessCalendar, (self.timezone,))

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.timezone!r})"

    def _offset_at(self, epoch_s: int) -> int:
        off = datetime.fromtimestamp(epoch_s, self._zone).utcoffset()
        return 0 if off is None else int(off.total_seconds())

    def offset_seconds(self, epoch_s: int) -> int:
        """UTC offset of the business zone at an instant, in seconds."""
        utc_day = epoch_s // SECONDS_PER_DAY
        off = self._offsets.get(utc_day)
        if off is not None:
            return off
        if utc_day not in self._varying:
            start = utc_day * SECONDS_PER_DAY
            first = self._offset_at(start)
            if first == self._offset_at(start + SECONDS_PER_DAY - 1):
                self._offsets[utc_day] = first
                return first
            self._varying.add(utc_day)
        return self._offset_at(epoch_s)

    def day_of_epoch_seconds(self, epoch_s: int) -> int:
        """Business-day number of an instant given in whole seconds since the Unix epoch."""
        return (epoch_s + self.offset_seconds(epoch_s)) // SECONDS_PER_DAY

    def day_of(self, when: datetime) -> int:
        """Business-day number of a timezone-aware instant."""
        # int(timestamp()) floors exactly for 2000-2100: a float keeps microseconds there.
        return self.day_of_epoch_seconds(int(when.timestamp()))

    def day_start_epoch_seconds(self, day: int) -> int:
        """The instant (seconds since the epoch) at which a business day begins."""
        guess = day * SECONDS_PER_DAY
        start = guess - self.offset_seconds(guess)
        # Near an offset change the offset at the guess may differ from the one at midnight.
        return guess - self.offset_seconds(start)

    @staticmethod
    def date_of_day(day: int) -> date:
        """The calendar date of a business-day number."""
        return date.fromordinal(day + EPOCH_ORDINAL)

    @staticmethod
    def day_of_date(value: date) -> int:
        """The business-day number of a calendar date."""
        return value.toordinal() - EPOCH_ORDINAL

    @staticmethod
    def weekday_of_day(day: int) -> int:
        """Weekday of a business-day number, Monday = 0."""
        return (day + 3) % 7


def _check_windows(name: str, windows: tuple[int, ...], largest: int) -> None:
    if not windows or list(windows) != sorted(set(windows)):
        msg = f"{name} must be a non-empty strictly increasing tuple, got {windows!r}"
        raise FeatureParamsError(msg)
    if windows[0] < 1 or windows[-1] > largest:
        msg = f"{name} must lie within 1..{largest} days, got {windows!r}"
        raise FeatureParamsError(msg)


@dataclass(frozen=True)
class FeatureParams:
    """Every parameter of the feature engine; hashable, picklable, shared by all merchants.

    Parameters
    ----------
    lateness_days
        Events whose business day is more than this many days behind the merchant's newest day
        (or on a day already closed) are rejected as late.
    dedup_capacity
        Hard cap on remembered transaction-id hashes per merchant (oldest forgotten first).
    business_timezone
        IANA zone of the business day (a merchant-day is a calendar day there).
    settlement_delay_days
        POS settlement reaches the account this many days after the sales (T+n).
    windows_days
        Windows of the POS features, each within 1..90 days.
    account_windows_days
        Windows of the account inflow/outflow features, each within 1..30 days.
    gap_decay_total
        When the gap histogram holds more gaps than this, every bin is halved (recency).
    auto_close_features
        Whether days that ``step`` has to close itself (the worker fell behind) get features.

    Examples
    --------
    >>> params = FeatureParams(lateness_days=2)
    >>> params.calendar.timezone
    'Asia/Shanghai'
    >>> FeatureParams(lateness_days=30)
    Traceback (most recent call last):
    ...
    detectors.features.errors.FeatureParamsError: lateness_days must lie within 0..7, got 30
    """

    lateness_days: int = 3
    dedup_capacity: int = 1024
    business_timezone: str = "Asia/Shanghai"
    settlement_delay_days: int = 1
    windows_days: tuple[int, ...] = (1, 7, 30, 90)
    account_windows_days: tuple[int, ...] = (1, 7, 30)
    gap_decay_total: int = 512
    auto_close_features: bool = True
    calendar: BusinessCalendar = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.lateness_days <= MAX_LATENESS_DAYS:
            msg = f"lateness_days must lie within 0..{MAX_LATENESS_DAYS}, got {self.lateness_days}"
            raise FeatureParamsError(msg)
        if not 1 <= self.dedup_capacity <= 1_000_000:
            msg = f"dedup_capacity must lie within 1..1000000, got {self.dedup_capacity}"
            raise FeatureParamsError(msg)
        if not 0 <= self.settlement_delay_days <= MAX_WINDOW_DAYS - ACCOUNT_DAYS:
            msg = f"settlement_delay_days must lie within 0..60, got {self.settlement_delay_days}"
            raise FeatureParamsError(msg)
        if self.gap_decay_total < 16:
            msg = f"gap_decay_total must be at least 16, got {self.gap_decay_total}"
            raise FeatureParamsError(msg)
        _check_windows("windows_days", self.windows_days, MAX_WINDOW_DAYS)
        _check_windows("account_windows_days", self.account_windows_days, ACCOUNT_DAYS)
        object.__setattr__(self, "calendar", BusinessCalendar(self.business_timezone))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> FeatureParams:
        """Parameters from the application settings (time zone, lateness), plus overrides."""
        values: dict[str, Any] = {
            "business_timezone": settings.business_timezone,
            "lateness_days": settings.lateness_days,
        }
        values.update(overrides)
        return cls(**values)
