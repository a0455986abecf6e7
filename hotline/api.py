"""The HTTP API (aiohttp): health, call records, metrics. Bearer tokens with roles.

``/api/v1/health`` and ``/metrics`` are open (probes and scrapers; no personal data in them).
Everything else needs a token whose role is at least the route's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import web

from acd.codes import UnknownCode
from acd.events import EventBus
from acd.seat import IllegalSeatTransition, Seat
from acd.seats import SeatService, UnknownSeat
from acd.stats import QueueStats, SeatStats
from calls.callbacks import Callback
from calls.model import CallRecord
from calls.store import StoreUnavailable
from common.metrics import Metric, render_prometheus
from common.privacy import mask_name, mask_number
from hotline.api_network import NETWORK_KEY, NetworkBackend, add_network_routes
from hotline.api_tickets import TICKETS_KEY, TicketBackend, add_ticket_routes
from ivr.dialplan.registry import ReloadResult
from recordings.access import AuditEntry, AuditFilter, audit_json
from telephony.ami_types import AmiError
from web.api_common import (
    AUDIT_KEY,
    PRINCIPAL_KEY,
    REPEATED_READS_KEY,
    SCOPE_KEY,
    SERVING_KEY,
    UNAUTHENTICATED_KEY,
    BadRequest,
    Handler,
    RepeatedReads,
    Serving,
    Unauthenticated,
    audit_request,
    error_response,
    json_body,
    other_platform,
    requires,
)
from web.auth import Role, TokenRegistry

log = structlog.get_logger(__name__)

BACKEND_KEY: web.AppKey[ApiBackend] = web.AppKey("backend")


class ApiBackend(TicketBackend, Protocol):
    """What the API reads from the running controller."""

    @property
    def network(self) -> NetworkBackend: ...

    async def health(self) -> dict[str, Any]: ...

    async def metrics(self) -> list[Metric]: ...

    async def recent_calls(self, limit: int) -> list[CallRecord]: ...

    async def get_call(self, call_id: str) -> CallRecord | None: ...

    async def dialplan_status(self) -> dict[str, Any]: ...

    async def recording_file(self, call_id: str, kind: str) -> Path | None: ...

    async def callbacks(self, limit: int) -> list[Callback]: ...

    async def queue_stats(self) -> list[QueueStats]: ...

    async def seat_figures(self) -> list[tuple[Seat, SeatStats]]: ...

    async def current_calls(self) -> dict[str, dict[str, Any]]: ...

    async def audit(self, entry: AuditEntry) -> None: ...

    async def audit_trail(self, limit: int, keep: AuditFilter | None = None) -> list[AuditEntry]: ...

    @property
    def seats(self) -> SeatService: ...

    @property
    def events(self) -> EventBus: ...

    async def reload_dialplan(self, reason: str) -> ReloadResult: ...


def call_view(record: CallRecord) -> dict[str, Any]:
    """A call record as the API shows it: caller masked."""
    return {
        "call_id": record.call_id,
        "platform": record.platform,
        "caller": mask_number(record.caller),
        "caller_name": mask_name(record.caller_name),
        "called": record.called,
        "state": record.state.value,
        "started_at": record.started_at.isoformat(),
        "answered_at": record.answered_at.isoformat() if record.answered_at else None,
        "ended_at": record.ended_at.isoformat() if record.ended_at else None,
        "ivr_path": list(record.ivr_path),
        "digits": list(record.digits),
        "tags": record.tags,
        "survey_score": record.survey_score,
        "queue": record.queue,
        "queued_at": record.queued_at.isoformat() if record.queued_at else None,
        "seat": record.seat,
        "seat_answered_at": record.seat_answered_at.isoformat() if record.seat_answered_at else None,
        "transfer_to": record.transfer_to,
        "dialplan_version": record.dialplan_version,
        "outcome": record.outcome.value if record.outcome else None,
        "hangup_cause": record.hangup_cause,
        "has_recording": bool(record.recording),
        "has_call_recording": bool(record.call_recording),
    }


def make_auth_middleware(tokens: TokenRegistry) -> Any:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        needed: Role | None = getattr(handler, "required_role", None)
        if needed is None:
            return await handler(request)
        action: str = getattr(handler, "audit_action", "")
        principal = tokens.authenticate(request.headers.get("Authorization", ""))
        if principal is None:  # counted and logged, not audited: anyone can send these, endlessly
            request.app[UNAUTHENTICATED_KEY].seen(request.path, request.remote or "")
            return error_response(401, "a valid bearer token is required")
        if not principal.may(needed):
            log.warning("api.forbidden", who=principal.name, role=principal.role, needed=needed, path=request.path)
            if action:
                await audit_request(request, principal, action, "denied")
            return error_response(403, f"this needs the {needed} role")
        serving = request.app[SERVING_KEY]
        scope = serving.scope_of(principal)
        # this controller's own objects (seats, its calls, queues, parked jobs, dialplan): a token
        # of another platform may not change them, and see them only if it is the province's
        viewing = request.method in ("GET", "HEAD")
        if not (scope.may_view(serving.platform) if viewing else scope.may_change(serving.platform)):
            if action:
                await audit_request(request, principal, action, "denied")
            return other_platform(scope, serving.platform, "see" if viewing else "change", "objects")
        request[PRINCIPAL_KEY] = principal
        request[SCOPE_KEY] = scope
        try:
            return await handler(request)
        except BadRequest as exc:  # a body the endpoint cannot take: the client's mistake, not ours
            return error_response(exc.status, str(exc))

    return auth


async def health(request: web.Request) -> web.Response:
    """503 when a component is down (AMI, Redis, FastAGI); else 200, ``degraded`` with reasons
    included: a warning still serves calls, and a load balancer must not pull the platform."""
    status = await request.app[BACKEND_KEY].health()
    serving = all(state != "down" for state in status["components"].values())
    return web.json_response(status, status=200 if serving else 503)


async def metrics(request: web.Request) -> web.Response:
    unauthenticated = Metric(
        "hotline_api_unauthenticated_total",
        "counter",
        "API requests without a valid token (refused with 401; logged at most once a minute)",
        request.app[UNAUTHENTICATED_KEY].total,
    )
    text = render_prometheus([*await request.app[BACKEND_KEY].metrics(), unauthenticated])
    return web.Response(text=text, content_type="text/plain", charset="utf-8", headers={"X-Content-Format": "0.0.4"})


@requires("supervisor")
async def list_calls(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        return error_response(400, "limit must be a whole number")
    if not 1 <= limit <= 1000:
        return error_response(400, "limit must be between 1 and 1000")
    try:
        records = await request.app[BACKEND_KEY].recent_calls(limit)
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    return web.json_response({"calls": [call_view(r) for r in records]})


@requires("supervisor")
async def get_call(request: web.Request) -> web.Response:
    try:
        record = await request.app[BACKEND_KEY].get_call(request.match_info["call_id"])
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    if record is None:
        return error_response(404, "no such call")
    if not request[SCOPE_KEY].may_view(record.platform):  # records of every platform share the Redis
        return other_platform(request[SCOPE_KEY], record.platform, "see", "calls")
    return web.json_response(call_view(record))


@requires("supervisor")
async def dialplan_status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[BACKEND_KEY].dialplan_status())


@requires("admin")
async def reload_dialplan(request: web.Request) -> web.Response:
    who = request[PRINCIPAL_KEY].name
    result = await request.app[BACKEND_KEY].reload_dialplan(f"API request by {who}")
    body = {"ok": result.ok, "version": result.version, "changed": result.changed, "problems": list(result.problems)}
    return web.json_response(body, status=200 if result.ok else 422)


@requires("supervisor", audit="recording.fetch")
async def get_recording(request: web.Request) -> web.StreamResponse:
    kind = request.query.get("kind", "conversation")
    if kind not in ("conversation", "message"):
        return error_response(400, "kind is conversation (the seat call) or message (voicemail / fallback)")
    principal = request[PRINCIPAL_KEY]
    backend = request.app[BACKEND_KEY]
    try:
        record = await backend.get_call(request.match_info["call_id"])
        if record is not None and not request[SCOPE_KEY].may_view(record.platform):
            await audit_request(request, principal, f"recording.fetch.{kind}", "denied")
            return other_platform(request[SCOPE_KEY], record.platform, "hear", "calls")
        path = await backend.recording_file(request.match_info["call_id"], kind)
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    if path is None:
        await audit_request(request, principal, f"recording.fetch.{kind}", "missing")
        return error_response(
            404, f"no {kind} recording for this call (never made, or purged after the retention period)"
        )
    await audit_request(request, principal, f"recording.fetch.{kind}", "allowed")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store"})


@requires("supervisor", audit="callbacks.list")
async def list_callbacks(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    if request.app[REPEATED_READS_KEY].due(request[SCOPE_KEY].platform, principal.name, "callbacks.list"):
        await audit_request(request, principal, "callbacks.list", "allowed")  # consoles poll it
    try:
        entries = await request.app[BACKEND_KEY].callbacks(200)
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    return web.json_response(
        {
            "callbacks": [
                {
                    "caller": entry.caller,  # whole: it is to be dialled; this access is audited
                    "platform": entry.platform,
                    "first_missed_at": entry.first_missed_at.isoformat(),
                    "last_missed_at": entry.last_missed_at.isoformat(),
                    "attempts": entry.attempts,
                    "last_call_id": entry.last_call_id,
                    "last_ivr_path": list(entry.last_ivr_path),
                }
                for entry in entries
            ]
        }
    )


def seat_view(seat: Seat, stats: SeatStats | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "seat": seat.seat_id,
        "state": seat.state.value,
        "reason": seat.reason,
        "since": seat.since.isoformat() if seat.since else None,
        "missed_in_a_row": seat.missed_in_a_row,
        "calls_taken": seat.calls_taken,
    }
    if stats is not None:
        view.update(answered_24h=stats.answered, average_talk_24h_s=round(stats.average_talk_s, 1))
    return view


@requires("seat")
async def list_seats(request: web.Request) -> web.Response:
    backend = request.app[BACKEND_KEY]
    current = await backend.current_calls()
    try:
        views = [seat_view(seat, stats) for seat, stats in await backend.seat_figures()]
    except StoreUnavailable:  # the states are still known: show them without the 24 h figures
        views = [seat_view(seat) for seat in backend.seats.all()]
    principal = request[PRINCIPAL_KEY]
    for view in views:
        view.update(backend.seats.work_view(backend.seats.get(view["seat"])))  # wrap-up, pauses, disposition
        # the call (and the case a hand-off brought) is for that seat, and supervisors
        view["current"] = current.get(view["seat"]) if principal.may_act_as_seat(view["seat"]) else None
    return web.json_response({"seats": views})


_SEAT_ACTIONS = ("login", "logout", "pause", "ready", "disposition")


@requires("seat")
async def change_seat(request: web.Request) -> web.Response:  # noqa: PLR0911 - one answer per failure
    seat_id, action = request.match_info["seat_id"], request.match_info["action"]
    principal = request[PRINCIPAL_KEY]
    if action not in _SEAT_ACTIONS:
        return error_response(404, f"unknown action {action!r} (expected one of: {', '.join(_SEAT_ACTIONS)})")
    if not principal.may_act_as_seat(seat_id):
        return error_response(403, "a seat may change only its own state; supervisors may change any")
    service = request.app[BACKEND_KEY].seats
    try:
        if action == "login":
            seat = await service.login(seat_id)
        elif action == "logout":
            seat = await service.logout(seat_id)
        elif action == "pause":
            reason = (await json_body(request)).get("reason")  # a code of the platform's list (acd/codes.py)
            seat = await (service.pause(seat_id, "not ready") if reason is None else service.pause_for(seat_id, reason))
        elif action == "disposition":
            seat = await service.dispose(seat_id, (await json_body(request)).get("code"))
        else:
            seat = await service.ready(seat_id)
    except UnknownSeat:
        return error_response(404, f"no seat {seat_id!r} is configured")
    except UnknownCode as exc:
        return error_response(400, str(exc))
    except IllegalSeatTransition as exc:
        return error_response(409, str(exc))
    except AmiError as exc:
        return error_response(503, f"Asterisk did not take the change: {exc}")
    log.info("api.seat_change", who=principal.name, seat=seat_id, action=action)
    return web.json_response({**seat_view(seat), **service.work_view(seat)})


@requires("supervisor")
async def events_socket(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse(heartbeat=20)
    await socket.prepare(request)
    bus = request.app[BACKEND_KEY].events
    queue = bus.subscribe()
    try:
        while not socket.closed:
            await socket.send_json(await queue.get())
    except ConnectionResetError:
        pass
    finally:
        bus.unsubscribe(queue)
    return socket


@requires("supervisor")
async def list_queues(request: web.Request) -> web.Response:
    try:
        stats = await request.app[BACKEND_KEY].queue_stats()
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    return web.json_response(
        {
            "window_hours": 24,
            "queues": [
                {
                    "queue": q.queue,
                    "waiting_now": q.waiting_now,
                    "callbacks_waiting": q.callbacks_waiting,
                    "longest_wait_now_s": round(q.longest_wait_now_s, 1),
                    "offered": q.offered,
                    "answered": q.answered,
                    "answered_within_15s": q.answered_within_15s,
                    "abandoned": q.abandoned,
                    "overflowed": q.overflowed,
                    "answer_rate": round(q.answer_rate, 4),
                    "abandon_rate": round(q.abandon_rate, 4),
                    "service_level_15s": round(q.service_level, 4),
                    "average_speed_of_answer_s": round(q.average_speed_of_answer_s, 1),
                    "average_talk_s": round(q.average_talk_s, 1),
                }
                for q in stats
            ],
        }
    )


@requires("admin")
async def audit_trail(request: web.Request) -> web.Response:
    # one stream for every platform: an entry is shown to those who may see its platform's objects
    scope = request[SCOPE_KEY]
    try:
        shown = await request.app[BACKEND_KEY].audit_trail(200, lambda entry: scope.may_view(entry.platform))
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    return web.json_response({"audit": [audit_json(entry) for entry in shown]})


STATIC = Path(__file__).resolve().parent / "static"


def _page(name: str) -> web.FileResponse:
    """A static page that reads this API with the user's token (it carries no data itself)."""
    return web.FileResponse(
        STATIC / name,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            "X-Frame-Options": "DENY",
        },
    )


async def console(request: web.Request) -> web.FileResponse:
    """The supervisors' web console."""
    return _page("console.html")


async def seat_desk(request: web.Request) -> web.FileResponse:
    """A seat's desk: its call, the case, one-key emergency transfers, consultations."""
    return _page("seat.html")


@requires("seat")
async def who_am_i(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    return web.json_response({"name": principal.name, "role": principal.role, "seat": principal.seat})


def build_api(backend: ApiBackend, tokens: TokenRegistry, *, province: bool = False) -> web.Application:
    """The aiohttp application of the controller of ``backend.platform_id`` (``province``: the
    provincial platform's)."""
    app = web.Application(middlewares=[make_auth_middleware(tokens)], client_max_size=1024 * 1024)
    app[BACKEND_KEY] = backend
    app[SERVING_KEY] = Serving(backend.platform_id, province)
    app[UNAUTHENTICATED_KEY] = Unauthenticated()
    app[REPEATED_READS_KEY] = RepeatedReads()
    app[AUDIT_KEY] = backend
    app[TICKETS_KEY] = backend
    app[NETWORK_KEY] = backend.network
    app.router.add_get("/", console)
    app.router.add_get("/seat", seat_desk)
    app.router.add_get("/api/v1/me", who_am_i)
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/calls", list_calls)
    app.router.add_get("/api/v1/calls/{call_id}", get_call)
    app.router.add_get("/api/v1/calls/{call_id}/recording", get_recording)
    app.router.add_get("/api/v1/callbacks", list_callbacks)
    app.router.add_get("/api/v1/audit", audit_trail)
    app.router.add_get("/api/v1/seats", list_seats)
    app.router.add_get("/api/v1/queues", list_queues)
    app.router.add_post("/api/v1/seats/{seat_id}/{action}", change_seat)
    app.router.add_get("/api/v1/events", events_socket)
    app.router.add_get("/api/v1/dialplans", dialplan_status)
    app.router.add_post("/api/v1/dialplans/reload", reload_dialplan)
    add_ticket_routes(app)
    add_network_routes(app)
    return app
