"""Exact per-merchant-day totals of sales and cash flow: the rows of ``merchant_daily``.

A merchant-day is a calendar day in the bank's business time zone (Asia/Shanghai by default),
not a UTC day: a sale at 07:30 Beijing time belongs to that Beijing date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from schemas.inputs import AccountCategory, AccountTransaction, Direction, PosKind, PosTransaction

#: The counters of one merchant-day, in the column order of schemas.warehouse.MerchantDailyRow.
COUNTERS: tuple[str, ...] = (
    "pos_approved_count",
    "pos_approved_amount_fen",
    "pos_declined_count",
    "pos_refund_count",
    "pos_refund_amount_fen",
    "pos_chargeback_count",
    "pos_chargeback_amount_fen",
    "pos_reversal_count",
    "acct_credit_count",
    "acct_credit_amount_fen",
    "acct_debit_count",
    "acct_debit_amount_fen",
    "acct_settlement_amount_fen",
)


@dataclass(slots=True)
class DayTotals:
    """Totals of one merchant-day; ``events`` counts every applied event (the row version).

    Examples
    --------
    >>> totals = DayTotals()
    >>> totals.add_pos(PosKind.APPROVED, 1250)
    >>> totals.add_pos(PosKind.REFUND, 250)
    >>> totals.values["pos_approved_amount_fen"], totals.values["pos_refund_amount_fen"]
    (1250, 250)
    >>> totals.events
    2
    """

    values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    end_balance_fen: int = 0
    #: (event time, txn id) of the booking that set ``end_balance_fen``.
    last_balance_key: tuple[datetime, str] | None = None
    events: int = 0

    def add_pos(self, kind: PosKind, amount_fen: int) -> None:
        v = self.values
        if kind is PosKind.APPROVED:
            v["pos_approved_count"] += 1
            v["pos_approved_amount_fen"] += amount_fen
        elif kind is PosKind.DECLINED:
            v["pos_declined_count"] += 1
        elif kind is PosKind.REFUND:
            v["pos_refund_count"] += 1
            v["pos_refund_amount_fen"] += amount_fen
        elif kind is PosKind.CHARGEBACK:
            v["pos_chargeback_count"] += 1
            v["pos_chargeback_amount_fen"] += amount_fen
        else:
            v["pos_reversal_count"] += 1
        self.events += 1

    def add_account(self, txn: AccountTransaction) -> None:
        v = self.values
        if txn.direction is Direction.CREDIT:
            v["acct_credit_count"] += 1
            v["acct_credit_amount_fen"] += txn.amount_fen
            if txn.category is AccountCategory.POS_SETTLEMENT:
                v["acct_settlement_amount_fen"] += txn.amount_fen
        else:
            v["acct_debit_count"] += 1
            v["acct_debit_amount_fen"] += txn.amount_fen
        # The end-of-day balance is the balance after the day's last booking, whatever order
        # the bookings arrive in; equal times are ordered by txn id so any order agrees.
        key = (txn.event_time, txn.txn_id)
        if self.last_balance_key is None or key > self.last_balance_key:
            self.last_balance_key = key
            self.end_balance_fen = txn.balance_after_fen
        self.events += 1


def business_day(event_time: datetime, zone: tzinfo) -> date:
    """The business date of an instant in the bank's time zone.

    >>> from datetime import UTC
    >>> from zoneinfo import ZoneInfo
    >>> business_day(datetime(2026, 3, 1, 23, 30, tzinfo=UTC), ZoneInfo("Asia/Shanghai"))
    datetime.date(2026, 3, 2)
    """
    return event_time.astimezone(zone).date()


def apply_event(
    days: dict[date, DayTotals], event: PosTransaction | AccountTransaction, zone: tzinfo
) -> date:
    """Add one validated event to its merchant-day; returns the day it landed in."""
    day = business_day(event.event_time, zone)
    totals = days.get(day)
    if totals is None:
        totals = days[day] = DayTotals()
    if isinstance(event, PosTransaction):
        totals.add_pos(event.kind, event.amount_fen)
    else:
        totals.add_account(event)
    return day


def daily_row(merchant_id: str, day: date, totals: DayTotals) -> dict[str, object]:
    """The ``merchant_daily`` row of one merchant-day, versioned by its event count."""
    return {
        "merchant_id": merchant_id,
        "day": day,
        **totals.values,
        "acct_end_balance_fen": totals.end_balance_fen,
        "version": totals.events,
    }


class LateEventError(ValueError):
    """An event for a day that is no longer kept in the merchant's state."""


@dataclass(slots=True)
class MerchantDays:
    """The open days of one merchant: totals of the last ``retention_days`` business days."""

    days: dict[date, DayTotals] = field(default_factory=dict)
    newest_day: date | None = None
    #: Days dropped from ``days`` since the caller last drained them (not serialised): their
    #: final totals must still be written before they are forgotten.
    evicted: dict[date, DayTotals] = field(default_factory=dict, compare=False)

    def apply(
        self, event: PosTransaction | AccountTransaction, zone: tzinfo, retention_days: int
    ) -> date:
        """Add an event; raises LateEventError if its day fell out of the retained window."""
        day = business_day(event.event_time, zone)
        if self.newest_day is not None and (self.newest_day - day).days >= retention_days:
            msg = f"event day {day} is {retention_days}+ days behind {self.newest_day}"
            raise LateEventError(msg)
        apply_event(self.days, event, zone)
        if self.newest_day is None or day > self.newest_day:
            self.newest_day = day
            horizon = day.toordinal() - retention_days
            for old in [d for d in self.days if d.toordinal() <= horizon]:
                self.evicted[old] = self.days.pop(old)
        return day

    def totals(self, day: date) -> DayTotals:
        """Totals of a kept or just-evicted day."""
        return self.days[day] if day in self.days else self.evicted[day]


def encode_days(state: MerchantDays) -> bytes:
    """Serialise a merchant's open days (compact JSON, stable key order).

    >>> from zoneinfo import ZoneInfo
    >>> state = MerchantDays()
    >>> decode_days(encode_days(state)) == state
    True
    """
    days = {
        d.isoformat(): [
            *t.values.values(),
            t.end_balance_fen,
            t.last_balance_key[0].isoformat() if t.last_balance_key else None,
            t.last_balance_key[1] if t.last_balance_key else None,
            t.events,
        ]
        for d, t in sorted(state.days.items())
    }
    newest = state.newest_day.isoformat() if state.newest_day else None
    return json.dumps({"v": 1, "newest": newest, "days": days}, separators=(",", ":")).encode()


def decode_days(data: bytes) -> MerchantDays:
    """Inverse of :func:`encode_days`; rejects unknown format versions."""
    doc = json.loads(data)
    if doc.get("v") != 1:
        msg = f"unknown merchant-days state version {doc.get('v')!r}"
        raise ValueError(msg)
    state = MerchantDays(newest_day=date.fromisoformat(doc["newest"]) if doc["newest"] else None)
    n = len(COUNTERS)
    for day, fields in doc["days"].items():
        totals = DayTotals(values=dict(zip(COUNTERS, fields[:n], strict=True)))
        totals.end_balance_fen = fields[n]
        if fields[n + 1] is not None:
            totals.last_balance_key = (datetime.fromisoformat(fields[n + 1]), fields[n + 2])
        totals.events = fields[n + 3]
        state.days[date.fromisoformat(day)] = totals
    return state
