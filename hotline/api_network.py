"""The multi-platform part of the HTTP API: a seat's transfer of its caller (with the case),
hand-off records, and the province-wide view of every platform — see docs/api.md."""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from calls.handoff import Handoff, handoff_view
from hotline.api_schemas import ConsultAnswer, Consultation, DestinationList, PlatformList, TransferAnswer, TransferBody
from ivr.consult import ConsultRefused
from ivr.dialplan.schema import TransferMode
from ivr.transfer import TransferRefused, TransferStarted
from telephony.ami_types import AmiError
from web.api_common import PRINCIPAL_KEY, SCOPE_KEY, error_response, json_body, other_platform, requires
from web.openapi import describe

log = structlog.get_logger(__name__)


CONSULT_ACTIONS = ("complete", "cancel", "three_way")


class NetworkBackend(Protocol):
    async def transfer_call(
        self, call_id: str, to: str, seat: str, note: str, mode: TransferMode
    ) -> TransferStarted: ...

    async def finish_consultation(self, call_id: str, action: str) -> None: ...

    async def destinations(self) -> list[dict[str, Any]]: ...

    async def consultation(self, call_id: str) -> dict[str, str] | None: ...

    async def seat_of_call(self, call_id: str) -> str | None: ...

    async def handoff(self, token: str) -> Handoff | None: ...

    async def platforms(self) -> list[dict[str, Any]]: ...


NETWORK_KEY: web.AppKey[NetworkBackend] = web.AppKey("network")


async def _own_call(request: web.Request) -> tuple[str, str] | web.Response:
    """(call id, seat) of a call the requester may act on, or the error to send."""
    call_id = request.match_info["call_id"]
    seat = await request.app[NETWORK_KEY].seat_of_call(call_id)
    if seat is None:
        return error_response(404, "no call in progress with that id")
    if not request[PRINCIPAL_KEY].may_act_as_seat(seat):
        return error_response(403, "a seat may transfer only its own caller; supervisors any")
    return call_id, seat


@describe(
    "transfer the seat's caller (with the case) to a destination; 202: dialling",
    response=TransferAnswer,
    status=202,
    body=TransferBody,
    errors={
        404: "no call in progress with that id",
        409: "the transfer is refused",
        503: "the hand-off could not be stored",
    },
)
@requires("seat")
async def transfer_call(request: web.Request) -> web.Response:
    backend = request.app[NETWORK_KEY]
    body = await json_body(request)
    to, mode = body.get("to"), body.get("mode", "blind")
    if not isinstance(to, str) or mode not in tuple(TransferMode):
        modes = " | ".join(TransferMode)
        return error_response(400, f'send {{"to": "<destination>", "mode": "{modes}", "note": "…"}}')
    own = await _own_call(request)
    if isinstance(own, web.Response):
        return own
    call_id, seat = own
    try:
        started = await backend.transfer_call(
            call_id, to, seat, str(body.get("note", ""))[:500], TransferMode(str(mode))
        )
    except TransferRefused as exc:
        return error_response(409, str(exc))
    except RedisError as exc:
        return error_response(503, f"the hand-off could not be stored: Redis: {exc}")
    log.info("api.transfer", who=request[PRINCIPAL_KEY].name, call_id=call_id, to=started.destination, mode=mode)
    return web.json_response(
        {
            "call_id": call_id,
            "to": started.destination,
            "mode": str(started.mode),
            "handoff": handoff_view(started.handoff) if started.handoff else None,
        },
        status=202,  # the transfer is dialling; the call record says how it ended
    )


@describe(
    "end an attended transfer: action is complete, cancel or three_way; 202: under way",
    response=ConsultAnswer,
    status=202,
    errors={404: "no such action or call", 409: "refused", 503: "Asterisk did not take it"},
)
@requires("seat")
async def finish_consultation(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    if action not in CONSULT_ACTIONS:
        return error_response(404, f"no such action: {', '.join(CONSULT_ACTIONS)}")
    own = await _own_call(request)
    if isinstance(own, web.Response):
        return own
    call_id, _ = own
    try:
        await request.app[NETWORK_KEY].finish_consultation(call_id, action)
    except ConsultRefused as exc:
        return error_response(409, str(exc))
    except AmiError as exc:
        return error_response(503, f"Asterisk did not take it: {exc}")
    log.info("api.consultation", who=request[PRINCIPAL_KEY].name, call_id=call_id, action=action)
    return web.json_response({"call_id": call_id, "action": action}, status=202)


@describe(
    'the call\'s attended transfer in progress; state "none" when there is none',
    response=Consultation,
    errors={404: "no call in progress with that id"},
)
@requires("seat")
async def get_consultation(request: web.Request) -> web.Response:
    own = await _own_call(request)
    if isinstance(own, web.Response):
        return own
    found = await request.app[NETWORK_KEY].consultation(own[0])
    # no consultation is an answer, not an error: a desk asking during a call is not refused
    return web.json_response(found if found is not None else {"call_id": own[0], "state": "none"})


@describe("where a seat may transfer a caller", response=DestinationList)
@requires("seat")
async def list_destinations(request: web.Request) -> web.Response:
    return web.json_response({"destinations": await request.app[NETWORK_KEY].destinations()})


@describe(
    "a hand-off (the case a transfer carried) by its token",
    response=Handoff,
    errors={404: "no such hand-off", 503: "hand-offs are unavailable (Redis)"},
)
@requires("seat")
async def get_handoff(request: web.Request) -> web.Response:
    try:
        handoff = await request.app[NETWORK_KEY].handoff(request.match_info["token"])
    except RedisError as exc:
        return error_response(503, f"hand-offs are unavailable: Redis: {exc}")
    if handoff is None:
        return error_response(404, "no such hand-off")
    # the sending platform's and the receiving platform's seats (and the province) only: the
    # token is a secret, but a seat elsewhere in the province has no business with this caller
    scope = request[SCOPE_KEY]
    parties = {handoff.from_platform, handoff.picked_up_platform, handoff.to} - {""}
    if not any(scope.may_view(platform) for platform in parties):
        return other_platform(scope, handoff.from_platform, "see", "hand-offs")
    return web.json_response(handoff_view(handoff))


@describe(
    "every platform's figures (the province-wide view)",
    response=PlatformList,
    errors={503: "the province-wide view is unavailable (Redis)"},
)
@requires("supervisor")
async def list_platforms(request: web.Request) -> web.Response:
    try:
        found = await request.app[NETWORK_KEY].platforms()
    except RedisError as exc:
        return error_response(503, f"the province-wide view is unavailable: Redis: {exc}")
    return web.json_response({"platforms": found})


def add_network_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/calls/{call_id}/transfer", transfer_call)
    app.router.add_get("/api/v1/calls/{call_id}/transfer", get_consultation)
    app.router.add_post("/api/v1/calls/{call_id}/transfer/{action}", finish_consultation)
    app.router.add_get("/api/v1/destinations", list_destinations)
    app.router.add_get("/api/v1/handoffs/{token}", get_handoff)
    app.router.add_get("/api/v1/platforms", list_platforms)
