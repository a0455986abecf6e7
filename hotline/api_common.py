"""What every part of the HTTP API shares: roles on handlers, the principal on the request,
error bodies, and the audit trail of sensitive reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

import structlog
from aiohttp import web

from hotline.auth import Principal
from hotline.config import Role
from hotline.jsonbody import JsonBodyError, parse_json_object
from recordings.access import AuditEntry

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL_KEY = web.RequestKey("principal", Principal)


class AuditSink(Protocol):
    async def audit(self, entry: AuditEntry) -> None: ...


AUDIT_KEY: web.AppKey[AuditSink] = web.AppKey("audit")


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def requires(role: Role, audit: str = "") -> Callable[[Handler], Handler]:
    """Mark a handler as needing at least ``role``; ``audit`` names the action to audit
    (every attempt, allowed or not, goes on the audit trail)."""

    def mark(handler: Handler) -> Handler:
        handler.required_role = role  # type: ignore[attr-defined]
        handler.audit_action = audit  # type: ignore[attr-defined]
        return handler

    return mark


async def audit_request(request: web.Request, principal: Principal | None, action: str, result: str) -> None:
    """Put one access on the audit trail (and in the log)."""
    entry = AuditEntry(
        at=datetime.now(UTC),
        who=principal.name if principal else "anonymous",
        role=principal.role if principal else "",
        action=action,
        # the call or ticket the request was about
        call_id=request.match_info.get("call_id") or request.match_info.get("ticket_id", ""),
        result=result,
        remote=request.remote or "",
    )
    log.info("api.audit", who=entry.who, action=action, call_id=entry.call_id, result=result)
    await request.app[AUDIT_KEY].audit(entry)


class BadRequest(Exception):
    """The request body is not what the endpoint takes."""


async def json_body(request: web.Request) -> dict[str, object]:
    """The request's JSON object ({} without a body); BadRequest for anything else."""
    if not request.can_read_body:
        return {}
    try:
        return parse_json_object(await request.read())  # bounded (hotline/jsonbody.py)
    except JsonBodyError as exc:
        raise BadRequest(str(exc)) from None
