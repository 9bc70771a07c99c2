"""Business calendar of the simulator: Spring Festival dates and the daily rhythm multipliers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from detectors import seasonal

# Chinese New Year's Day by Gregorian year: one table, shared with the detectors (it moves by up
# to a month from year to year, so it is looked up, never approximated).
SPRING_FESTIVAL = seasonal.SPRING_FESTIVAL

#: Days around the festival that its effects reach (pre-festival shopping, closures, the
#: slow restart up to the Lantern Festival): windows must lie inside the table by this margin.
FESTIVAL_REACH_DAYS = 40

#: Pre-festival peak (年货 shopping, reunion dinners) for trades that stay open: days before.
_PEAK_DAYS = 14
#: The festival week dip for trades that stay open: from New Year's Eve for 7 days.
_DIP_FIRST, _DIP_LAST = -1, 6
#: Trade recovers linearly from the dip up to the Lantern Festival (15th day).
_RECOVERY_LAST = 15


def festival_table_covers(start: date, days: int) -> bool:
    """Whether every year the window (with the festival's reach) touches is in the table."""
    first = start - timedelta(days=FESTIVAL_REACH_DAYS)
    last = start + timedelta(days=days + FESTIVAL_REACH_DAYS)
    return all(year in SPRING_FESTIVAL for year in range(first.year, last.year + 1))


def festival_offsets(start: date, days: int) -> npt.NDArray[np.int64]:
    """For each day of the window, its offset in days from the nearest Spring Festival."""
    day_numbers = np.arange(days, dtype=np.int64) + start.toordinal()
    years = range(start.year - 1, (start + timedelta(days=days)).year + 2)
    festivals = np.array(
        [SPRING_FESTIVAL[y].toordinal() for y in years if y in SPRING_FESTIVAL], dtype=np.int64
    )
    distance = day_numbers[:, None] - festivals[None, :]
    nearest = np.argmin(np.abs(distance), axis=1)
    return np.asarray(distance[np.arange(days), nearest], dtype=np.int64)


def festival_open_factor(
    offsets: npt.NDArray[np.int64], peak: float, dip: float
) -> npt.NDArray[np.float64]:
    """Multiplier for trades that stay open over the festival: a peak before, a dip, recovery."""
    factor = np.ones(offsets.shape, dtype=np.float64)
    before = (offsets >= -_PEAK_DAYS) & (offsets < _DIP_FIRST)
    factor[before] = peak
    in_dip = (offsets >= _DIP_FIRST) & (offsets <= _DIP_LAST)
    factor[in_dip] = dip
    recovering = (offsets > _DIP_LAST) & (offsets <= _RECOVERY_LAST)
    progress = (offsets[recovering] - _DIP_LAST) / (_RECOVERY_LAST - _DIP_LAST)
    factor[recovering] = dip + (1.0 - dip) * progress
    return factor


def month_end_mask(start: date, days: int, last_days: int = 3) -> npt.NDArray[np.bool_]:
    """True on the last ``last_days`` days of each calendar month."""
    out = np.zeros(days, dtype=np.bool_)
    for i in range(days):
        day = start + timedelta(days=i)
        out[i] = (day + timedelta(days=last_days)).month != day.month
    return out


def payday_mask(
    start: date, days: int, paydays: tuple[int, ...], length: int = 3
) -> npt.NDArray[np.bool_]:
    """True on the ``length`` days from each payday of the month (spending after wages)."""
    out = np.zeros(days, dtype=np.bool_)
    for i in range(days):
        dom = (start + timedelta(days=i)).day
        out[i] = any(0 <= dom - p < length for p in paydays)
    return out


def harvest_factor(
    start: date, days: int, base: float, peaks: list[tuple[int, int, float]]
) -> npt.NDArray[np.float64]:
    """Seasonal multiplier of agricultural trade: a base plus Gaussian bumps at harvests."""
    doy = np.array(
        [(start + timedelta(days=i)).timetuple().tm_yday for i in range(days)], dtype=np.float64
    )
    factor = np.full(days, base, dtype=np.float64)
    for centre, width, extra in peaks:
        # Circular distance so that a peak near New Year reaches across it.
        distance = np.minimum(np.abs(doy - centre), 365.0 - np.abs(doy - centre))
        factor += extra * np.exp(-0.5 * (distance / width) ** 2)
    return factor


def weekdays(start: date, days: int) -> npt.NDArray[np.int64]:
    """Monday = 0 ... Sunday = 6 for each day of the window."""
    return (np.arange(days, dtype=np.int64) + start.weekday()) % 7


def day_starts_utc(start: date, days: int, timezone: str) -> npt.NDArray[np.int64]:
    """UTC epoch seconds of local midnight of each day (time zone rules applied per day)."""
    zone = ZoneInfo(timezone)
    out = np.empty(days, dtype=np.int64)
    for i in range(days):
        local = datetime.combine(start + timedelta(days=i), time(0), tzinfo=zone)
        out[i] = int(local.astimezone(UTC).timestamp())
    return out


def month_index(start: date, days: int) -> npt.NDArray[np.int64]:
    """Calendar month number (year * 12 + month - 1) of each day."""
    out = np.empty(days, dtype=np.int64)
    for i in range(days):
        day = start + timedelta(days=i)
        out[i] = day.year * 12 + day.month - 1
    return out


def day_of_month(start: date, days: int) -> npt.NDArray[np.int64]:
    """Day of the month of each day of the window."""
    return np.array([(start + timedelta(days=i)).day for i in range(days)], dtype=np.int64)
