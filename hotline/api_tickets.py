"""The ticket part of the HTTP API: case tickets, their audio (audited), state changes, and the
transcription jobs that failed for good (parked) — see docs/api.md."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from common.privacy import mask_fallback_names, mask_number
from hotline.api_schemas import ParkedList, Queued, TicketList, TicketView, TransitionBody
from ivr.calendar import CalendarDataMissing
from recordings.access import UnsafePath, spool_file
from tickets.machine import ALLOWED, ExtensionLimitReached, IllegalTicketTransition, ReturnWindowClosed, overdue
from tickets.model import Ticket, TicketState
from tickets.store import RedisTicketStore, StoreContention, TicketNotFound
from voicemail.queue import AsrQueue
from web.api_common import (
    PRINCIPAL_KEY,
    SCOPE_KEY,
    audit_request,
    error_response,
    json_body,
    other_platform,
    requires,
)
from web.openapi import Param, describe, integer

log = structlog.get_logger(__name__)


class TicketBackend(Protocol):
    @property
    def tickets(self) -> RedisTicketStore: ...

    @property
    def asr_queue(self) -> AsrQueue: ...

    @property
    def spool_dir(self) -> Path: ...

    @property
    def platform_id(self) -> str: ...


def ticket_view(ticket: Ticket, now: datetime) -> dict[str, Any]:
    """A ticket as the API shows it: caller masked, overdue deadlines named."""
    data = ticket.model_dump(mode="json")
    data["caller"] = mask_number(ticket.caller)
    data["overdue"] = [kind.value for kind in overdue(ticket, now)]
    data["has_audio"] = bool(ticket.recording)
    data["allowed"] = sorted(ALLOWED[ticket.state])  # the moves POST …/transition takes (the console's buttons)
    data.pop("recording", None)  # a spool path is for the server, not for clients
    for entry in data["timeline"]:  # notes written before fallback names lost the number
        entry["note"] = mask_fallback_names(entry["note"])
    return data


TICKETS_KEY: web.AppKey[TicketBackend] = web.AppKey("tickets")
NO_SUCH_TICKET = "no such ticket (ticket ids look like KM-20260302-0001)"


def _backend(request: web.Request) -> TicketBackend:
    return request.app[TICKETS_KEY]


@describe(
    "tickets of this platform (or another's / all: province tokens), newest first",
    response=TicketList,
    query=[
        Param("state", "only tickets in this state"),
        Param("date", "only tickets accepted on this day (YYYY-MM-DD)", {"type": "string", "format": "date"}),
        Param("overdue", "1 / true / yes: only tickets past a deadline now"),
        Param("platform", "a platform id, or all (province tokens)"),
        Param("limit", "how many", integer(1, 1000, 100)),
    ],
    errors={400: "a bad filter", 503: "tickets are unavailable (Redis)"},
)
@requires("supervisor")
async def list_tickets(request: web.Request) -> web.Response:
    query = request.query
    now = datetime.now(UTC)
    try:
        state = TicketState(query["state"]) if "state" in query else None
        day = date.fromisoformat(query["date"]) if "date" in query else None
        limit = int(query.get("limit", "100"))
        if day == date.max:  # its end (the next day) is past what a date can hold
            raise ValueError(f"no tickets are accepted on {day}")
    except ValueError as exc:
        return error_response(400, f"bad filter: {exc} (state is one of {', '.join(s.value for s in TicketState)})")
    if not 1 <= limit <= 1000:
        return error_response(400, "limit must be between 1 and 1000")
    overdue_at = now if query.get("overdue") in ("1", "true", "yes") else None
    backend = _backend(request)
    scope = request[SCOPE_KEY]
    platform = query.get("platform", backend.platform_id)  # this platform's own, or ?platform=all
    if not (scope.province if platform == "all" else scope.may_view(platform)):
        return other_platform(scope, "every platform" if platform == "all" else platform, "see", "tickets")
    try:
        found = await backend.tickets.list_tickets(
            platform=None if platform == "all" else platform, state=state, overdue_at=overdue_at, day=day, limit=limit
        )
    except RedisError as exc:
        return error_response(503, f"tickets are unavailable: Redis: {exc}")
    return web.json_response({"tickets": [ticket_view(t, now) for t in found]})


@describe("one ticket", response=TicketView, errors={404: "no such ticket", 503: "tickets are unavailable (Redis)"})
@requires("supervisor")
async def get_ticket(request: web.Request) -> web.Response:
    try:
        ticket = await _backend(request).tickets.get(request.match_info["ticket_id"])
    except RedisError as exc:
        return error_response(503, f"tickets are unavailable: Redis: {exc}")
    if ticket is None:
        return error_response(404, NO_SUCH_TICKET)
    if not request[SCOPE_KEY].may_view(ticket.platform):
        return other_platform(request[SCOPE_KEY], ticket.platform, "see", "tickets")
    return web.json_response(ticket_view(ticket, datetime.now(UTC)))


@describe(
    "a ticket's voicemail message (WAV; every fetch audited)",
    content="audio/wav",
    errors={404: "no audio for this ticket", 503: "tickets are unavailable (Redis)"},
)
@requires("supervisor", audit="ticket.audio")
async def get_ticket_audio(request: web.Request) -> web.StreamResponse:
    principal = request[PRINCIPAL_KEY]
    backend = _backend(request)
    try:
        ticket = await backend.tickets.get(request.match_info["ticket_id"])
    except RedisError as exc:
        return error_response(503, f"tickets are unavailable: Redis: {exc}")
    if ticket is not None and not request[SCOPE_KEY].may_view(ticket.platform):
        await audit_request(request, principal, "ticket.audio", "denied")
        return other_platform(request[SCOPE_KEY], ticket.platform, "hear", "ticket messages")
    if ticket is None or not ticket.recording:
        await audit_request(request, principal, "ticket.audio", "missing")
        return error_response(404, "no audio for this ticket")
    try:
        path = spool_file(backend.spool_dir, ticket.recording)  # never a raw path from a request
    except UnsafePath:
        log.error("tickets.unsafe_recording_path", ticket=ticket.id)
        return error_response(404, "no audio for this ticket")
    if not path.is_file():
        await audit_request(request, principal, "ticket.audio", "missing")
        return error_response(404, "the message file is gone (purged or moved)")
    await audit_request(request, principal, "ticket.audio", "allowed")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store"})


def _requested_move(body: dict[str, object]) -> tuple[TicketState, str] | web.Response:
    """(target state, note) from a transition's body, or the 400 to send."""
    if "to" not in body:
        return error_response(400, 'send {"to": "<state>", "note": "…"}')
    try:
        return TicketState(str(body["to"])), str(body.get("note", ""))[:500]
    except ValueError:
        return error_response(400, f"unknown state; one of {', '.join(s.value for s in TicketState)}")


@describe(
    "move a ticket to another state (the allowed moves: docs/api.md, Tickets)",
    response=TicketView,
    body=TransitionBody,
    errors={
        404: "no such ticket",
        409: "the move is not allowed now",
        422: "the working-day calendar lacks the year the deadline falls in",
        503: "tickets are unavailable (Redis)",
    },
)
@requires("supervisor")
async def change_ticket(request: web.Request) -> web.Response:  # noqa: PLR0911 - one answer per outcome
    principal = request[PRINCIPAL_KEY]
    move = _requested_move(await json_body(request))
    if isinstance(move, web.Response):
        return move
    target, note = move
    store, ticket_id = _backend(request).tickets, request.match_info["ticket_id"]
    try:
        # a ticket's platform never changes: checked before, it holds for the transition
        found = await store.get(ticket_id)
        if found is None:
            return error_response(404, NO_SUCH_TICKET)
        if not request[SCOPE_KEY].may_change(found.platform):
            log.warning("api.ticket_change_refused", who=principal.name, ticket=ticket_id, to=target.value)
            return other_platform(request[SCOPE_KEY], found.platform, "change", "tickets")
        ticket = await store.transition(ticket_id, target, at=datetime.now(UTC), actor=principal.name, note=note)
    except TicketNotFound:
        return error_response(404, NO_SUCH_TICKET)
    except (RedisError, StoreContention) as exc:
        return error_response(503, f"tickets are unavailable now: {exc}")
    except (IllegalTicketTransition, ExtensionLimitReached, ReturnWindowClosed) as exc:
        return error_response(409, str(exc))
    except CalendarDataMissing as exc:
        return error_response(422, str(exc))
    log.info("api.ticket_change", who=principal.name, ticket=ticket.id, to=target.value)
    return web.json_response(ticket_view(ticket, datetime.now(UTC)))


@describe("transcription jobs that failed for good (parked)", response=ParkedList)
@requires("admin")
async def list_parked_jobs(request: web.Request) -> web.Response:
    parked = await _backend(request).asr_queue.list_parked()
    return web.json_response(
        {
            "parked": [
                {  # an old fallback message's name carries the caller's number: masked (retry takes it so)
                    "recording": mask_fallback_names(job.recording),
                    "error": mask_fallback_names(job.error),
                    "attempts": job.attempts,
                    "parked_at": job.parked_at.isoformat(),
                }
                for job in parked
            ]
        }
    )


@describe(
    "queue a parked transcription job again",
    response=Queued,
    query=[Param("recording", "the parked job's recording, as listed", required=True)],
    errors={404: "no parked job for that recording"},
)
@requires("admin")
async def retry_parked_job(request: web.Request) -> web.Response:
    recording = request.query.get("recording", "")
    if not await _backend(request).asr_queue.retry_parked(recording):
        return error_response(404, "no parked job for that recording")
    log.info("api.asr_retry", who=request[PRINCIPAL_KEY].name, recording=recording)
    return web.json_response({"queued": recording})


def add_ticket_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/tickets", list_tickets)
    app.router.add_get("/api/v1/tickets/{ticket_id}", get_ticket)
    app.router.add_get("/api/v1/tickets/{ticket_id}/audio", get_ticket_audio)
    app.router.add_post("/api/v1/tickets/{ticket_id}/transition", change_ticket)
    app.router.add_get("/api/v1/asr/parked", list_parked_jobs)
    app.router.add_post("/api/v1/asr/parked/retry", retry_parked_job)
