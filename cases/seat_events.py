"""Each seat's own events, for its desk's websocket (the screen pop): a fan-out per seat fed by
the supervisors' event bus, so no seat is sent another seat's events.

What a seat is sent (``type``):

- ``call.offered``: its phone rings for a call — call id, queue, tags, the number masked
  (``caller``) and whole (``caller_number``; the seat's phone shows it too), the caller's
  history (earlier calls in 90 days, open cases), computed when the phone rings.
- ``call.answered``: it took a call (late binding may give it another caller than the one it
  was rung for: then the event carries that call's pop as well).
- ``call.ended``: the call it talked on ended; ``seat.state``: its state changed (ringing,
  on_call, wrap_up, ready …); ``offer.missed``: it let the phone ring out.
- ``case.registered`` / ``case.linked``: a case was saved for its call.
- ``callback.offered`` / ``callback.ended``: its phone rings to call a missed caller back
  (dialback/: 回拨 clicked, or a blended offer), and how that call ended.
- ``transfer.state``: a transfer of its call changed (ivr/transfer_events.py): started, ringing,
  talking, three_way, completed, back_to_caller, failed, ended — whoever started it (the seat, a
  supervisor through the API); the caller's number masked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

QUEUE_DEPTH = 200
REMEMBERED_OFFERS = 5
POP_TIMEOUT_S = 3.0
Event = dict[str, Any]


class EventSource(Protocol):
    """The controller's event bus (acd/events.py ``EventBus``)."""

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]: ...

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None: ...


class PopSource(Protocol):
    """What the screen shows for a call (cases/service.py ``CaseService.pop``)."""

    async def pop(self, call_id: str) -> dict[str, Any] | None: ...


_RENAMED = {"acd.offered": "call.offered", "acd.connected": "call.answered", "acd.offer_missed": "offer.missed"}
_FORWARDED = {"seat.state", "case.registered", "case.linked", "callback.offered", "callback.ended", "transfer.state"}


class SeatEventHub:
    """Routes bus events that name a seat to that seat's subscribers only. ``run()`` is a task of
    the controller; a slow desk loses its oldest events, never stalls the others."""

    def __init__(self, source: EventSource, pops: PopSource) -> None:
        self._source = source
        self._pops = pops
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = {}
        self._offered: dict[str, deque[str]] = {}  # seat → the calls it was rung for, latest last
        self._talking: dict[str, str] = {}  # seat → the call it answered
        # seat → its events waiting behind a pop (event, call id to pop or None), drained in
        # order by one task per seat: a pop that waits on Redis holds up that seat's events only
        self._lanes: dict[str, deque[tuple[Event, str | None]]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}

    def subscribe(self, seat_id: str) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_DEPTH)
        self._subscribers.setdefault(seat_id, set()).add(queue)
        return queue

    def unsubscribe(self, seat_id: str, queue: asyncio.Queue[Event]) -> None:
        queues = self._subscribers.get(seat_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[seat_id]

    def subscribers(self, seat_id: str) -> int:
        return len(self._subscribers.get(seat_id, ()))

    def was_offered(self, seat_id: str, call_id: str) -> bool:
        """Whether ``seat_id``'s phone rang for (or answered) ``call_id`` lately."""
        return call_id in self._offered.get(seat_id, ()) or self._talking.get(seat_id) == call_id

    async def run(self) -> None:
        queue = self._source.subscribe()
        try:
            while True:
                event = await queue.get()
                try:
                    await self.route(event)
                except Exception:  # one bad event must not end every seat's pops
                    log.exception("seat_events.route_failed", type=event.get("type"))
        finally:
            self._source.unsubscribe(queue)
            drains = list(self._drains.values())
            for task in drains:
                task.cancel()
            await asyncio.gather(*drains, return_exceptions=True)

    async def route(self, event: Event) -> None:
        """Send one bus event to the seat it names (if any) in the seat's terms. It never waits
        on a pop (the caller's history, read from Redis): that seat's events wait for it in
        their lane, every other seat's go on."""
        seat, kind, call_id = event.get("seat"), str(event.get("type", "")), event.get("call_id")
        if not isinstance(seat, str) or not seat:
            return
        out: Event | None = None
        pop_for: str | None = None
        if kind == "acd.offered" and isinstance(call_id, str):
            self._offered.setdefault(seat, deque(maxlen=REMEMBERED_OFFERS)).append(call_id)
            if self.subscribers(seat):
                out, pop_for = {**event, "type": "call.offered"}, call_id
        elif kind == "acd.connected" and isinstance(call_id, str):
            rung_for = self._offered.get(seat)
            self._talking[seat] = call_id
            out = {**event, "type": "call.answered"}
            if self.subscribers(seat) and (not rung_for or rung_for[-1] != call_id):
                pop_for = call_id  # bound to another caller than the one rung for
        elif kind == "seat.state":
            out = event
            if event.get("cause") == "call ended":
                call = self._talking.pop(seat, "")
                self._send(seat, {"type": "call.ended", "at": event.get("at"), "seat": seat, "call_id": call})
        elif kind in _RENAMED:
            out = {**event, "type": _RENAMED[kind]}
        elif kind in _FORWARDED:
            out = event
        if out is not None:
            self._send(seat, out, pop_for)

    def _send(self, seat: str, event: Event, pop_for: str | None = None) -> None:
        """Deliver ``event`` now, or (a pop to add, or earlier events of the seat still waiting
        for theirs) after the seat's earlier events, in the seat's lane."""
        lane = self._lanes.get(seat)
        if lane is None and pop_for is None:
            self._deliver(seat, event)
            return
        if lane is None:
            lane = self._lanes[seat] = deque(maxlen=QUEUE_DEPTH)  # a full lane drops its oldest
            self._drains[seat] = asyncio.create_task(self._drain(seat, lane))
        lane.append((event, pop_for))

    async def _drain(self, seat: str, lane: deque[tuple[Event, str | None]]) -> None:
        try:
            while lane:
                event, pop_for = lane.popleft()
                if pop_for is not None:
                    event = {**event, **await self._pop(pop_for)}
                self._deliver(seat, event)
        finally:  # no await between the empty lane and here: nothing is appended to a lane gone
            self._lanes.pop(seat, None)
            self._drains.pop(seat, None)

    async def _pop(self, call_id: str) -> Event:
        try:
            async with asyncio.timeout(POP_TIMEOUT_S):
                pop = await self._pops.pop(call_id)
        except TimeoutError:
            return {"history": None, "history_error": "the caller's history did not load in time"}
        except Exception as exc:  # Redis away: the phone still rings, the pop says why it is bare
            log.warning("seat_events.pop_failed", call_id=call_id, error=str(exc))
            return {"history": None, "history_error": str(exc) or type(exc).__name__}
        return pop or {}

    def _deliver(self, seat: str, event: Event) -> None:
        for queue in self._subscribers.get(seat, ()):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # drop the oldest: a stalled browser must not stall others
            queue.put_nowait(event)
