"""Each account manager's task queue (pure): daily capacity, overflow by priority, expiry.

``admit`` takes a proposal from ``detectors.outreach.propose``; at most
``manager_capacity_per_day`` tasks open per business day, the rest wait by priority and are never
dropped: a task ends done (``close``, an outcome) or cancelled (expired unanswered, or superseded
by a newer task of the same merchant and type).

Examples
--------
>>> from detectors.outreach import OutreachParams, TaskProposal
>>> params = OutreachParams(manager_capacity_per_day=1)
>>> def task(n: int, priority: float) -> TaskProposal:
...     return TaskProposal.from_dict({
...         "task_id": f"M{n}:win_back:20260216", "merchant_id": f"M{n}", "manager_id": "AM7",
...         "task_type": "win_back", "day": 20_500, "value_at_stake_fen": 100,
...         "urgency": 0.5, "likelihood_of_success": 0.3, "priority": priority,
...         "due_working_days": 2, "reason": "r", "suggested_action": "a",
...         "source_alert_id": None, "features": {}})
>>> queue = ManagerQueue("AM7")
>>> [u.status.value for u in admit(queue, task(1, 0.4), params)]
['open']
>>> [u.status.value for u in admit(queue, task(2, 0.9), params)]  # capacity reached: waits
['queued']
>>> [(u.task_id, u.opened_day, u.due_date.isoformat()) for u in roll_day(queue, 20_501, params)]
[('M2:win_back:20260216', 20501, '2026-02-19')]
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field
from datetime import date

from detectors.base import StateDecodeError
from detectors.outreach import (
    OutreachParams,
    TaskProposal,
    TaskUpdate,
    due_date,
    typed_field,
)
from schemas.inputs import OutcomeKind
from schemas.outputs import TaskStatus

QUEUE_FORMAT = 1


@dataclass(slots=True)
class ManagerQueue:
    """One manager's tasks: open ones (with the day each opened), the overflow queue, and the
    ids of tasks done in the last ``cooldown_days`` days (so a replayed proposal stays ignored).

    ``day`` is the latest business day seen and ``opened_today`` how many tasks opened on it.
    """

    manager_id: str = ""
    day: int = -1
    opened_today: int = 0
    opened: dict[str, tuple[TaskProposal, int]] = field(default_factory=dict)
    queued: dict[str, TaskProposal] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)

    def knows(self, task_id: str) -> bool:
        return task_id in self.opened or task_id in self.queued or task_id in self.done

    def encode(self) -> bytes:
        """Format byte, then compact JSON."""
        body = {
            "manager_id": self.manager_id,
            "day": self.day,
            "opened_today": self.opened_today,
            "opened": [[p.to_dict(), d] for p, d in self.opened.values()],
            "queued": [p.to_dict() for p in self.queued.values()],
            "done": self.done,
        }
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return bytes([QUEUE_FORMAT]) + text.encode()

    @classmethod
    def decode(cls, data: bytes) -> ManagerQueue:
        if data[:1] != bytes([QUEUE_FORMAT]):
            raise StateDecodeError(f"not a manager queue of format {QUEUE_FORMAT}")
        try:
            body = json.loads(data[1:])
            opened = {}
            for item, opened_day in body["opened"]:
                proposal = TaskProposal.from_dict(item)
                opened[proposal.task_id] = (proposal, typed_field({"d": opened_day}, "d", int))
            queued = [TaskProposal.from_dict(item) for item in body["queued"]]
            done = {str(k): typed_field(body["done"], k, int) for k in body["done"]}
            return cls(
                manager_id=typed_field(body, "manager_id", str),
                day=typed_field(body, "day", int),
                opened_today=typed_field(body, "opened_today", int),
                opened=opened,
                queued={p.task_id: p for p in queued},
                done=done,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateDecodeError(f"not a manager queue: {exc}") from exc


def _rank(proposal: TaskProposal) -> tuple[float, int, str]:
    """Queue order: highest priority first, then the oldest, then by id (deterministic)."""
    return (-proposal.priority, proposal.day, proposal.task_id)


def _open_update(proposal: TaskProposal, opened_day: int) -> TaskUpdate:
    due = due_date(opened_day, proposal.due_working_days)
    return TaskUpdate(proposal, TaskStatus.OPEN, opened_day, due)


def _fill(queue: ManagerQueue, params: OutreachParams) -> list[TaskUpdate]:
    """Open queued tasks by priority while today's capacity allows."""
    free = params.manager_capacity_per_day - queue.opened_today
    if free <= 0 or not queue.queued:
        return []
    chosen = heapq.nsmallest(free, queue.queued.values(), key=_rank)
    for proposal in chosen:
        del queue.queued[proposal.task_id]
        queue.opened[proposal.task_id] = (proposal, queue.day)
    queue.opened_today += len(chosen)
    return [_open_update(p, queue.day) for p in chosen]


def _cancel(queue: ManagerQueue, task_id: str, day: int) -> TaskUpdate:
    """Take a task (open or queued) off the queue as cancelled; its id is remembered."""
    if task_id in queue.opened:
        proposal, opened_day = queue.opened.pop(task_id)
        due: date | None = due_date(opened_day, proposal.due_working_days)
        was_opened: int | None = opened_day
    else:
        proposal, was_opened, due = queue.queued.pop(task_id), None, None
    queue.done[task_id] = day
    return TaskUpdate(proposal, TaskStatus.CANCELLED, was_opened, due, day)


def _expire(queue: ManagerQueue, day: int, params: OutreachParams) -> list[TaskUpdate]:
    """Open tasks without an outcome ``task_expiry_days`` after they opened are cancelled."""
    stale = [
        task_id
        for task_id, (_, opened_day) in queue.opened.items()
        if day - opened_day >= params.task_expiry_days
    ]
    return [_cancel(queue, task_id, day) for task_id in sorted(stale)]


def _supersede(queue: ManagerQueue, proposal: TaskProposal) -> list[TaskUpdate]:
    """An older task of the same merchant and type (open or queued) gives way to a new one."""
    older = [
        p.task_id
        for p in [*(p for p, _ in queue.opened.values()), *queue.queued.values()]
        if p.merchant_id == proposal.merchant_id and p.task_type is proposal.task_type
    ]
    return [_cancel(queue, task_id, proposal.day) for task_id in sorted(older)]


def roll_day(queue: ManagerQueue, day: int, params: OutreachParams) -> list[TaskUpdate]:
    """A new business day: queued tasks open by priority up to capacity on each day passed.

    Days between the last one seen and ``day`` count too (queued work would have opened on
    them); an older or equal ``day`` changes nothing. Done ids older than the cooldown are
    forgotten.
    """
    if day <= queue.day:
        return []
    updates: list[TaskUpdate] = []
    current = queue.day + 1 if queue.day >= 0 else day
    while current < day and queue.queued:
        queue.day, queue.opened_today = current, 0
        updates += _fill(queue, params)
        current += 1
    queue.day, queue.opened_today = day, 0
    updates += _fill(queue, params)
    updates += _expire(queue, day, params)
    horizon = day - params.cooldown_days
    queue.done = {task_id: d for task_id, d in queue.done.items() if d >= horizon}
    return updates


def admit(queue: ManagerQueue, proposal: TaskProposal, params: OutreachParams) -> list[TaskUpdate]:
    """A proposal arrives: roll to its day if newer, then open it if capacity allows, else queue.

    A known task id is ignored (replays are idempotent). An older task of the same merchant
    and type still open or queued is cancelled (superseded). Returns the updates to publish:
    tasks opened or expired by the roll, superseded ones, then this task (open or queued).
    """
    if queue.knows(proposal.task_id):
        return []
    if not queue.manager_id:
        queue.manager_id = proposal.manager_id
    updates = roll_day(queue, proposal.day, params)
    updates += _supersede(queue, proposal)
    queue.queued[proposal.task_id] = proposal
    opened = _fill(queue, params)
    if proposal.task_id in queue.queued:
        updates.append(TaskUpdate(proposal, TaskStatus.QUEUED))
    return updates + opened


def close(
    queue: ManagerQueue, task_id: str, outcome: OutcomeKind, day: int
) -> tuple[TaskProposal | None, list[TaskUpdate]]:
    """An outcome: the open or queued task is done. Unknown or already done: ``(None, [])``."""
    if task_id in queue.opened:
        proposal, opened_day = queue.opened.pop(task_id)
        due: date | None = due_date(opened_day, proposal.due_working_days)
    elif task_id in queue.queued:
        proposal, opened_day, due = queue.queued.pop(task_id), -1, None
    else:
        return None, []
    queue.done[task_id] = day
    was_opened = opened_day if due is not None else None
    return proposal, [TaskUpdate(proposal, TaskStatus.DONE, was_opened, due, day, outcome)]


def open_tasks(queue: ManagerQueue) -> list[TaskUpdate]:
    """Open tasks, highest priority first (the answer of ``GET /managers/{id}/tasks``)."""
    ranked = sorted(queue.opened.values(), key=lambda item: _rank(item[0]))
    return [_open_update(p, d) for p, d in ranked]


def queued_tasks(queue: ManagerQueue) -> list[TaskUpdate]:
    """Queued tasks in the order they will open."""
    return [TaskUpdate(p, TaskStatus.QUEUED) for p in sorted(queue.queued.values(), key=_rank)]
