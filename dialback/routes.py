"""The HTTP side of seats' callbacks: the desk's missed-call list (numbers masked) and 回拨.

- ``GET /api/v1/seats/{seat_id}/callbacks``: the platform's callback entries, each with an
  ``entry`` id and the number masked (a seat never needs the whole number: it clicks), whether
  inbound callers wait (then 回拨 is refused) and the seat's callback in progress.
- ``POST /api/v1/seats/{seat_id}/callback`` ``{"entry": id}`` or ``{"ticket_id": id}``: the
  seat's phone rings, then the citizen's. The seat itself, or a supervisor for any seat of
  this platform; every attempt is audited (``callbacks.dial``).
"""

from __future__ import annotations

from typing import Protocol

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from acd.seats import UnknownSeat
from calls.callbacks import Callback
from common.privacy import mask_number
from dialback.model import Dialback
from dialback.schemas import CallBackRequest, DeskList, DialbackView
from dialback.service import DialbackRefused, DialbackService
from tickets.model import Ticket
from web.api_common import (
    PRINCIPAL_KEY,
    REPEATED_READS_KEY,
    SCOPE_KEY,
    SERVING_KEY,
    audit_request,
    error_response,
    json_body,
    other_platform,
    requires,
)
from web.openapi import describe

log = structlog.get_logger(__name__)
MAX_LISTED = 200
_ID_MAX = 128  # an entry or ticket id longer than this is no id of ours


class TicketLookup(Protocol):
    async def get(self, ticket_id: str) -> Ticket | None: ...


class DialbackDesk:
    def __init__(self, service: DialbackService, tickets: TicketLookup) -> None:
        self.service = service
        self.tickets = tickets


DIALBACK_KEY: web.AppKey[DialbackDesk] = web.AppKey("dialback", DialbackDesk)


def entry_view(entry: Callback) -> dict[str, object]:
    return {
        "entry": entry.last_call_id,  # the id 回拨 names: no number in it
        "caller": mask_number(entry.caller),
        "first_missed_at": entry.first_missed_at.isoformat(),
        "last_missed_at": entry.last_missed_at.isoformat(),
        "attempts": entry.attempts,
        "tries": entry.tries,
        "last_try_at": entry.last_try_at.isoformat() if entry.last_try_at else None,
        "last_try_result": entry.last_try_result,
        "last_ivr_path": list(entry.last_ivr_path),
    }


def call_view(call: Dialback) -> dict[str, object]:
    return {
        "call_id": call.call_id,
        "seat": call.seat_id,
        "caller": mask_number(call.number),
        "state": call.state.value,
        "blended": call.blended,
    }


@describe(
    "the platform's missed callers to call back, numbers masked (the seat's desk)",
    response=DeskList,
    errors={403: "another seat's desk", 503: "Redis unavailable"},
)
@requires("seat", audit="callbacks.list_masked")
async def list_entries(request: web.Request) -> web.Response:
    seat_id, principal = request.match_info["seat_id"], request[PRINCIPAL_KEY]
    if not principal.may_act_as_seat(seat_id):
        await audit_request(request, principal, "callbacks.list_masked", "denied: another seat")
        return error_response(403, "a seat sees the callback list on its own desk; supervisors on any")
    serving = request.app[SERVING_KEY].platform
    if not request[SCOPE_KEY].may_change(serving):  # the province's tokens see, but do not call, others' callers
        await audit_request(request, principal, "callbacks.list_masked", "denied: another platform")
        return other_platform(request[SCOPE_KEY], serving, "call back", "missed callers")
    if request.app[REPEATED_READS_KEY].due(request[SCOPE_KEY].platform, principal.name, "callbacks.list_masked"):
        await audit_request(request, principal, "callbacks.list_masked", "allowed")  # desks poll it
    service = request.app[DIALBACK_KEY].service
    try:
        entries = await service.entries(MAX_LISTED)
    except RedisError as exc:
        return error_response(503, f"the callback list is unavailable: Redis: {exc}")
    mine = [call_view(c) for c in service.in_progress() if c.seat_id == seat_id]
    return web.json_response(
        {
            "callbacks": [entry_view(e) for e in entries],
            "inbound_waiting": service.inbound_waiting(),
            "held_by": service.held_by(),
            "blended": service.blended,
            "in_progress": mine,
        }
    )


def _id(body: dict[str, object], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _ID_MAX:
        raise ValueError(f"{key!r} must be a non-empty string of at most {_ID_MAX} characters")
    return value


@describe(
    "回拨: the seat's phone rings, then the citizen's (a callback entry, or a case's caller)",
    body=CallBackRequest,
    response=DialbackView,
    status=202,
    errors={
        400: "neither or both of entry and ticket_id",
        403: "another seat, or another platform's case",
        404: "no such entry, case or seat",
        409: "callers are waiting or the 15 s service level is low (inbound first: held_by says which), "
        "the seat is busy, or the number is being called",
        422: "the number cannot be dialled",
        503: "Asterisk or the outbound trunk unavailable",
    },
)
@requires("seat", audit="callbacks.dial")
async def call_back(request: web.Request) -> web.Response:  # noqa: PLR0911, PLR0912 - one answer per failure
    seat_id, principal = request.match_info["seat_id"], request[PRINCIPAL_KEY]
    desk = request.app[DIALBACK_KEY]

    async def audited(status: int, message: str) -> web.Response:
        await audit_request(request, principal, "callbacks.dial", f"refused ({status}): {message}")
        return error_response(status, message)

    if not principal.may_act_as_seat(seat_id):
        return await audited(403, "a seat may call back only from its own phone; supervisors for any seat")
    body = await json_body(request)
    try:
        entry_id, ticket_id = _id(body, "entry"), _id(body, "ticket_id")
    except ValueError as exc:
        return await audited(400, str(exc))
    if (entry_id is None) == (ticket_id is None):
        return await audited(400, 'give exactly one of "entry" (a callback entry) or "ticket_id" (a case)')
    try:
        if entry_id is not None:
            entry = await desk.service.entry(entry_id)
            if entry is None:
                return await audited(404, "no such callback entry (called back or missed again since: reload the list)")
            number, origin = entry.caller, f"entry {entry_id}"
        else:
            ticket = await desk.tickets.get(ticket_id or "")
            if ticket is None:
                return await audited(404, f"no case {ticket_id}")
            if not request[SCOPE_KEY].may_change(ticket.platform):
                await audit_request(request, principal, "callbacks.dial", "denied: another platform's case")
                return other_platform(request[SCOPE_KEY], ticket.platform, "call back", "cases")
            if not ticket.caller:
                return await audited(409, "this case has no caller's number to call back")
            number, origin = ticket.caller, f"case {ticket.id}"
    except RedisError as exc:
        return await audited(503, f"unavailable: Redis: {exc}")
    try:
        call = await desk.service.call_back(seat_id, number, origin=origin)
    except UnknownSeat:
        return await audited(404, f"no seat {seat_id}")
    except DialbackRefused as exc:
        refused = await audited(exc.refusal.status, exc.refusal.reason)
        if exc.refusal.held_by:  # inbound first: what holds it, for the desk to say
            body = {"error": exc.refusal.reason, "held_by": exc.refusal.held_by}
            return web.json_response(body, status=exc.refusal.status)
        return refused
    await audit_request(request, principal, "callbacks.dial", f"started {call.call_id} ({origin})")
    return web.json_response(call_view(call), status=202)


def add_routes(app: web.Application, desk: DialbackDesk) -> None:
    app[DIALBACK_KEY] = desk
    app.router.add_get("/api/v1/seats/{seat_id}/callbacks", list_entries)
    app.router.add_post("/api/v1/seats/{seat_id}/callback", call_back)
