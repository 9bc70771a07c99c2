"""Known closure seasons: the Spring Festival dates, public knowledge the detectors may use."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

#: Chinese New Year's Day (正月初一), 2015-2035.
SPRING_FESTIVAL: dict[int, date] = {
    2015: date(2015, 2, 19),
    2016: date(2016, 2, 8),
    2017: date(2017, 1, 28),
    2018: date(2018, 2, 16),
    2019: date(2019, 2, 5),
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: Business-day numbers (days since 1970-01-01) of New Year's Day, sorted.
_FESTIVAL_DAYS: tuple[int, ...] = tuple(
    sorted(d.toordinal() - _EPOCH_ORDINAL for d in SPRING_FESTIVAL.values())
)


@lru_cache(maxsize=4096)
def days_from_spring_festival(day: int) -> int:
    """Signed days from the nearest Spring Festival (negative = before it); 999 if unknown.

    >>> days_from_spring_festival(date(2026, 2, 10).toordinal() - _EPOCH_ORDINAL)
    -7
    """
    best = 999
    for festival in _FESTIVAL_DAYS:
        offset = day - festival
        if abs(offset) < abs(best):
            best = offset
    return best


def in_festival_season(day: int, before_days: int = 21, after_days: int = 35) -> bool:
    """Whether a day lies in the festival season (pre-festival peak, closures, recovery).

    >>> in_festival_season(date(2026, 2, 1).toordinal() - _EPOCH_ORDINAL)
    True
    >>> in_festival_season(date(2026, 6, 1).toordinal() - _EPOCH_ORDINAL)
    False
    """
    offset = days_from_spring_festival(day)
    return -before_days <= offset <= after_days
