"""Per-merchant detector state and its compact, versioned byte encoding (kept next to features)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from detectors.alerts import ALERT_TYPES, AlertSlot, SlotStatus
from detectors.base import StateDecodeError
from detectors.dormancy import MAX_CLOSURES, DormancyMemory, DormancyState
from detectors.drift import TurnoverDrift
from detectors.inputs import CHURN_INPUTS, CREDIT_INPUTS

#: Format byte of ``encode``; ``decode`` refuses any other.
STATE_FORMAT = 1
#: Pending labelled vectors kept per merchant and queue: the memory bound (H / stride + 2).
MAX_PENDING = 12

_HEAD = struct.Struct("<BBiiiBiB")  # format, dormancy, last dormant, last silence, threshold,
# closures count, first day, settlement streak
_DRIFT = struct.Struct("<iddddbidd")  # n, mean, down, up, (pad) direction, alarm, fast, slow
_LOAN = struct.Struct("<BHiqd")  # borrower, dpd, last overdue day, exposure fen, prev pos fen
_SLOT = struct.Struct("<BiHBiB")
_CLOSURE = struct.Struct("<iH")
_QUEUE = struct.Struct("<BB")
#: Optional trailer after the queues (states written before it decode with its defaults):
#: days of the current POS silence with a credit other than settlement, inflow other than
#: settlement during the silence, and the usual daily inflow and card turnover on sale days.
_SILENCE = struct.Struct("<Hddd")
#: Optional trailer after that one: the merchant's Spring Festival shutdown (first silent day,
#: length) and the sale days since it ended.
_SHUTDOWN = struct.Struct("<iHH")


@dataclass(slots=True)
class LoanFacts:
    """What the loan book says about a merchant's POS loan (from loan events and profiles)."""

    borrower: bool = False
    days_past_due: int = 0
    last_overdue_day: int = -1
    exposure_fen: int = 0


@dataclass(slots=True)
class DetectorState:
    """Everything the detectors keep per merchant besides the feature state (bounded).

    Pending queues hold (day, input vector) samples waiting for their delayed label; at most
    ``MAX_PENDING`` each (a sample every ``label_stride_days``, resolved ``horizon_days`` later),
    stored as float16: about 50 B per churn sample and 34 B per credit sample.
    """

    dormancy: DormancyMemory = field(default_factory=DormancyMemory)
    dormant_threshold_days: int = 30
    first_day: int = -1
    settlement_missing_days: int = 0
    prev_pos_fen: float = 0.0
    drift: TurnoverDrift = field(default_factory=TurnoverDrift)
    loan: LoanFacts = field(default_factory=LoanFacts)
    alerts: list[AlertSlot] = field(default_factory=lambda: [AlertSlot() for _ in ALERT_TYPES])
    pending_churn: list[tuple[int, list[float]]] = field(default_factory=list)
    pending_credit: list[tuple[int, list[float]]] = field(default_factory=list)
    silence_credit_days: int = 0
    silence_inflow_fen: float = 0.0
    inflow_fen: float = -1.0
    sale_fen: float = -1.0
    #: The longest POS silence of the last Spring Festival (first silent day, -1 none, and
    #: length) and the sale days from its end on (``detectors.pipeline._track_shutdown``).
    shutdown_day: int = -1
    shutdown_days: int = 0
    shutdown_sale_days: int = 0

    def encode(self) -> bytes:
        """Compact bytes for the worker's table (format byte first).

        >>> s = DetectorState(first_day=20_000)
        >>> s.pending_churn.append((20_001, [0.5] * len(CHURN_INPUTS)))
        >>> DetectorState.decode(s.encode()) == s, len(s.encode()) < 250
        (True, True)
        """
        m = self.dormancy
        parts = [
            _HEAD.pack(
                STATE_FORMAT,
                int(m.state),
                m.last_dormant_day,
                m.last_silence_days,
                self.dormant_threshold_days,
                len(m.closures),
                self.first_day,
                min(self.settlement_missing_days, 255),
            ),
        ]
        parts += [_CLOSURE.pack(start, min(length, 65535)) for start, length in m.closures]
        d = self.drift
        parts.append(
            _DRIFT.pack(
                d.n,
                d.mean,
                d.sum_down,
                d.sum_up,
                0.0,
                d.direction,
                d.alarm_day,
                d.fast_fen,
                d.slow_fen,
            )
        )
        loan = self.loan
        parts.append(
            _LOAN.pack(
                loan.borrower,
                min(loan.days_past_due, 65535),
                loan.last_overdue_day,
                loan.exposure_fen,
                self.prev_pos_fen,
            )
        )
        parts += [
            _SLOT.pack(
                s.status,
                s.opened_day,
                min(s.version, 65535),
                s.severity,
                s.resolved_day,
                min(s.calm_days, 255),
            )
            for s in self.alerts
        ]
        for queue, names in (
            (self.pending_churn, CHURN_INPUTS),
            (self.pending_credit, CREDIT_INPUTS),
        ):
            parts.append(_QUEUE.pack(len(queue), len(names)))
            for day, vec in queue:
                parts.append(struct.pack("<i", day))
                parts.append(np.asarray(vec, dtype="<f2").tobytes())
        parts.append(
            _SILENCE.pack(
                min(self.silence_credit_days, 65535),
                self.silence_inflow_fen,
                self.inflow_fen,
                self.sale_fen,
            )
        )
        parts.append(
            _SHUTDOWN.pack(
                self.shutdown_day,
                min(self.shutdown_days, 65535),
                min(self.shutdown_sale_days, 65535),
            )
        )
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> DetectorState:
        if not data or data[0] != STATE_FORMAT:
            got = data[0] if data else "empty"
            msg = f"unknown detector state format {got} (this build reads {STATE_FORMAT})"
            raise StateDecodeError(msg)
        try:
            return cls._decode(memoryview(data))
        except (struct.error, ValueError, IndexError) as exc:
            raise StateDecodeError(f"corrupt detector state: {exc}") from exc

    @classmethod
    def _decode(cls, buf: memoryview) -> DetectorState:
        _, dstate, last_dormant, last_silence, threshold, n_closures, first, streak = (
            _HEAD.unpack_from(buf, 0)
        )
        pos = _HEAD.size
        closures = []
        for _ in range(min(n_closures, MAX_CLOSURES)):
            closures.append(_CLOSURE.unpack_from(buf, pos))
            pos += _CLOSURE.size
        n, mean, down, up, _, direction, alarm, fast, slow = _DRIFT.unpack_from(buf, pos)
        pos += _DRIFT.size
        borrower, dpd, last_overdue, exposure, prev_pos = _LOAN.unpack_from(buf, pos)
        pos += _LOAN.size
        slots = []
        for _ in ALERT_TYPES:
            status, opened, version, severity, resolved, calm = _SLOT.unpack_from(buf, pos)
            slots.append(AlertSlot(SlotStatus(status), opened, version, severity, resolved, calm))
            pos += _SLOT.size
        queues: list[list[tuple[int, list[float]]]] = []
        for _ in range(2):
            count, width = _QUEUE.unpack_from(buf, pos)
            pos += _QUEUE.size
            queue = []
            for _ in range(count):
                (day,) = struct.unpack_from("<i", buf, pos)
                pos += 4
                vec = np.frombuffer(buf, dtype="<f2", count=width, offset=pos)
                queue.append((day, vec.tolist()))  # Python floats, exact as float(v)
                pos += 2 * width
            queues.append(queue)
        trailer = _SILENCE.unpack_from(buf, pos) if len(buf) - pos >= _SILENCE.size else None
        pos += _SILENCE.size
        shutdown = _SHUTDOWN.unpack_from(buf, pos) if len(buf) - pos >= _SHUTDOWN.size else None
        memory = DormancyMemory(
            DormancyState(dstate),
            last_dormant,
            [(int(a), int(b)) for a, b in closures],
            last_silence,
        )
        state = cls(
            dormancy=memory,
            dormant_threshold_days=threshold,
            first_day=first,
            settlement_missing_days=streak,
            prev_pos_fen=prev_pos,
            drift=TurnoverDrift(n, mean, down, up, direction, alarm, fast, slow),
            loan=LoanFacts(bool(borrower), dpd, last_overdue, exposure),
            alerts=slots,
            pending_churn=queues[0],
            pending_credit=queues[1],
        )
        if trailer is not None:  # absent from states written before it existed
            credit_days, state.silence_inflow_fen, state.inflow_fen, state.sale_fen = trailer
            state.silence_credit_days = int(credit_days)
        if shutdown is not None:  # likewise
            state.shutdown_day, state.shutdown_days, state.shutdown_sale_days = shutdown
        return state


def half_precision(values: list[float]) -> list[float]:
    """Values rounded to float16 as stored, so that live (encoded) and in-memory runs agree.

    >>> half_precision([0.1])
    [0.0999755859375]
    """
    return [float(v) for v in np.asarray(values, dtype="<f2")]
