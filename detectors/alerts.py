"""Alert policy: turns scores into alerts with severity, reasons, one open per type, cooldown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from detectors.features.params import BusinessCalendar
from schemas.outputs import Alert, AlertStatus, AlertType, ReasonCode, Severity

ALERT_TYPES: tuple[AlertType, ...] = (AlertType.DORMANCY, AlertType.CHURN, AlertType.CREDIT)
_SEVERITIES = (Severity.LOW, Severity.MEDIUM, Severity.HIGH)


class SlotStatus(IntEnum):
    NONE = 0
    OPEN = 1
    ACKNOWLEDGED = 2


@dataclass(slots=True)
class AlertSlot:
    """The lifecycle of one merchant's alert of one type (kept in the detector state)."""

    status: SlotStatus = SlotStatus.NONE
    opened_day: int = -1
    version: int = 0
    severity: int = 0
    resolved_day: int = -1
    calm_days: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """What the detectors say about one alert type on one merchant-day."""

    alert_type: AlertType
    fire: bool
    score: float
    severity: int
    decided_by: str
    model_version: str = ""
    reasons: Sequence[ReasonCode] = ()
    resolved_by_data: bool = False
    exposure_fen: int = 0
    #: Evidence strong enough to open a new alert during the cooldown after one was resolved.
    overrides_cooldown: bool = False


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """Scores to alerts: at most one open alert per merchant and type; a cooldown after one is
    resolved (which a decision with ``overrides_cooldown`` skips); resolution from data
    (``resolved_by_data``, e.g. reactivation resolves dormancy) or after ``release_days`` days
    in a row without the condition; a version per change.

    Alert ids are ``merchant:type:yyyymmdd`` of the opening day, so a replay of the same days
    gives the same ids (idempotent downstream).

    Examples
    --------
    >>> policy = AlertPolicy()
    >>> slot = AlertSlot()
    >>> d = Decision(AlertType.CHURN, True, 0.9, 2, "rules:settlement_leaving")
    >>> slot, alert = policy.step(slot, d, "M1", 20_500)
    >>> alert.alert_id, alert.status.value, alert.severity.value
    ('M1:churn:20260216', 'open', 'high')
    >>> policy.step(slot, d, "M1", 20_501)[1] is None  # already open: no duplicate
    True
    """

    release_days: int = 7
    cooldown_days: int = 30

    def step(
        self, slot: AlertSlot, decision: Decision, merchant_id: str, day: int
    ) -> tuple[AlertSlot, Alert | None]:
        if slot.status is not SlotStatus.NONE:
            slot.calm_days = 0 if decision.fire else slot.calm_days + 1
            if decision.resolved_by_data or slot.calm_days >= self.release_days:
                slot.status = SlotStatus.NONE
                slot.version += 1
                slot.resolved_day = day
                return slot, self._alert(slot, decision, merchant_id, day, AlertStatus.RESOLVED)
            if decision.fire and decision.severity > slot.severity:
                slot.severity = decision.severity
                slot.version += 1
                status = AlertStatus(SlotStatus(slot.status).name.lower())
                return slot, self._alert(slot, decision, merchant_id, day, status)
            return slot, None
        cooling = slot.resolved_day >= 0 and day - slot.resolved_day < self.cooldown_days
        if not decision.fire or decision.resolved_by_data:
            return slot, None
        if cooling and not decision.overrides_cooldown:
            return slot, None
        slot.status = SlotStatus.OPEN
        slot.opened_day = day
        slot.version = 1
        slot.severity = decision.severity
        slot.calm_days = 0
        return slot, self._alert(slot, decision, merchant_id, day, AlertStatus.OPEN)

    def acknowledge(
        self, slot: AlertSlot, decision: Decision, merchant_id: str, day: int
    ) -> tuple[AlertSlot, Alert | None]:
        """A manager acknowledged the open alert (an outreach outcome): a new version."""
        if slot.status is not SlotStatus.OPEN:
            return slot, None
        slot.status = SlotStatus.ACKNOWLEDGED
        slot.version += 1
        return slot, self._alert(slot, decision, merchant_id, day, AlertStatus.ACKNOWLEDGED)

    @staticmethod
    def _alert(
        slot: AlertSlot, decision: Decision, merchant_id: str, day: int, status: AlertStatus
    ) -> Alert:
        opened = BusinessCalendar.date_of_day(slot.opened_day)
        # Event time, never the wall clock: the end of the business day (UTC+8 by default).
        at = datetime(opened.year, opened.month, opened.day, tzinfo=UTC) + timedelta(hours=16)
        now = BusinessCalendar.date_of_day(day)
        updated = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(hours=16)
        return Alert(
            alert_id=f"{merchant_id}:{decision.alert_type.value}:{opened:%Y%m%d}",
            merchant_id=merchant_id,
            alert_type=decision.alert_type,
            severity=_SEVERITIES[slot.severity],
            status=status,
            version=slot.version,
            score=min(max(decision.score, 0.0), 1.0),
            decided_by=decision.decided_by[:64],
            model_version=decision.model_version[:64],
            as_of_date=now,
            opened_at=at,
            updated_at=updated,
            reasons=tuple(decision.reasons)[:5],
            exposure_fen=max(decision.exposure_fen, 0),
        )
