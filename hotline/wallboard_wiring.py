"""Wires the wallboard feature (wallboard/) into one controller: its floor (the ACD and the
seats), today's counters fed by every ended call, the websocket route, its push loop started
and stopped with the HTTP app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import redis.asyncio as aioredis
from aiohttp import web

from acd.engine import AcdEngine
from acd.events import EventBus
from acd.model import QueuedCall
from acd.seat import Seat
from acd.seats import SeatService
from calls.model import CallRecord
from calls.tracker import CallTracker
from common.aio import cancel_and_wait
from common.clock import Clock
from hotline.config import Config
from hotline.figures import Figures
from wallboard.routes import add_routes
from wallboard.service import Identity, Wallboard
from wallboard.store import RedisBoardStore


class _Floor:
    def __init__(self, figures: Figures, acd: AcdEngine, seats: SeatService) -> None:
        self._figures, self._acd, self._seats = figures, acd, seats

    def queue_names(self) -> list[str]:
        return self._figures.queue_names()

    def waiting(self, queue: str) -> list[QueuedCall]:
        return self._acd.waiting(queue)

    def seats(self) -> list[Seat]:
        return list(self._seats.all())


def attach_wallboard(
    api: web.Application,
    *,
    config: Config,
    figures: Figures,
    acd: AcdEngine,
    seats: SeatService,
    events: EventBus,
    tracker: CallTracker,
    redis: aioredis.Redis,
    recent_calls: Callable[[int], Awaitable[list[CallRecord]]],
    clock: Clock,
) -> Wallboard:
    board = Wallboard(
        identity=Identity(config.platform.id, config.platform.name, config.platform.province),
        config=config.wallboard,
        floor=_Floor(figures, acd, seats),
        events=events,
        store=RedisBoardStore(redis),
        recent_calls=recent_calls,
        clock=clock,
    )
    tracker.on_ended(board.call_ended)
    add_routes(api, board)

    async def running(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(board.run(), name="wallboard")
        yield
        await cancel_and_wait([task])

    api.cleanup_ctx.append(running)
    return board
