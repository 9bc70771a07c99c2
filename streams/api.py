"""The worker's HTTP API (Faust web views): open tasks per manager, outcomes, live limits.

Every request needs ``Authorization: Bearer <MONITOR_API_TOKEN>`` (compared in constant time).
Path parameters are validated before anything else is done with them. A request for a merchant
or manager whose partition another worker owns is forwarded to that worker (Faust's router, by
the key's partition in the table's changelog topic); the owner answers from its table.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.exceptions import SameNode
from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from schemas.common import ID_PATTERN, Identifier
from schemas.inputs import OutcomeKind, OutreachOutcome

log = logging.getLogger(__name__)

#: Same rule as ``schemas.common.Identifier``: checked on path parameters before routing.
_ID = re.compile(ID_PATTERN)
#: Largest request body accepted (an outcome is a few hundred bytes).
MAX_BODY_BYTES = 16_384


class OutcomeRequest(BaseModel):
    """Body of ``POST /tasks/{task_id}/outcome``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    merchant_id: Identifier
    manager_id: Identifier
    outcome: OutcomeKind
    note: str = Field(default="", max_length=1000)
    outcome_id: Identifier | None = None


Lookup = Callable[[str], Any]


class ApiRoutes:
    """What the views need from the worker: table names, local look-ups and the outcome sender.

    ``limit_of(merchant_id)`` returns the merchant's current limit as a JSON-able dict or None;
    ``tasks_of(manager_id)`` the manager's open tasks (highest priority first) and queue length;
    ``send_outcome(outcome)`` publishes to ``outreach.outcomes.v1``.
    """

    def __init__(
        self,
        limits_table: str,
        managers_table: str,
        limit_of: Lookup,
        tasks_of: Lookup,
        send_outcome: Callable[[OutreachOutcome], Awaitable[None]],
    ) -> None:
        self.limits_table = limits_table
        self.managers_table = managers_table
        self.limit_of = limit_of
        self.tasks_of = tasks_of
        self.send_outcome = send_outcome


def _authorized(request: Request, token: SecretStr) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    expected = token.get_secret_value().encode()
    # compare_digest on bytes of any length: constant time in the given token's content.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def _ready(app: faust.App) -> bool:
    """Whether the tables are read back from their changelogs and no rebalance is under way."""
    recovery = app.tables.recovery
    return bool(recovery.completed.is_set()) and not getattr(app, "rebalancing", False)


def register_api(app: faust.App, token: SecretStr, routes: ApiRoutes) -> None:
    """Add the three views to ``app`` (call before the worker starts)."""

    class _Base(View):
        def unauthorized(self) -> Response:
            return self.json(
                {"error": "missing or wrong bearer token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="merchant-monitor"'},
            )

        def bad_id(self, name: str, value: str) -> Response:
            return self.json(
                {
                    "error": f"{name} must be 1-64 of A-Z a-z 0-9 _ . : -, first a letter or digit",
                    name: value[:80],
                },
                status=400,
            )

        async def routed(
            self, request: Request, table: str, key: str, local: Callable[[], Response]
        ) -> Response:
            if not _ready(app):  # tables not read back yet: a local miss would be a false 404
                return self.json(
                    {"error": "the worker is restoring its tables; retry shortly"},
                    status=503,
                    headers={"Retry-After": "1"},
                )
            try:
                return await app.router.route_req(table, key.encode(), self.web, request)
            except SameNode:
                return local()
            except ServiceUnavailable:
                return self.json(
                    {"error": "partition not assigned yet (rebalancing); retry shortly"},
                    status=503,
                    headers={"Retry-After": "1"},
                )

    @app.page("/merchants/{merchant_id}/limit")
    class MerchantLimit(_Base):
        async def get(self, request: Request, merchant_id: str) -> Response:
            if not _authorized(request, token):
                return self.unauthorized()
            if not _ID.match(merchant_id):
                return self.bad_id("merchant_id", merchant_id)

            def local() -> Response:
                limit = routes.limit_of(merchant_id)
                if limit is None:
                    return self.json(
                        {
                            "error": "unknown merchant: no limit has been computed for it",
                            "merchant_id": merchant_id,
                        },
                        status=404,
                    )
                return self.json(limit)

            return await self.routed(request, routes.limits_table, merchant_id, local)

    @app.page("/managers/{manager_id}/tasks")
    class ManagerTasks(_Base):
        async def get(self, request: Request, manager_id: str) -> Response:
            if not _authorized(request, token):
                return self.unauthorized()
            if not _ID.match(manager_id):
                return self.bad_id("manager_id", manager_id)

            def local() -> Response:
                return self.json(routes.tasks_of(manager_id))

            return await self.routed(request, routes.managers_table, manager_id, local)

    @app.page("/tasks/{task_id}/outcome")
    class TaskOutcome(_Base):
        async def post(self, request: Request, task_id: str) -> Response:
            if not _authorized(request, token):
                return self.unauthorized()
            if not _ID.match(task_id):
                return self.bad_id("task_id", task_id)
            body = await self.read_request_content(request)
            if len(body) > MAX_BODY_BYTES:
                return self.json({"error": f"body over {MAX_BODY_BYTES} bytes"}, status=413)
            try:
                payload = json.loads(body or b"null")
                if not isinstance(payload, dict):
                    raise ValueError("the body must be a JSON object")
                req = OutcomeRequest.model_validate(payload)
            except ValidationError as exc:
                errors = [
                    {"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]}
                    for e in exc.errors(include_url=False, include_input=False)
                ]
                return self.json({"error": "invalid outcome", "details": errors}, status=400)
            except ValueError as exc:
                return self.json({"error": f"invalid JSON body: {exc}"}, status=400)
            outcome = OutreachOutcome(
                outcome_id=req.outcome_id or f"o-{uuid.uuid4().hex}",
                task_id=task_id,
                merchant_id=req.merchant_id,
                manager_id=req.manager_id,
                event_time=datetime.now(UTC),
                outcome=req.outcome,
                note=req.note,
            )
            await routes.send_outcome(outcome)
            return self.json(
                {"status": "accepted", "outcome_id": outcome.outcome_id, "task_id": task_id},
                status=202,
            )


def web_config(enabled: bool, bind: str, host: str, port: int) -> dict[str, Any]:
    """Faust web settings: our views only (Faust's table, router, graph and stats pages are off,
    they would expose table contents without authentication)."""
    return {
        "web_enabled": enabled,
        "web_bind": bind,
        "web_host": host,
        "web_port": port,
        "canonical_url": f"http://{host}:{port}",
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        "web_metrics_enabled": False,
    }
