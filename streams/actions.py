"""The action stage of the worker: POS-loan limits and outreach tasks (plumbing only).

Merchant side (tables on the merchant's partition): every closed merchant-day goes through
``detectors.actions.on_day_closed``; a changed limit is published to the compacted
``pos-loan.limits.v1``, kept in the ``pos-loan-limit`` table (the API answers from it) and
stored as a new version in the warehouse; task proposals are sent to an internal topic keyed by
the account manager.

Manager side (tables on the manager's partition): ``ManagerDesk`` admits proposals into each
manager's queue (daily capacity, overflow queued by priority), closes tasks on outcomes, teaches
the success model, and publishes every task state to ``outreach.tasks.v1`` and the warehouse.
Because each manager's queue lives on exactly one partition, capacity holds across workers.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import orjson

from detectors.actions import ActionParams, ActionState, on_day_closed, on_outcome, on_profile
from detectors.base import StateDecodeError
from detectors.features import DaySnapshot
from detectors.features.params import BusinessCalendar
from detectors.limits import LimitDecision
from detectors.manager_queue import ManagerQueue, admit, close, open_tasks, roll_day
from detectors.outreach import OutreachParams, SuccessModel, TaskProposal, TaskUpdate
from detectors.pipeline import DayScores
from detectors.state import DetectorState
from schemas.dashboard_rows import OutreachOutcomeRow
from schemas.inputs import MerchantProfile, OutcomeKind, OutreachOutcome
from schemas.outputs import Alert, OutreachTask, PosLoanLimit, PriorityExplanation
from schemas.warehouse import OutreachTaskRow, PosLoanLimitRow
from streams.codec import Rejected, encode
from streams.processor import in_partition
from streams.sink import WarehouseSink

log = logging.getLogger(__name__)

SUCCESS_MODEL_FILE = "outreach-success.bin"


def limit_payload(merchant_id: str, version: int, decision: LimitDecision) -> PosLoanLimit:
    """The published limit of one decision."""
    return PosLoanLimit(
        merchant_id=merchant_id,
        version=version,
        as_of=datetime.now(UTC),
        eligible=decision.eligible,
        limit_fen=decision.limit_fen,
        previous_limit_fen=decision.previous_limit_fen,
        cap_fen=decision.cap_fen,
        turnover_based_fen=decision.turnover_based_fen,
        repayment_based_fen=decision.repayment_based_fen,
        stability_haircut=decision.stability_haircut,
        risk_factor=decision.risk_factor,
        outstanding_fen=decision.outstanding_fen,
        reasons=decision.reasons,
    )


def task_payload(update: TaskUpdate, now: datetime, calendar: BusinessCalendar) -> OutreachTask:
    """The published state of one task; created at the end of the business day it was
    proposed (event time), updated now."""
    p = update.proposal
    end_of_day = calendar.day_start_epoch_seconds(p.day + 1) - 0.001
    created = min(datetime.fromtimestamp(end_of_day, UTC), now)
    return OutreachTask(
        task_id=p.task_id,
        merchant_id=p.merchant_id,
        manager_id=p.manager_id,
        task_type=p.task_type,
        status=update.status,
        priority=p.priority,
        explanation=PriorityExplanation(
            value_at_stake_fen=p.value_at_stake_fen,
            urgency=p.urgency,
            likelihood_of_success=p.likelihood_of_success,
        ),
        reason=p.reason,
        suggested_action=p.suggested_action,
        opened_date=(
            BusinessCalendar.date_of_day(update.opened_day)
            if update.opened_day is not None
            else None
        ),
        due_date=update.due_date,
        created_at=created,
        updated_at=now,
        source_alert_id=p.source_alert_id,
    )


class SuccessHolder:
    """The worker's outreach success model, restored at start and saved with the others."""

    def __init__(self, path: Path, params: OutreachParams) -> None:
        self.path = path
        self.params = params
        self.model = self._load()

    def _load(self) -> SuccessModel:
        if self.path.exists():
            try:
                model = pickle.loads(self.path.read_bytes())  # noqa: S301 - our own file
                if not isinstance(model, SuccessModel):
                    raise TypeError(f"{type(model).__name__} is not a SuccessModel")
            except Exception:
                log.exception("cannot restore the success model from %s; new one", self.path)
            else:
                log.info("restored the outreach success model (%d outcomes)", model.n_labels)
                return model
        return SuccessModel.from_params(self.params)

    def save(self) -> None:
        """Write atomically (a crash mid-write leaves the previous file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(self.model, protocol=5))
        os.replace(partial, self.path)


class ActionStage:
    """Merchant side: limits and proposals from each closed merchant-day."""

    def __init__(
        self,
        table: faust.Table,
        limits_table: faust.Table,
        requests: faust.TopicT,
        limits_topic: faust.TopicT,
        sink: WarehouseSink,
        success: SuccessHolder,
        params: ActionParams,
    ) -> None:
        self.table = table
        self.limits_table = limits_table
        self.requests = requests
        self.limits_topic = limits_topic
        self.sink = sink
        self.success = success
        self.params = params
        self._limits: list[PosLoanLimit] = []
        self._requests: list[tuple[bytes, bytes]] = []
        self.limits_published = 0
        self.proposals_sent = 0

    def _state(self, key: bytes) -> ActionState | None:
        raw = self.table.get(key)
        return ActionState.decode(raw) if raw is not None else None

    def on_day(
        self,
        partition: int,
        snapshot: DaySnapshot,
        detector: DetectorState,
        alerts: list[Alert],
        scores: DayScores | None,
    ) -> None:
        key = snapshot.merchant_id.encode()
        state, actions = on_day_closed(
            self._state(key), snapshot, scores, alerts, detector, self.success.model, self.params
        )
        with in_partition(partition):
            if actions.limit is not None:
                state.limit.version += 1
                limit = limit_payload(snapshot.merchant_id, state.limit.version, actions.limit)
                self.limits_table[key] = encode(limit)
                self._limits.append(limit)
                self.sink.add(
                    "pos_loan_limits",
                    (limit.merchant_id, limit.version),
                    PosLoanLimitRow.from_limit(limit).model_dump(),
                )
            self.table[key] = state.encode()
        for proposal in actions.proposals:
            message = {"kind": "propose", "proposal": proposal.to_dict()}
            self._requests.append((proposal.manager_id.encode(), orjson.dumps(message)))

    def on_profile(self, profile: MerchantProfile) -> None:
        """In the profile's own event context (its partition is the merchant's)."""
        key = profile.merchant_id.encode()
        self.table[key] = on_profile(self._state(key), profile).encode()

    def on_outcome(self, outcome: OutreachOutcome, day: int) -> None:
        """An outcome, in its own event context (the merchant's partition): the merchant's
        slot for the task's type is freed, the outcome stored and sent to the manager's queue."""
        key = outcome.merchant_id.encode()
        self.table[key] = on_outcome(self._state(key), outcome.task_id).encode()
        self.sink.add(
            "outreach_outcomes",
            (outcome.outcome_id,),
            OutreachOutcomeRow.from_outcome(outcome).model_dump(),
        )
        message = {
            "kind": "outcome",
            "task_id": outcome.task_id,
            "merchant_id": outcome.merchant_id,
            "outcome": outcome.outcome.value,
            "day": day,
        }
        self._requests.append((outcome.manager_id.encode(), orjson.dumps(message)))

    def limit_of(self, merchant_id: str) -> dict[str, Any] | None:
        raw = self.limits_table.get(merchant_id.encode())
        return orjson.loads(raw) if raw is not None else None  # type: ignore[no-any-return]

    async def publish(self) -> None:
        limits, self._limits = self._limits, []
        for limit in limits:
            await self.limits_topic.send(key=limit.merchant_id.encode(), value=encode(limit))
        requests, self._requests = self._requests, []
        for key, value in requests:
            await self.requests.send(key=key, value=value)
        self.limits_published += len(limits)
        self.proposals_sent += len(requests)


class ManagerDesk:
    """Manager side: each manager's queue in a table keyed by manager id."""

    def __init__(
        self,
        table: faust.Table,
        tasks_topic: faust.TopicT,
        sink: WarehouseSink,
        success: SuccessHolder,
        params: ActionParams,
        partition_of: Callable[[bytes], int],
        calendar: BusinessCalendar,
    ) -> None:
        self.calendar = calendar
        self.table = table
        self.tasks_topic = tasks_topic
        self.partition_of = partition_of
        self._scanned = False
        self.sink = sink
        self.success = success
        self.params = params
        self.today = -1
        #: manager key -> partition, for managers with queued tasks (rolled on a new day).
        self._waiting: dict[bytes, int] = {}
        self._outbox: list[OutreachTask] = []
        self.unknown_outcomes = 0

    def _queue(self, key: bytes) -> ManagerQueue:
        raw = self.table.get(key)
        return ManagerQueue.decode(raw) if raw is not None else ManagerQueue()

    def _store(self, key: bytes, queue: ManagerQueue, partition: int) -> None:
        self.table[key] = queue.encode()
        if queue.queued:
            self._waiting[key] = partition
        else:
            self._waiting.pop(key, None)

    def _emit(self, updates: list[TaskUpdate]) -> None:
        now = datetime.now(UTC)
        for update in updates:
            task = task_payload(update, now, self.calendar)
            self._outbox.append(task)
            self.sink.add(
                "outreach_tasks", (task.task_id,), OutreachTaskRow.from_task(task).model_dump()
            )

    def on_request(self, key: bytes | None, value: bytes | None, partition: int) -> Rejected | None:
        """One record of the internal topic (in its event context). Returns why a record must
        be dead-lettered, else None."""
        try:
            message = orjson.loads(value or b"")
            if not isinstance(message, dict) or not key:
                raise ValueError("not a JSON object with a key")
            return self._on_request(key, message, partition)
        except (ValueError, KeyError, TypeError, StateDecodeError) as exc:
            return Rejected("validation", f"bad task request: {exc}")

    def _on_request(self, key: bytes, message: dict[str, Any], partition: int) -> Rejected | None:
        queue = self._queue(key)
        if message.get("kind") == "propose":
            proposal = TaskProposal.from_dict(message["proposal"])
            if proposal.manager_id.encode() != key:
                return Rejected("key_mismatch", "proposal manager differs from the record key")
            self.today = max(self.today, proposal.day)
            updates = admit(queue, proposal, self.params.outreach)
        elif message.get("kind") == "outcome":
            outcome = OutcomeKind(message["outcome"])
            found, updates = close(queue, str(message["task_id"]), outcome, int(message["day"]))
            if found is None:
                self.unknown_outcomes += 1
                task = str(message["task_id"])[:80]
                return Rejected("unknown_task", f"no task {task!r} for this manager")
            self.success.model.learn_one(found.task_type, found.features, outcome)
        else:
            return Rejected("validation", f"unknown request kind {message.get('kind')!r}")
        self._store(key, queue, partition)
        self._emit(updates)
        return None

    def roll(self) -> None:
        """Open queued tasks of managers on a new business day (from the flush timer)."""
        if not self._scanned and self.today >= 0:
            # After a restart: find the managers of the (recovered) table with queued tasks.
            self._scanned = True
            for key, raw in list(self.table.items()):
                if raw is not None and ManagerQueue.decode(raw).queued:
                    self._waiting.setdefault(key, self.partition_of(key))
        for key, partition in list(self._waiting.items()):
            queue = self._queue(key)
            if queue.day >= self.today:
                continue
            updates = roll_day(queue, self.today, self.params.outreach)
            with in_partition(partition):
                self._store(key, queue, partition)
            self._emit(updates)

    def tasks_of(self, manager_id: str) -> dict[str, Any]:
        queue = self._queue(manager_id.encode())
        now = datetime.now(UTC)
        return {
            "manager_id": manager_id,
            "open": [
                task_payload(u, now, self.calendar).model_dump(mode="json")
                for u in open_tasks(queue)
            ],
            "queued": len(queue.queued),
        }

    async def publish(self) -> None:
        outbox, self._outbox = self._outbox, []
        for task in outbox:
            await self.tasks_topic.send(key=task.merchant_id.encode(), value=encode(task))
