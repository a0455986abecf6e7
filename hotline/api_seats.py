"""The HTTP API's seats (states, a seat's own changes), queues and the live event socket."""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from aiohttp import web

from acd.codes import UnknownCode
from acd.events import EventBus
from acd.seat import IllegalSeatTransition, Seat
from acd.seats import SeatService, UnknownSeat
from acd.stats import QueueStats, SeatStats, satisfaction_rate
from calls.store import StoreUnavailable
from hotline.api_schemas import QueueList, SeatChangeBody, SeatList, SeatView
from telephony.ami_types import AmiError
from web.api_common import PRINCIPAL_KEY, error_response, json_body, requires
from web.openapi import describe
from web.socket_auth import open_header_socket
from web.socket_pump import pump

log = structlog.get_logger(__name__)


class SeatsBackend(Protocol):
    """What these routes read from (and change in) the running controller."""

    async def queue_stats(self) -> list[QueueStats]: ...

    async def seat_figures(self) -> list[tuple[Seat, SeatStats]]: ...

    async def current_calls(self) -> dict[str, dict[str, Any]]: ...

    @property
    def seats(self) -> SeatService: ...

    @property
    def events(self) -> EventBus: ...


SEATS_KEY: web.AppKey[SeatsBackend] = web.AppKey("seats_backend")


def _rate(value: float | None) -> float | None:
    """A share rounded for the API; null (None) when there is nothing to score: no score, not 100 %."""
    return None if value is None else round(value, 4)


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
        view.update(surveys_24h=stats.surveyed, satisfaction_rate_24h=_rate(stats.satisfaction_rate))
    return view


@describe("every seat: state, 24 h figures, wrap-up and pauses, its call now", response=SeatList)
@requires("seat")
async def list_seats(request: web.Request) -> web.Response:
    backend = request.app[SEATS_KEY]
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


@describe(
    "a seat's change: action is login, logout, pause, ready or disposition",
    response=SeatView,
    body=SeatChangeBody,
    description="pause takes reason, disposition code; the others no body. A seat token changes only its own seat.",
    errors={
        404: "no such seat or action",
        409: "the seat's state does not allow it",
        503: "Asterisk did not take the change",
    },
)
@requires("seat")
async def change_seat(request: web.Request) -> web.Response:  # noqa: PLR0911 - one answer per failure
    seat_id, action = request.match_info["seat_id"], request.match_info["action"]
    principal = request[PRINCIPAL_KEY]
    if action not in _SEAT_ACTIONS:
        return error_response(404, f"unknown action {action!r} (expected one of: {', '.join(_SEAT_ACTIONS)})")
    if not principal.may_act_as_seat(seat_id):
        return error_response(403, "a seat may change only its own state; supervisors may change any")
    service = request.app[SEATS_KEY].seats
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


@describe(
    "live events of the platform (seat states, calls) over a websocket",
    websocket=True,
    errors={429: "this token has http.max_sockets_per_token sockets open already"},
)
@requires("supervisor")
async def events_socket(request: web.Request) -> web.StreamResponse:
    # among the sockets a stopping controller closes, and the token's capped ones
    socket = await open_header_socket(request, request[PRINCIPAL_KEY])
    if not isinstance(socket, web.WebSocketResponse):
        return socket  # 429: the token has its fill of open sockets
    bus = request.app[SEATS_KEY].events
    queue = bus.subscribe()
    try:
        await pump(socket, queue)
    finally:
        bus.unsubscribe(queue)
    return socket


@describe(
    "per queue: waiting now, 24 h offered / answered / abandoned, service level, 满意率",
    response=QueueList,
    errors={503: "the call records store (Redis) is away"},
)
@requires("supervisor")
async def list_queues(request: web.Request) -> web.Response:
    try:
        stats = await request.app[SEATS_KEY].queue_stats()
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    surveyed, satisfied = sum(q.surveyed for q in stats), sum(q.satisfied for q in stats)
    return web.json_response(
        {
            "window_hours": 24,
            # the platform's 满意率: every queue's answered surveys together (a call is in one queue)
            "surveys": surveyed,
            "satisfaction_rate": _rate(satisfaction_rate(surveyed, satisfied)),
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
                    "answer_rate": _rate(q.answer_rate),
                    "abandon_rate": _rate(q.abandon_rate),
                    "service_level_15s": _rate(q.service_level),
                    "average_speed_of_answer_s": round(q.average_speed_of_answer_s, 1),
                    "average_talk_s": round(q.average_talk_s, 1),
                    "surveys": q.surveyed,
                    "satisfaction_rate": _rate(q.satisfaction_rate),
                }
                for q in stats
            ],
        }
    )


def add_seat_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/seats", list_seats)
    app.router.add_get("/api/v1/queues", list_queues)
    app.router.add_post("/api/v1/seats/{seat_id}/{action}", change_seat)
    app.router.add_get("/api/v1/events", events_socket)
