"""Outbound's HTTP routes (docs/api.md): supervisors read, admins pause and resume.

This controller's outbound calls are its own platform's: a token of another platform may not
see them (the province's tokens may) nor pause them (nobody else's may)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiohttp import web

from outbound.model import JobState
from outbound.schemas import AttemptList, OutboundStatus, Paused
from outbound.service import OutboundService, job_view
from web.api_common import SCOPE_KEY, error_response, other_platform, requires
from web.openapi import Param, describe, integer, one_of

OUTBOUND_KEY: web.AppKey[OutboundService] = web.AppKey("outbound", OutboundService)
MAX_LIMIT = 500
_TICKET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@describe("the automated outbound calls: per kind and state, channels in use, what holds them", response=OutboundStatus)
@requires("supervisor")
async def status(request: web.Request) -> web.Response:
    service = request.app[OUTBOUND_KEY]
    if not request[SCOPE_KEY].may_view(service.platform):
        return other_platform(request[SCOPE_KEY], service.platform, "see", "outbound calls")
    return web.json_response(await service.status())


@describe(
    "the outbound jobs and their tries (numbers masked)",
    response=AttemptList,
    query=[
        Param("ticket_id", "only this ticket's"),
        Param("state", "only jobs in this state", one_of(*(s.value for s in JobState))),
        Param("limit", "how many", integer(1, MAX_LIMIT, 100)),
    ],
    errors={400: "a bad ticket id, state or limit"},
)
@requires("supervisor")
async def attempts(request: web.Request) -> web.Response:
    service = request.app[OUTBOUND_KEY]
    if not request[SCOPE_KEY].may_view(service.platform):
        return other_platform(request[SCOPE_KEY], service.platform, "see", "outbound calls")
    ticket_id = request.query.get("ticket_id", "")
    if len(ticket_id) > 40 or not set(ticket_id) <= _TICKET_CHARS:
        return error_response(400, "ticket_id is a ticket number such as KM-20261128-0001")
    state_text = request.query.get("state", "")
    try:
        state = JobState(state_text) if state_text else None
    except ValueError:
        return error_response(400, f"state must be one of {', '.join(s.value for s in JobState)}")
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return error_response(400, "limit must be a whole number")
    if not 1 <= limit <= MAX_LIMIT:
        return error_response(400, f"limit must be between 1 and {MAX_LIMIT}")
    zone = ZoneInfo("Asia/Shanghai")
    found = [
        job_view(job, zone)
        for job in await service.store.jobs(10_000)
        if (not ticket_id or job.ticket_id == ticket_id) and (state is None or job.state is state)
    ]
    return web.json_response({"platform": service.platform, "attempts": found[:limit]})


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    service = request.app[OUTBOUND_KEY]
    if not request[SCOPE_KEY].may_change(service.platform):
        return other_platform(request[SCOPE_KEY], service.platform, "change", "outbound calls")
    await service.store.set_paused(paused)
    return web.json_response({"platform": service.platform, "paused": paused})


@describe("stop starting new automated calls (calls in progress go on)", response=Paused)
@requires("admin", audit="outbound.pause")
async def pause(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


@describe("start automated calls again", response=Paused)
@requires("admin", audit="outbound.resume")
async def resume(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


def add_routes(app: web.Application, service: OutboundService) -> None:
    app[OUTBOUND_KEY] = service
    app.router.add_get("/api/v1/outbound", status)
    app.router.add_get("/api/v1/outbound/attempts", attempts)
    app.router.add_post("/api/v1/outbound/pause", pause)
    app.router.add_post("/api/v1/outbound/resume", resume)
