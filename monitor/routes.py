"""The monitor's HTTP API: a supervisor listens to, whispers to or barges into a seat's call on
its own phone. Supervisor role only; every start, switch and end is audited. See docs/api.md,
"Listen, whisper, barge"."""

from __future__ import annotations

import re

import structlog
from aiohttp import web

from monitor.model import Mode
from monitor.schemas import ModeRequest, MonitorList, MonitorRequest, MonitorView
from monitor.service import MonitorRefused, MonitorService
from web.api_common import PRINCIPAL_KEY, audit_request, error_response, json_body, requires
from web.auth import Principal
from web.openapi import Param, describe, one_of

log = structlog.get_logger(__name__)

MONITORS_KEY: web.AppKey[MonitorService] = web.AppKey("monitors", MonitorService)
_CALL_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MODES = ", ".join(m.value for m in Mode)


def _mode(body: dict[str, object]) -> Mode | web.Response:
    value = body.get("mode")
    if not isinstance(value, str) or value not in Mode.__members__.values():
        return web.json_response({"error": f"mode: must be one of {_MODES}", "field": "mode"}, status=400)
    return Mode(value)


@describe(
    "listen, whisper or barge on a seat's call: the supervisor's phone rings and joins it (ChanSpy)",
    response=MonitorView,
    status=201,
    body=MonitorRequest,
    errors={
        404: "no such call",
        409: "not a seat's call in progress, or the phone is busy",
        422: "not a monitor phone",
        503: "Asterisk did not ring the phone",
    },
)
@requires("supervisor", audit="monitor.start")  # a refused role is on the trail too
async def start_monitor(request: web.Request) -> web.Response:
    service = request.app[MONITORS_KEY]
    principal: Principal = request[PRINCIPAL_KEY]
    call_id = request.match_info["call_id"]
    body = await json_body(request)
    mode = _mode(body)
    if isinstance(mode, web.Response):
        return mode
    phone = body.get("phone", principal.seat or "")
    if not isinstance(phone, str) or not phone:
        return web.json_response({"error": "phone: a supervisor's phone is required", "field": "phone"}, status=400)
    if _CALL_ID.fullmatch(call_id) is None:
        return error_response(404, "no such call")
    try:
        monitor = await service.start(call_id, mode, phone[:16], principal.name)
    except MonitorRefused as exc:
        await audit_request(request, principal, f"monitor.start mode={mode.value}", "refused")
        return web.json_response({"error": str(exc)}, status=exc.status)
    await audit_request(request, principal, f"monitor.start mode={mode.value} phone={monitor.phone}", "allowed")
    return web.json_response(monitor.as_json(service.now()), status=201)


@describe(
    "switch a monitor's mode during the call",
    response=MonitorView,
    body=ModeRequest,
    errors={404: "no such monitor", 409: "the phone has not answered yet", 503: "Asterisk did not take the change"},
)
@requires("supervisor")
async def switch_mode(request: web.Request) -> web.Response:
    service = request.app[MONITORS_KEY]
    principal: Principal = request[PRINCIPAL_KEY]
    mode = _mode(await json_body(request))
    if isinstance(mode, web.Response):
        return mode
    monitor_id = request.match_info["monitor_id"]
    known = service.get(monitor_id)
    try:
        monitor, old = await service.switch(monitor_id, mode)
    except MonitorRefused as exc:
        if known is not None:
            await audit_request(request, principal, f"monitor.mode to={mode.value}", "refused", known.call_id)
        return web.json_response({"error": str(exc)}, status=exc.status)
    duration = monitor.duration_s(service.now())
    action = f"monitor.mode {old.value}>{mode.value} after_s={duration:g} started_by={monitor.who}"
    await audit_request(request, principal, action, "allowed", monitor.call_id)
    return web.json_response(monitor.as_json(service.now()))


@describe("end a monitor (the supervisor's phone is hung up)", response=MonitorView, errors={404: "no such monitor"})
@requires("supervisor")
async def stop_monitor(request: web.Request) -> web.Response:
    service = request.app[MONITORS_KEY]
    principal: Principal = request[PRINCIPAL_KEY]
    try:
        monitor = await service.stop(request.match_info["monitor_id"])
    except MonitorRefused as exc:
        return web.json_response({"error": str(exc)}, status=exc.status)
    # the end itself (mode, modes, how long) is on the trail from the service; this names who stopped it
    await audit_request(request, principal, f"monitor.stop started_by={monitor.who}", "allowed", monitor.call_id)
    return web.json_response(monitor.as_json(service.now()))


@describe(
    "the monitors in progress and the phones that may monitor",
    response=MonitorList,
    query=[Param("ended", "1: also the ended ones", one_of("1"))],
)
@requires("supervisor")
async def list_monitors(request: web.Request) -> web.Response:
    service = request.app[MONITORS_KEY]
    now = service.now()
    answer: dict[str, object] = {
        "monitors": [m.as_json(now) for m in service.active()],
        "phones": sorted(service.phones),
    }
    if request.query.get("ended") == "1":
        answer["ended"] = [m.as_json(now) for m in service.ended()]
    return web.json_response(answer)


def add_routes(app: web.Application, service: MonitorService) -> None:
    app[MONITORS_KEY] = service
    app.router.add_post("/api/v1/calls/{call_id}/monitor", start_monitor)
    app.router.add_post("/api/v1/monitors/{monitor_id}/mode", switch_mode)
    app.router.add_post("/api/v1/monitors/{monitor_id}/stop", stop_monitor)
    app.router.add_get("/api/v1/monitors", list_monitors)
