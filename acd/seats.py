"""Seats: their state (acd/seat.py), persisted in Redis, published as events.

Two kinds of change arrive here: a person's (login, logout, pause, ready — from the API or the
softphone's feature codes) and the ACD engine's (offered, answered, missed, call ended, wrap-up
over). Every change is saved to Redis and published on the event bus; listeners (the engine)
hear about it so a seat that becomes ready is offered a caller at once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import fields, replace
from datetime import datetime

import redis.asyncio as aioredis
import structlog

from acd.codes import CodeCheck, builtin_disposition, builtin_pause_reason, checked
from acd.config import SeatConfig
from acd.events import EventBus
from acd.seat import IllegalSeatTransition, Seat, SeatState, missed_offer, transition
from calls.redis_budget import RedisBudget
from common.clock import Clock

log = structlog.get_logger(__name__)

# (platform, call id, code) → why that disposition may not be given for that call ("": it may),
# e.g. a code that needs the call's case before there is one; the app shell supplies it
DispositionGuard = Callable[[str, str, str], Awaitable[str]]


def seats_key(platform: str) -> str:
    """Hash: seat id → JSON, one per platform (seat ids repeat across platforms)."""
    return f"hotline:seats:{platform}"


SeatListener = Callable[[Seat], Awaitable[None]]
DispositionListener = Callable[[Seat, str, str], Awaitable[None]]  # (seat, record id, code)
OVERDUE_REASON = "no disposition"  # the pause of a seat whose wrap-up ran past acd.max_wrapup_s
# the states in which a seat staffs its queues
AT_WORK = frozenset({SeatState.READY, SeatState.RINGING, SeatState.ON_CALL, SeatState.WRAP_UP})


class UnknownSeat(KeyError):
    """No seat with that id is configured."""


class DispositionDue(IllegalSeatTransition):
    """The seat must give its last call's disposition before it may take the next."""


class SeatService:
    """The seats of this platform and every change of their state."""

    def __init__(
        self,
        seats: tuple[SeatConfig, ...],
        client: aioredis.Redis,
        *,
        events: EventBus,
        clock: Clock,
        platform: str,
        max_missed: int = 2,
        budget: RedisBudget | None = None,
        dispositions: CodeCheck = builtin_disposition,
        pause_reasons: CodeCheck = builtin_pause_reason,
        disposition_guard: DispositionGuard | None = None,
    ) -> None:
        self.config = {seat.id: seat for seat in seats}
        self.platform = platform
        self._dispositions = dispositions
        self._pause_reasons = pause_reasons
        self._disposition_guard = disposition_guard
        self._disposition_listeners: list[DispositionListener] = []
        self._budget = budget or RedisBudget()
        self._max_missed = max_missed
        self._ready: set[str] = set()  # the seats in state ready, kept on every change
        # per queue, kept on every change: how many seats are logged in, how many at work
        self._queues_of = {seat.id: frozenset(seat.queues) for seat in seats}
        self._serving: Counter[str] = Counter()
        self._staffing: Counter[str] = Counter()
        self._seats: dict[str, Seat] = {}
        for config in seats:
            self._keep(Seat(config.id))
        self._redis = client
        self._events = events
        self._clock = clock
        self._listeners: list[SeatListener] = []
        self._key = seats_key(platform)

    def on_change(self, listener: SeatListener) -> None:
        self._listeners.append(listener)

    def on_disposition(self, listener: DispositionListener) -> None:
        self._disposition_listeners.append(listener)

    def all(self) -> list[Seat]:
        return [self._seats[seat_id] for seat_id in sorted(self._seats)]

    def ready_ids(self) -> frozenset[str]:
        """The seats ready now (the engine's idle seats come from these, not from every seat)."""
        return frozenset(self._ready)

    def serving(self, queue: str) -> int:
        """How many seats of ``queue`` are logged in (the expected wait divides by it)."""
        return self._serving[queue]

    def staffed(self, queue: str) -> bool:
        """Whether a seat of ``queue`` is at work: ready, ringing, talking or in wrap-up."""
        return self._staffing[queue] > 0

    def serving_by_scan(self, queue: str) -> int:
        """The reference for ``serving``: every seat looked at."""
        return sum(1 for seat in self.all() if seat.logged_in and queue in self._queues_of[seat.seat_id])

    def staffed_by_scan(self, queue: str) -> bool:
        """The reference for ``staffed``: every seat looked at."""
        return any(seat.state in AT_WORK and queue in self._queues_of[seat.seat_id] for seat in self.all())

    def _keep(self, seat: Seat) -> None:
        previous = self._seats.get(seat.seat_id)
        self._seats[seat.seat_id] = seat
        if seat.state is SeatState.READY:
            self._ready.add(seat.seat_id)
        else:
            self._ready.discard(seat.seat_id)
        for counter, now, before in (
            (self._serving, seat.logged_in, previous is not None and previous.logged_in),
            (self._staffing, seat.state in AT_WORK, previous is not None and previous.state in AT_WORK),
        ):
            if now != before:
                for queue in self._queues_of[seat.seat_id]:
                    counter[queue] += 1 if now else -1

    def get(self, seat_id: str) -> Seat:
        try:
            return self._seats[seat_id]
        except KeyError:
            raise UnknownSeat(seat_id) from None

    async def load(self) -> None:
        """Adopt the states a previous controller saved."""
        raw = await self._redis.hgetall(self._key)
        for key, value in raw.items():
            seat_id = key.decode() if isinstance(key, bytes) else str(key)
            if seat_id not in self._seats:
                continue
            data = json.loads(value)
            since = datetime.fromisoformat(data["since"]) if data.get("since") else None
            self._keep(Seat(
                seat_id=seat_id,
                state=SeatState(data["state"]),
                reason=data.get("reason", ""),
                since=since,
                missed_in_a_row=int(data.get("missed_in_a_row", 0)),
                calls_taken=int(data.get("calls_taken", 0)),
                last_call=str(data.get("last_call", "")),
                disposition_due=bool(data.get("disposition_due", False)),
                pause_totals=tuple((str(r), float(t)) for r, t in data.get("pause_totals", ())),
            ))  # fmt: skip

    async def _set(self, seat: Seat, cause: str) -> Seat:
        previous = self._seats[seat.seat_id]
        self._keep(seat)
        text = json.dumps(_saved(seat))
        # in the background (a seat's phone or the ACD never waits on Redis); only the last counts
        self._budget.write_staged(
            f"seat {seat.seat_id}",
            self._redis,
            lambda pipe: pipe.hset(self._key, seat.seat_id, text),
            key=f"{self._key}/{seat.seat_id}",
        )
        if previous.state is not seat.state or previous.reason != seat.reason:
            await self._events.publish(
                "seat.state", self._clock(), seat=seat.seat_id, old=previous.state.value, new=seat.state.value,
                reason=seat.reason, cause=cause,
            )  # fmt: skip
            for listener in self._listeners:
                await listener(seat)
        return seat

    async def _move(self, seat_id: str, target: SeatState, cause: str, reason: str = "") -> Seat:
        seat = self.get(seat_id)
        return await self._set(transition(seat, target, self._clock(), reason), cause)

    # a person's changes (API, feature codes); IllegalSeatTransition says what is not allowed

    async def login(self, seat_id: str, ready: bool = True) -> Seat:
        target = SeatState.READY if ready else SeatState.NOT_READY
        return await self._move(seat_id, target, "login", "" if ready else "logged in")

    async def logout(self, seat_id: str) -> Seat:
        return await self._move(seat_id, SeatState.LOGGED_OUT, "logout")

    async def pause(self, seat_id: str, reason: str) -> Seat:
        return await self._move(seat_id, SeatState.NOT_READY, "pause", reason)

    async def pause_for(self, seat_id: str, code: object) -> Seat:
        """A pause with a reason code the platform has (UnknownCode otherwise)."""
        self.get(seat_id)
        return await self.pause(seat_id, checked("pause reason", self._pause_reasons, self.platform, code))

    async def ready(self, seat_id: str) -> Seat:
        seat = replace(self.get(seat_id), missed_in_a_row=0)
        if seat.disposition_due:
            raise DispositionDue(f"seat {seat_id}: give the disposition of call {seat.last_call} first")
        return await self._set(transition(seat, SeatState.READY, self._clock()), "ready")

    async def dispose(self, seat_id: str, code: object) -> Seat:
        """The disposition (wrap-up code) of the seat's last call: it goes on the call's record
        (the listeners), and a seat in wrap-up — or paused for want of it — is ready again."""
        seat = self.get(seat_id)
        code = checked("disposition", self._dispositions, self.platform, code)
        if not seat.last_call:
            raise IllegalSeatTransition(f"seat {seat_id} has had no call to give a disposition for")
        if self._disposition_guard is not None:
            refusal = await self._disposition_guard(self.platform, seat.last_call, code)
            if refusal:
                raise IllegalSeatTransition(refusal)
        seat = replace(seat, disposition_due=False)
        if seat.state is SeatState.WRAP_UP or (seat.state is SeatState.NOT_READY and seat.reason == OVERDUE_REASON):
            seat = transition(seat, SeatState.READY, self._clock())
        log.info("seat.disposition", seat=seat_id, call_id=seat.last_call, code=code)
        seat = await self._set(seat, "disposition")
        for listener in self._disposition_listeners:
            await listener(seat, seat.last_call, code)
        return seat

    def work_view(self, seat: Seat) -> dict[str, object]:
        """What the seat view adds: wrap-up time so far, pause time by reason (this shift), and
        whether a disposition is due."""
        now = self._clock()
        in_state_s = round(max((now - seat.since).total_seconds(), 0.0), 1) if seat.since else 0.0
        paused = seat.paused_s(now)
        return {
            "wrap_up_s": in_state_s if seat.state is SeatState.WRAP_UP else None,
            "paused_s": in_state_s if seat.state is SeatState.NOT_READY else None,
            "pause_s_by_reason": paused,
            "disposition_due": seat.disposition_due,
            "last_call": seat.last_call,
        }

    # the engine's changes

    async def offered(self, seat_id: str) -> Seat:
        return await self._move(seat_id, SeatState.RINGING, "offer")

    async def answered(self, seat_id: str) -> Seat:
        seat = self.get(seat_id)
        if seat.state is SeatState.ON_CALL:
            return seat
        return await self._move(seat_id, SeatState.ON_CALL, "answer")

    async def missed(self, seat_id: str, cause: str) -> Seat:
        """The phone rang and nobody took it (no answer, rejected, unreachable)."""
        seat = self.get(seat_id)
        if seat.state is not SeatState.RINGING:
            return seat
        back = transition(seat, SeatState.READY, self._clock())
        return await self._set(missed_offer(back, self._clock(), self._max_missed), cause)

    async def released(self, seat_id: str, cause: str) -> Seat:
        """An offer ended through no fault of the seat (the caller left, nobody to bind)."""
        seat = self.get(seat_id)
        if seat.state not in (SeatState.RINGING, SeatState.ON_CALL):
            return seat
        return await self._move(seat_id, SeatState.READY, cause)

    async def call_ended(self, seat_id: str, wrap_up: bool, call_id: str = "", disposition_due: bool = False) -> Seat:
        """The seat's call (record ``call_id``) ended: wrap-up, or ready at once; with
        ``disposition_due`` wrap-up lasts until the disposition is given (``dispose``)."""
        seat = self.get(seat_id)
        if seat.state is not SeatState.ON_CALL:
            return seat
        seat = replace(seat, last_call=call_id or seat.last_call, disposition_due=disposition_due and bool(call_id))
        target = SeatState.WRAP_UP if wrap_up or seat.disposition_due else SeatState.READY
        return await self._set(transition(seat, target, self._clock()), "call ended")

    async def wrap_up_over(self, seat_id: str) -> Seat:
        seat = self.get(seat_id)
        if seat.state is not SeatState.WRAP_UP:
            return seat  # paused or logged out during wrap-up: that choice stands
        if seat.disposition_due:  # past acd.max_wrapup_s without one: not offered calls until given
            return await self._move(seat_id, SeatState.NOT_READY, "wrap-up overdue", OVERDUE_REASON)
        return await self._move(seat_id, SeatState.READY, "wrap-up over")

    async def settle(self, busy_seats: set[str]) -> None:
        """After a restart: a seat saved as ringing, on call or in wrap-up whose phone has no
        call now is ready again (its offer or call ended while the controller was away)."""
        for seat in self.all():
            transient = seat.state in (SeatState.RINGING, SeatState.ON_CALL, SeatState.WRAP_UP)
            if seat.state is SeatState.WRAP_UP and seat.disposition_due:
                continue  # still owes its disposition: wrap-up goes on (the engine times it again)
            if transient and seat.seat_id not in busy_seats:
                try:
                    await self._move(seat.seat_id, SeatState.READY, "resync")
                except IllegalSeatTransition as exc:
                    log.warning("seats.settle_failed", error=str(exc))


def _saved(seat: Seat) -> dict[str, object]:
    """What Redis keeps of a seat (``load`` reads it back): its fields, shallow — the same JSON
    as ``dataclasses.asdict`` gives, without its deep copy of every field on every change."""
    data: dict[str, object] = {field.name: getattr(seat, field.name) for field in fields(seat)}
    data["state"] = seat.state.value
    data["since"] = seat.since.isoformat() if seat.since else None
    return data
