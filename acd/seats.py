"""Seats: their state (acd/seat.py), persisted in Redis, mirrored into app_queue over AMI.

Until our own ACD replaces app_queue, a seat that is logged in is a dynamic member of the
app_queue queues of its configuration; not ready = paused there. app_queue's events move the
state (ringing, on call, back to ready); after ``max_missed`` ring-no-answers in a row the seat
is paused as "not ready: no answer". After every AMI (re)connect the membership is applied
again, so an Asterisk restart does not silently log seats out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import datetime

import redis.asyncio as aioredis
import structlog

from acd.events import EventBus
from acd.seat import IllegalSeatTransition, Seat, SeatState, missed_offer, transition
from hotline.clock import Clock
from hotline.config import SeatConfig
from telephony.ami_types import AmiActionFailed, AmiLink, AmiMessage
from telephony.asterisk_conf import queue_name

log = structlog.get_logger(__name__)

_KEY = "hotline:seats"  # hash: seat id → JSON


def _interface(seat_id: str) -> str:
    return f"PJSIP/{seat_id}"


class UnknownSeat(KeyError):
    """No seat with that id is configured."""


class SeatService:
    """Login, logout, pause, ready — from the API — and state from app_queue's events."""

    def __init__(
        self,
        seats: tuple[SeatConfig, ...],
        ami: AmiLink,
        client: aioredis.Redis,
        *,
        events: EventBus,
        clock: Clock,
        max_missed: int = 2,
    ) -> None:
        self._config = {seat.id: seat for seat in seats}
        self._max_missed = max_missed
        self._seats = {seat.id: Seat(seat.id) for seat in seats}
        self._ami = ami
        self._redis = client
        self._events = events
        self._clock = clock
        ami.on_event("AgentCalled", self._on_called)
        ami.on_event("AgentConnect", self._on_connect)
        ami.on_event("AgentComplete", self._on_complete)
        ami.on_event("AgentRingNoAnswer", self._on_ring_no_answer)
        ami.on_event("QueueMemberPause", self._on_pause)
        ami.on_connected(self.resync)

    def all(self) -> list[Seat]:
        return [self._seats[seat_id] for seat_id in sorted(self._seats)]

    def get(self, seat_id: str) -> Seat:
        try:
            return self._seats[seat_id]
        except KeyError:
            raise UnknownSeat(seat_id) from None

    async def load(self) -> None:
        """Adopt the states a previous controller saved."""
        raw = await self._redis.hgetall(_KEY)
        for key, value in raw.items():
            seat_id = key.decode() if isinstance(key, bytes) else str(key)
            if seat_id not in self._seats:
                continue
            data = json.loads(value)
            since = datetime.fromisoformat(data["since"]) if data.get("since") else None
            self._seats[seat_id] = Seat(
                seat_id=seat_id,
                state=SeatState(data["state"]),
                reason=data.get("reason", ""),
                since=since,
                missed_in_a_row=int(data.get("missed_in_a_row", 0)),
                calls_taken=int(data.get("calls_taken", 0)),
            )

    async def _set(self, seat: Seat, cause: str) -> Seat:
        previous = self._seats[seat.seat_id]
        self._seats[seat.seat_id] = seat
        data = {**asdict(seat), "state": seat.state.value, "since": seat.since.isoformat() if seat.since else None}
        try:
            await self._redis.hset(_KEY, seat.seat_id, json.dumps(data))
        except Exception as exc:
            log.warning("seats.save_failed", seat=seat.seat_id, error=str(exc) or type(exc).__name__)
        if previous.state is not seat.state or previous.reason != seat.reason:
            await self._events.publish(
                "seat.state", self._clock(), seat=seat.seat_id, old=previous.state.value, new=seat.state.value,
                reason=seat.reason, cause=cause,
            )  # fmt: skip
        return seat

    async def _member_action(self, action: str, seat_id: str, **fields: str) -> None:
        for queue in self._config[seat_id].queues:
            try:
                await self._ami.send_action(
                    {"Action": action, "Queue": queue_name(queue), "Interface": _interface(seat_id), **fields}
                )
            except AmiActionFailed as exc:
                # QueueAdd of a member already there, QueueRemove of one already gone: the goal holds
                log.info("seats.queue_action_noop", action=action, seat=seat_id, queue=queue, detail=str(exc))

    async def login(self, seat_id: str, ready: bool = True) -> Seat:
        seat = self.get(seat_id)
        target = SeatState.READY if ready else SeatState.NOT_READY
        await self._member_action("QueueAdd", seat_id, MemberName=seat_id, Paused="false" if ready else "true")
        return await self._set(transition(seat, target, self._clock(), "" if ready else "logged in"), "login")

    async def logout(self, seat_id: str) -> Seat:
        seat = self.get(seat_id)
        await self._member_action("QueueRemove", seat_id)
        return await self._set(transition(seat, SeatState.LOGGED_OUT, self._clock()), "logout")

    async def pause(self, seat_id: str, reason: str) -> Seat:
        seat = self.get(seat_id)
        await self._member_action("QueuePause", seat_id, Paused="true", Reason=reason)
        return await self._set(transition(seat, SeatState.NOT_READY, self._clock(), reason), "pause")

    async def ready(self, seat_id: str) -> Seat:
        seat = self.get(seat_id)
        await self._member_action("QueuePause", seat_id, Paused="false")
        return await self._set(transition(replace(seat, missed_in_a_row=0), SeatState.READY, self._clock()), "ready")

    async def resync(self) -> None:
        """After a (re)connect: every logged-in seat is a member again, paused as it should be."""
        for seat in self.all():
            if seat.logged_in:
                paused = "false" if seat.state is not SeatState.NOT_READY else "true"
                await self._member_action("QueueAdd", seat.seat_id, MemberName=seat.seat_id, Paused=paused)

    def _seat_of(self, event: AmiMessage) -> Seat | None:
        interface = event.get("interface") or event.get("membername")
        seat_id = interface.removeprefix("PJSIP/")
        return self._seats.get(seat_id)

    async def _apply(self, event: AmiMessage, new_state: SeatState, reason: str = "") -> None:
        seat = self._seat_of(event)
        if seat is None or seat.state is new_state:
            return
        try:
            await self._set(transition(seat, new_state, self._clock(), reason), event.name)
        except IllegalSeatTransition as exc:
            log.warning("seats.unexpected_event", event_name=event.name, error=str(exc))

    async def _on_called(self, event: AmiMessage) -> None:
        await self._apply(event, SeatState.RINGING)

    async def _on_connect(self, event: AmiMessage) -> None:
        await self._apply(event, SeatState.ON_CALL)

    async def _on_complete(self, event: AmiMessage) -> None:
        await self._apply(event, SeatState.READY)

    async def _on_ring_no_answer(self, event: AmiMessage) -> None:
        seat = self._seat_of(event)
        if seat is None or seat.state is not SeatState.RINGING:
            return
        back = transition(seat, SeatState.READY, self._clock())
        after = missed_offer(back, self._clock(), self._max_missed)
        if after.state is SeatState.NOT_READY:
            # stop offering callers to a seat nobody is at; it comes back with "ready"
            await self._member_action("QueuePause", seat.seat_id, Paused="true", Reason=after.reason)
        await self._set(after, event.name)

    async def _on_pause(self, event: AmiMessage) -> None:
        seat = self._seat_of(event)
        if seat is None or event.get("paused") != "1" or seat.state is SeatState.NOT_READY:
            return
        reason = event.get("pausedreason") or "paused"
        try:
            await self._set(transition(seat, SeatState.NOT_READY, self._clock(), reason), event.name)
        except IllegalSeatTransition as exc:
            log.warning("seats.unexpected_event", event_name=event.name, error=str(exc))
