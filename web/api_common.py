"""What every part of the HTTP API shares: roles on handlers, the principal on the request,
error bodies, and the audit trail of sensitive reads."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog
from aiohttp import web

from common.reloading import ReloadResult
from recordings.access import AuditEntry
from telephony.dialplan_names import PROVINCE_PLATFORM
from web.auth import Principal, Role
from web.jsonbody import JsonBodyError, parse_json_object

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL_KEY = web.RequestKey("principal", Principal)


@dataclass(frozen=True)
class PlatformScope:
    """Whose objects a request may see and change. Platforms share one Redis (tickets and call
    records of all of them are in it), so every object that names a platform is checked: a
    token changes only its own platform's; the province's tokens see every platform's."""

    platform: str  # the token's platform
    province: bool  # the token is the province's

    def may_view(self, platform: str) -> bool:
        return self.province or platform == self.platform

    def may_change(self, platform: str) -> bool:
        return platform == self.platform


@dataclass(frozen=True)
class Serving:
    """The platform of the controller that serves this API."""

    platform: str
    province: bool

    def scope_of(self, principal: Principal) -> PlatformScope:
        """A token without a platform belongs to this controller's (the config.yaml that lists it)."""
        platform = principal.platform or self.platform
        province = platform == PROVINCE_PLATFORM or (platform == self.platform and self.province)
        return PlatformScope(platform, province)


SERVING_KEY: web.AppKey[Serving] = web.AppKey("serving", Serving)
SCOPE_KEY = web.RequestKey("scope", PlatformScope)


def other_platform(scope: PlatformScope, platform: str, verb: str, what: str) -> web.Response:
    """The 403 for an object of a platform the token may not see or change."""
    log.warning("api.other_platform", token_platform=scope.platform, platform=platform, verb=verb, what=what)
    return error_response(403, f"this token is {scope.platform}'s: it may not {verb} {platform}'s {what}")


class Unauthenticated:
    """Requests without a valid token. They are counted (``hotline_api_unauthenticated_total``)
    and logged at most once per ``log_interval_s`` — never written to the capped audit stream,
    where a flood of them would push real entries out."""

    def __init__(self, log_interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = 0
        self._interval = log_interval_s
        self._clock = clock
        self._last_logged: float | None = None
        self._unlogged = 0

    def seen(self, path: str, remote: str) -> bool:
        """Count one; True when it was logged."""
        self.total += 1
        now = self._clock()
        if self._last_logged is not None and now - self._last_logged < self._interval:
            self._unlogged += 1
            return False
        log.warning("api.unauthenticated", path=path, remote=remote, not_logged_since_last=self._unlogged)
        self._last_logged, self._unlogged = now, 0
        return True


UNAUTHENTICATED_KEY: web.AppKey[Unauthenticated] = web.AppKey("unauthenticated", Unauthenticated)


class RepeatedReads:
    """A read a console repeats every few seconds (the callback list) is audited once per token
    and ``interval_s``: the first of each interval names who looked; every further one (a
    console alone made 28,800 a day) would only push other entries out of the audit trail."""

    def __init__(self, interval_s: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self.clock = clock
        self._last: dict[tuple[str, ...], float] = {}  # one per configured token and action

    def due(self, *key: str) -> bool:
        """Whether this read of ``key`` (who, action) goes on the trail."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last[key] = now
        return True


REPEATED_READS_KEY: web.AppKey[RepeatedReads] = web.AppKey("repeated_reads", RepeatedReads)


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


async def audit_request(
    request: web.Request, principal: Principal | None, action: str, result: str, call_id: str = ""
) -> None:
    """Put one access on the audit trail (and in the log); ``call_id``: the call it was about,
    when the path does not name it."""
    entry = AuditEntry(
        at=datetime.now(UTC),
        who=principal.name if principal else "anonymous",
        role=principal.role if principal else "",
        action=action,
        # the call or ticket the request was about
        call_id=call_id or request.match_info.get("call_id") or request.match_info.get("ticket_id", ""),
        result=result,
        remote=request.remote or "",
        platform=request.app[SERVING_KEY].platform,
    )
    log.info("api.audit", who=entry.who, action=action, call_id=entry.call_id, result=result)
    await request.app[AUDIT_KEY].audit(entry)


class BadRequest(Exception):
    """The request body is not what the endpoint takes (answered with ``status``)."""

    status = 400


class BodyTooLarge(BadRequest):
    status = 413


# Every body the API takes is a small object ({"to": …, "note": …}): anything bigger is refused
# before it is read whole, anything deeper before it is parsed (web/jsonbody.py).
MAX_JSON_BYTES = 64 * 1024


async def json_body(request: web.Request) -> dict[str, object]:
    """The request's JSON object ({} without a body); BadRequest for anything else. The one way
    every route reads a body."""
    if not request.can_read_body:
        return {}
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise BodyTooLarge(f"the body is larger than {MAX_JSON_BYTES // 1024} KiB")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(16 * 1024):  # chunked bodies: stop at the limit
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise BodyTooLarge(f"the body is larger than {MAX_JSON_BYTES // 1024} KiB")
        chunks.append(chunk)
    try:
        return parse_json_object(b"".join(chunks))
    except JsonBodyError as exc:
        raise BadRequest(str(exc)) from None


def reload_response(result: ReloadResult) -> web.Response:
    """A reload route's answer (web/openapi.py's ReloadAnswer): 200 when it took, else 422 with
    the problems (the running version stays)."""
    body = {"ok": result.ok, "version": result.version, "changed": result.changed, "problems": list(result.problems)}
    return web.json_response(body, status=200 if result.ok else 422)
