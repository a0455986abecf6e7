"""The case desk's HTTP API: register a call's case, link a call to an open case, the caller's
history, and each seat's own event socket (the screen pop). See docs/api.md, "Case desk"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from calls.model import CallRecord
from cases.model import CaseInvalid, is_call_id, parse_case
from cases.schemas import CallerHistory, CaseAnswer, CaseBody, CaseConflict, LinkBody
from cases.seat_events import SeatEventHub
from cases.service import CaseService, Unavailable, UnknownReference
from cases.store import CaseExists, TicketClosed, TicketElsewhere, TicketMissing
from common.privacy import mask_number
from tickets.store import StoreContention
from web.api_common import (
    PRINCIPAL_KEY,
    SCOPE_KEY,
    SERVING_KEY,
    PlatformScope,
    audit_request,
    error_response,
    json_body,
    other_platform,
    requires,
)
from web.auth import Principal, TokenRegistry
from web.openapi import describe
from web.socket_auth import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, open_socket, pending_sockets
from web.socket_pump import pump

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CaseDesk:
    """What the routes need, wired by the app shell."""

    service: CaseService
    hub: SeatEventHub
    tokens: TokenRegistry
    seat_ids: frozenset[str]  # the seats this controller serves


CASES_KEY: web.AppKey[CaseDesk] = web.AppKey("cases", CaseDesk)


def _desk(request: web.Request) -> CaseDesk:
    return request.app[CASES_KEY]


async def _own_call(  # noqa: PLR0911 - one answer per refusal
    request: web.Request, *, change: bool, offered_counts: bool = False
) -> tuple[CallRecord, bool] | web.Response:
    """The call of the path and whether it is the requesting seat's own, or the error to answer.
    A seat token reaches only the call it answered (``offered_counts``: or was rung for);
    supervisors and admins any call of their platform (the province's: see any, change its own)."""
    call_id = request.match_info["call_id"]
    if not is_call_id(call_id):
        return error_response(404, "no such call")
    try:
        record = await _desk(request).service.call(call_id)
    except Unavailable as exc:
        return error_response(503, str(exc))
    if record is None:
        return error_response(404, "no such call")
    scope: PlatformScope = request[SCOPE_KEY]
    if not (scope.may_change(record.platform) if change else scope.may_view(record.platform)):
        return other_platform(scope, record.platform, "change" if change else "see", "calls")
    principal: Principal = request[PRINCIPAL_KEY]
    if principal.may("supervisor"):
        return record, False
    # seat ids are a platform's own ("1001" on every platform): a seat token of another platform
    # (the province's may view this one's calls) is never the seat on this call
    own = (
        bool(principal.seat)
        and scope.platform == record.platform
        and (
            record.seat == principal.seat
            or (offered_counts and _desk(request).hub.was_offered(principal.seat or "", record.call_id))
        )
    )
    if not own:
        log.warning("cases.other_seats_call", who=principal.name, call_id=call_id, seat=record.seat)
        return error_response(403, "a seat may do this only for a call it answered")
    return record, True


def _case_answer(ticket_id: str, status: int, **extra: Any) -> web.Response:
    return web.json_response({"case_id": ticket_id, "ticket": f"/api/v1/tickets/{ticket_id}", **extra}, status=status)


@describe(
    "register the call's case (a ticket); 201: filed",
    response=CaseAnswer,
    status=201,
    body=CaseBody,
    errors={
        404: "no such call",
        409: ("the call has a case already: its case_id", CaseConflict),
        422: "the unit, matter type or knowledge entry is not this platform's (field names it)",
        503: "the case was not saved",
    },
)
@requires("seat")
async def register_case(request: web.Request) -> web.Response:
    found = await _own_call(request, change=True)
    if isinstance(found, web.Response):
        return found
    record, _ = found
    try:
        case = parse_case(await json_body(request))
    except CaseInvalid as exc:
        return web.json_response({"error": str(exc), "field": exc.field}, status=400)
    service = _desk(request).service
    principal = request[PRINCIPAL_KEY]
    try:
        ticket = await service.register(record, case, actor=principal.name)
    except UnknownReference as exc:
        return web.json_response({"error": str(exc), "field": exc.field}, status=422)
    except CaseExists as exc:
        return _case_answer(exc.ticket_id, 409, error=str(exc))
    except (Unavailable, StoreContention) as exc:
        return error_response(503, f"the case was not saved: {exc}")
    log.info("api.case_registered", who=principal.name, call_id=record.call_id, ticket=ticket.id)
    return _case_answer(ticket.id, 201, state=ticket.state.value, source=ticket.source.value)


@describe(
    "add the call to an open case",
    response=CaseAnswer,
    body=LinkBody,
    errors={
        404: "no such call or ticket",
        409: ("the call has a case already (its case_id), or the ticket is closed", CaseConflict),
        503: "not linked",
    },
)
@requires("seat")
async def link_call(request: web.Request) -> web.Response:  # noqa: PLR0911 - one answer per outcome
    found = await _own_call(request, change=True)
    if isinstance(found, web.Response):
        return found
    record, _ = found
    ticket_id = (await json_body(request)).get("ticket_id")
    if not isinstance(ticket_id, str) or not ticket_id.strip():
        return web.json_response({"error": "ticket_id: is required", "field": "ticket_id"}, status=400)
    principal = request[PRINCIPAL_KEY]
    try:
        ticket = await _desk(request).service.link(record, ticket_id.strip()[:64], actor=principal.name)
    except CaseExists as exc:
        return _case_answer(exc.ticket_id, 409, error=str(exc))
    except TicketMissing:
        return error_response(404, "no such ticket (ticket ids look like KM-20260302-0001)")
    except TicketElsewhere as exc:
        return other_platform(request[SCOPE_KEY], str(exc), "link a call to", "tickets")
    except TicketClosed as exc:
        return error_response(409, str(exc))
    except (Unavailable, StoreContention) as exc:
        return error_response(503, f"the call was not linked: {exc}")
    log.info("api.call_linked", who=principal.name, call_id=record.call_id, ticket=ticket.id)
    return _case_answer(ticket.id, 200, linked_call_ids=list(ticket.linked_call_ids))


@describe(
    "the call's caller: earlier calls and open cases (audited)",
    response=CallerHistory,
    errors={404: "no such call", 503: "the records are unavailable"},
)
@requires("seat", audit="calls.history")
async def caller_history(request: web.Request) -> web.Response:
    found = await _own_call(request, change=False, offered_counts=True)
    principal = request[PRINCIPAL_KEY]
    if isinstance(found, web.Response):
        if found.status == 403:
            await audit_request(request, principal, "calls.history", "denied")
        return found
    record, own = found
    service = _desk(request).service
    try:
        history = await service.history(record)
        case_id = await service.case_of(record)
    except Unavailable as exc:
        return error_response(503, str(exc))
    await audit_request(request, principal, "calls.history", "allowed")
    body: dict[str, Any] = {"call_id": record.call_id, "caller": mask_number(record.caller), "case_id": case_id}
    if own:  # the seat talks to this citizen (its phone shows the number too); lists stay masked
        body["caller_number"] = record.caller
    return web.json_response({**body, **history})


def _refusal(principal: Principal, seat_id: str, desk: CaseDesk, request: web.Request) -> tuple[int, str] | None:
    """Why ``principal`` may not follow ``seat_id``'s events (code, reason), or None."""
    serving = request.app[SERVING_KEY]
    scope = serving.scope_of(principal)
    if not scope.may_view(serving.platform):
        return CLOSE_FORBIDDEN, "this token is another platform's"
    if not principal.may_act_as_seat(seat_id):
        return CLOSE_FORBIDDEN, "a seat follows only its own events"
    if principal.role == "seat" and scope.platform != serving.platform:  # the province's "1001" is not ours
        return CLOSE_FORBIDDEN, "a seat follows only its own platform's seat"
    if seat_id not in desk.seat_ids:
        return CLOSE_NOT_FOUND, "no such seat"
    return None


@describe(
    "a seat's own events (screen pop) over a websocket",
    websocket=True,
    role="seat",
    description="The token in the Authorization header, or (browsers) as the first message "
    '{"token": "…"} within 10 s; refusals close with 4401 / 4403 / 4404 / 4429. A token in the URL is refused (400).',
    errors={
        400: "a token in the URL",
        401: "the Authorization header's token is not valid",
        403: "not this seat's token",
        404: "no such seat",
        429: "this token has http.max_sockets_per_token sockets open already",
    },
)
async def seat_events(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/seats/{seat_id}/events: the seat's own events over a websocket. The token
    comes in the Authorization header, or (browsers) as the first message ``{"token": …}``
    within 10 s — never in the URL."""
    desk, seat_id = _desk(request), request.match_info["seat_id"]
    opened = await open_socket(
        request, desk.tokens, lambda who: _refusal(who, seat_id, desk, request), "cases.token_in_url"
    )
    if not isinstance(opened, tuple):
        return opened
    socket, principal = opened
    own = principal.role == "seat"  # whole numbers go to the seat itself, never to an onlooker
    queue = desk.hub.subscribe(seat_id)
    log.info("cases.seat_events_open", who=principal.name, seat=seat_id)
    try:
        await socket.send_json({"type": "hello", "seat": seat_id, "who": principal.name, "role": principal.role})
        await pump(socket, queue, None if own else _without_number)
    finally:
        desk.hub.unsubscribe(seat_id, queue)
    return socket


def _without_number(event: dict[str, Any]) -> dict[str, Any]:
    """An onlooker's copy of a seat's event: never the caller's whole number."""
    return {k: v for k, v in event.items() if k != "caller_number"}


def add_case_routes(app: web.Application, desk: CaseDesk) -> None:
    app[CASES_KEY] = desk
    pending_sockets(app)  # the seat's socket waits for its token: capped with the app's others
    app.router.add_post("/api/v1/calls/{call_id}/case", register_case)
    app.router.add_post("/api/v1/calls/{call_id}/link", link_call)
    app.router.add_get("/api/v1/calls/{call_id}/history", caller_history)
    app.router.add_get("/api/v1/seats/{seat_id}/events", seat_events)
