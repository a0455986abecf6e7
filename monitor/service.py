"""The monitors of one controller: start (ring the supervisor's phone), switch mode, stop, and
follow Asterisk's events. The seat's channel always comes from the ACD's own state (a
``SeatCalls``), never from a request.

Every change of a monitor is written to a ``MonitorStore`` (Redis) as well: a restarted
controller takes the monitors back when it reaches Asterisk, keeps those whose supervisor's
channel Asterisk still has, and ends (and audits) the others — none is lost from the audit, none
is shown running forever."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import structlog
from redis.exceptions import RedisError

from monitor.model import MONITOR_PREFIX, IllegalMonitorTransition, Mode, Monitor, MonitorState
from monitor.store import MonitorStore
from monitor.telephony import MonitorTelephony, UnsafeValue
from recordings.access import AuditEntry
from telephony.ami_types import AmiError, AmiLink, AmiMessage

log = structlog.get_logger(__name__)

KEEP_ENDED = 50  # ended monitors kept for GET /api/v1/monitors?ended=1
# a store write never holds Asterisk's events up for longer (they are handled one after another)
STORE_TIMEOUT_S = 1.0
GONE_AWAY = "gone while the controller was away (ended_at: when it was found gone)"


@dataclass(frozen=True)
class SeatCall:
    """A seat talking with a caller: the call, the seat, and the seat's channel."""

    call_id: str
    seat: str
    channel: str


class SeatCalls(Protocol):
    """The ACD's view of its seats' calls in progress (the app shell adapts acd/engine.py)."""

    def seat_call(self, call_id: str) -> SeatCall | None: ...

    def phone_busy(self, seat_id: str) -> bool:
        """The seat (a supervisor's phone) may be rung by the ACD or is on a call."""
        ...


class AuditSink(Protocol):
    async def audit(self, entry: AuditEntry) -> None: ...


class MonitorRefused(Exception):
    """The monitor cannot start or change (answered with ``status``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class MonitorSettings:
    phones: frozenset[str]  # the supervisors' phones (seat ids; config.yaml monitor.phones)
    ring_timeout_s: float
    platform: str


class MonitorService:
    def __init__(
        self,
        ami: AmiLink,
        seat_calls: SeatCalls,
        settings: MonitorSettings,
        audit: AuditSink,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        store: MonitorStore | None = None,
    ) -> None:
        self._asterisk = MonitorTelephony(ami, settings.ring_timeout_s)
        self._seat_calls = seat_calls
        self.phones = settings.phones
        self._platform = settings.platform
        self._audit = audit
        self._clock = clock
        self._monitors: dict[str, Monitor] = {}
        self._ended: list[Monitor] = []
        self._store = store
        self._writes = asyncio.Lock()  # the store's writes in the order of the changes
        self._restored = store is None
        self._ami = ami
        ami.on_event("Newchannel", self._on_new_channel)
        ami.on_event("OriginateResponse", self._on_originate_response)
        ami.on_event("Hangup", self._on_hangup)
        ami.on_connected(self.resync)

    def active(self) -> list[Monitor]:
        return sorted(self._monitors.values(), key=lambda m: m.started_at)

    def ended(self) -> list[Monitor]:
        return list(reversed(self._ended))

    def get(self, monitor_id: str) -> Monitor | None:
        return self._monitors.get(monitor_id)

    def now(self) -> datetime:
        return self._clock()

    async def start(self, call_id: str, mode: Mode, phone: str, who: str) -> Monitor:
        """Ring ``phone`` to join the seat's channel of ``call_id``; MonitorRefused says why not."""
        if phone not in self.phones:
            raise MonitorRefused(422, f"phone: {phone!r} is not a supervisor's phone (config.yaml monitor.phones)")
        seat_call = self._seat_calls.seat_call(call_id)
        if seat_call is None:
            raise MonitorRefused(409, "the call is not a seat's call in progress")
        if seat_call.seat == phone:
            raise MonitorRefused(422, "phone: the seat on the call cannot listen to itself")
        if any(m.phone == phone for m in self._monitors.values()):
            raise MonitorRefused(409, f"phone {phone} is already in a monitor")
        if self._seat_calls.phone_busy(phone):
            raise MonitorRefused(409, f"phone {phone} is on a call or may be rung for one (log its seat out)")
        monitor = Monitor(
            id=f"{MONITOR_PREFIX}{secrets.token_hex(8)}",
            call_id=call_id,
            seat=seat_call.seat,
            spied_channel=seat_call.channel,
            phone=phone,
            who=who,
            platform=self._platform,
            mode=mode,
            started_at=self._clock(),
            modes=(mode.value,),
        )
        self._monitors[monitor.id] = monitor
        try:
            await self._asterisk.ring(monitor.id, phone, seat_call.channel, seat_call.seat, mode)
        except (AmiError, UnsafeValue) as exc:
            self._monitors.pop(monitor.id, None)
            log.warning("monitor.not_started", monitor=monitor.id, call_id=call_id, error=str(exc))
            raise MonitorRefused(503, f"the supervisor's phone could not be rung: {exc}") from None
        if monitor.id in self._monitors:  # not if its Hangup came meanwhile: that stored its end
            await self._save(monitor)
        log.info("monitor.ringing", monitor=monitor.id, call_id=call_id, seat=seat_call.seat, phone=phone, who=who,
                 mode=mode.value)  # fmt: skip
        return monitor

    async def switch(self, monitor_id: str, mode: Mode) -> tuple[Monitor, Mode]:
        """The monitor in ``mode`` from now on; returns it and the mode it was in."""
        monitor = self._monitors.get(monitor_id)
        if monitor is None:
            raise MonitorRefused(404, "no such monitor (ended, or never started)")
        if monitor.state is not MonitorState.ACTIVE or not monitor.channel:
            raise MonitorRefused(409, "the supervisor's phone has not answered yet")
        old = monitor.mode
        if mode is not old:
            try:
                await self._asterisk.switch(monitor.channel, mode)
            except (AmiError, UnsafeValue) as exc:
                raise MonitorRefused(503, f"the mode was not changed: {exc}") from None
            if monitor_id not in self._monitors:  # it ended meanwhile: never back among the running
                raise MonitorRefused(404, "no such monitor (ended, or never started)")
            monitor = self._monitors[monitor_id] = _with(monitor, mode=mode, modes=(*monitor.modes, mode.value))
            await self._save(monitor)
        log.info("monitor.mode", monitor=monitor_id, call_id=monitor.call_id, old=old.value, new=mode.value)
        return monitor, old

    async def stop(self, monitor_id: str) -> Monitor:
        """Hang up the supervisor's phone; the monitor ends (and is audited) with its Hangup."""
        monitor = self._monitors.get(monitor_id)
        if monitor is None:
            raise MonitorRefused(404, "no such monitor (ended, or never started)")
        try:
            await self._asterisk.hang_up(monitor.channel or monitor.id)
        except AmiError as exc:  # already gone: its Hangup event ends it
            log.info("monitor.stop_noop", monitor=monitor_id, detail=str(exc))
        return await self._end(monitor_id, "stopped") or monitor

    async def _end(self, monitor_id: str, reason: str) -> Monitor | None:
        monitor = self._monitors.pop(monitor_id, None)
        if monitor is None:
            return None
        try:
            monitor = monitor.moved(MonitorState.ENDED, ended_at=self._clock(), end_reason=reason)
        except IllegalMonitorTransition:  # cannot happen: every live state may end
            return None
        self._ended = [*self._ended, monitor][-KEEP_ENDED:]
        if self._store is not None:
            try:
                async with self._writes, asyncio.timeout(STORE_TIMEOUT_S):
                    await self._store.ended(monitor, KEEP_ENDED)
            except (RedisError, OSError, TimeoutError) as exc:  # the audit below still records the end
                log.warning("monitor.not_saved", monitor=monitor.id, error=str(exc))
        duration = monitor.duration_s(self._clock())
        log.info("monitor.ended", monitor=monitor.id, call_id=monitor.call_id, who=monitor.who, seat=monitor.seat,
                 mode=monitor.mode.value, modes=monitor.modes, reason=reason, duration_s=duration)  # fmt: skip
        await self._audit.audit(
            AuditEntry(
                at=self._clock(),
                who=monitor.who,
                role="supervisor",
                action=f"monitor.end mode={monitor.mode.value} modes={'>'.join(monitor.modes)} "
                f"duration_s={duration:g} reason={reason}",
                call_id=monitor.call_id,
                result="ended",
                remote="",
                platform=self._platform,
            )
        )
        return monitor

    async def _save(self, monitor: Monitor) -> None:
        if self._store is None:
            return
        try:
            async with self._writes, asyncio.timeout(STORE_TIMEOUT_S):
                await self._store.save(monitor)
        except (RedisError, OSError, TimeoutError) as exc:  # the monitor goes on; a restart now would not know it
            log.warning("monitor.not_saved", monitor=monitor.id, error=str(exc))

    async def resync(self) -> None:
        """On each connection to Asterisk: take back the monitors stored by an earlier run
        (once), then end every monitor whose supervisor's channel Asterisk no longer has."""
        began = self._clock()
        if not self._restored:
            try:
                assert self._store is not None
                async with asyncio.timeout(STORE_TIMEOUT_S * 5):
                    live, ended = await self._store.load()
            except (RedisError, OSError, TimeoutError) as exc:  # tried again at the next connection
                log.warning("monitor.not_restored", error=str(exc))
            else:
                self._restored = True
                mine = [m for m in live if m.platform == self._platform and m.id not in self._monitors]
                self._monitors.update({m.id: m for m in mine})
                known = {m.id for m in self._ended}
                older = [m for m in reversed(ended) if m.platform == self._platform and m.id not in known]
                self._ended = [*older, *self._ended][-KEEP_ENDED:]
                if mine:
                    log.info("monitor.restored", monitors=[m.id for m in mine])
        if not self._monitors:
            return
        try:
            reply = await self._ami.send_action({"Action": "CoreShowChannels"})
        except AmiError as exc:
            log.warning("monitor.resync_failed", error=str(exc))
            return
        channels = {e.get("uniqueid") for e in reply.events if e.name == "CoreShowChannel"}
        for monitor in [m for m in self._monitors.values() if m.started_at < began]:
            if monitor.id not in channels:
                await self._end(monitor.id, GONE_AWAY)

    # Asterisk's events

    async def _on_new_channel(self, event: AmiMessage) -> None:
        monitor = self._monitors.get(event.get("uniqueid"))
        if monitor is not None and not monitor.channel:
            monitor = self._monitors[monitor.id] = _with(monitor, channel=event.get("channel"))
            await self._save(monitor)

    async def _on_originate_response(self, event: AmiMessage) -> None:
        monitor_id = event.get("uniqueid")
        monitor = self._monitors.get(monitor_id)
        if monitor is None:
            return
        if event.get("response").lower() != "success":
            await self._end(monitor_id, f"not answered (reason {event.get('reason') or '?'})")
            return
        if monitor.state is MonitorState.RINGING:
            channel = monitor.channel or event.get("channel")
            monitor = monitor.moved(MonitorState.ACTIVE, answered_at=self._clock(), channel=channel)
            self._monitors[monitor_id] = monitor
            await self._save(monitor)

    async def _on_hangup(self, event: AmiMessage) -> None:
        uniqueid = event.get("uniqueid")
        if uniqueid in self._monitors:
            await self._end(uniqueid, "the supervisor's phone hung up")
            return
        for monitor in [m for m in self._monitors.values() if m.spied_channel == event.get("channel")]:
            await self._end(monitor.id, "the seat's call ended")
            with contextlib.suppress(AmiError):  # ChanSpy's E option ends it too; this is for a phone still ringing
                await self._asterisk.hang_up(monitor.channel or monitor.id)


def _with(monitor: Monitor, **changes: object) -> Monitor:
    return replace(monitor, **changes)  # type: ignore[arg-type]
