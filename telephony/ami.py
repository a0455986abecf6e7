"""The AMI client the controller uses: one supervised connection over panoramisk's framing.

It logs in, reconnects with exponential backoff, pings with a reply timeout (a half-open TCP
connection is noticed and dropped), gives every action a timeout, never re-sends an action
after a reconnect, dispatches events in order from one task, and runs resync handlers after
each login.

Events are read off the socket as they come, whatever the handlers do (Asterisk drops a
manager session it cannot write to within ``writetimeout``), and wait for the dispatcher in a
bounded backlog. Events nobody handles are not kept. If handlers fall so far behind that the
backlog is full, newer events are dropped (counted), and once the backlog is worked off the
resync handlers run again: the state is rebuilt from what Asterisk has, not from the events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from common.aio import cancel_and_wait
from telephony.ami_protocol import HotlineAmiProtocol, to_ami_message
from telephony.ami_types import (
    AmiActionFailed,
    AmiConnectionLost,
    AmiError,
    AmiMessage,
    AmiNotConnected,
    AmiResponse,
    AmiTimeout,
    ConnectedHandler,
    EventHandler,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class AmiSettings:
    """Where AMI is and how patient to be with it."""

    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    action_timeout_s: float = 5.0
    ping_interval_s: float = 5.0
    ping_timeout_s: float = 3.0
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 5.0
    events: str = "call,agent,user"  # what the controller handles (manager.conf grants no more)
    event_backlog_max: int = 10_000  # events waiting for the handlers; beyond: dropped, then resync


def next_backoff(current_s: float, settings: AmiSettings) -> float:
    """Exponential backoff between reconnect attempts, capped."""
    return min(settings.reconnect_max_s, max(settings.reconnect_initial_s, current_s * 2))


class AmiClient:
    """A supervised AMI connection. Start with ``start()``, stop with ``close()``."""

    def __init__(self, settings: AmiSettings) -> None:
        self._settings = settings
        self._protocol: HotlineAmiProtocol | None = None
        self._logged_in = False
        self._handlers: dict[str, list[EventHandler]] = defaultdict(list)
        self._connected_handlers: list[ConnectedHandler] = []
        self._events: deque[AmiMessage] = deque()
        self._events_ready = asyncio.Event()
        self._stopping = False  # the dispatcher finishes the backlog, then ends
        self._resync_due = False  # events were dropped: rebuild the state once the backlog is done
        self._resync_failed = False  # that resync failed: try again after the next event
        self.events_dropped = 0
        self.events_backlog_peak = 0
        self.overflow_resyncs = 0
        self._lost: asyncio.Event = asyncio.Event()
        self._ready: asyncio.Event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.connections = 0  # successful logins since start, for health and tests
        self.version = ""

    @property
    def events_backlog(self) -> int:
        """Events received and not yet handled."""
        return len(self._events)

    @property
    def connected(self) -> bool:
        """True while a logged-in connection is up."""
        return self._logged_in and self._protocol is not None and not self._protocol.closed

    def on_event(self, name: str, handler: EventHandler) -> None:
        """Call ``handler`` for every event named ``name`` ('*' for all), in arrival order."""
        self._handlers[name.lower()].append(handler)

    def on_connected(self, handler: ConnectedHandler) -> None:
        """Call ``handler`` after every successful login (first and reconnects): resync here."""
        self._connected_handlers.append(handler)

    def start(self) -> None:
        """Start connecting in the background."""
        self._tasks = [
            asyncio.create_task(self._supervise(), name="ami-supervisor"),
            asyncio.create_task(self._dispatch_events(), name="ami-events"),
        ]

    async def close(self, drain_timeout_s: float = 5.0) -> None:
        """Log off, apply the events already received, and stop every task."""
        self._closing = True
        if self.connected:
            with contextlib.suppress(AmiError):
                await self.send_action({"Action": "Logoff"}, timeout_s=1.0)
        if self._protocol is not None:
            self._protocol.close()
        supervisor, dispatcher = self._tasks or (None, None)
        if supervisor is not None:
            supervisor.cancel()
        if dispatcher is not None:
            # Let the dispatcher finish the events it has (a Hangup must still end its record)
            # rather than cancelling it inside a handler.
            self._stopping = True
            self._events_ready.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=drain_timeout_s)
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until logged in (tests, start-up)."""
        async with asyncio.timeout(timeout_s):
            await self._ready.wait()

    async def send_action(self, fields: Mapping[str, str | list[str]], timeout_s: float | None = None) -> AmiResponse:
        """Send one action and wait for its reply, at most ``timeout_s``.

        Raises AmiNotConnected (not sent), AmiConnectionLost (sent, connection died; not
        re-sent), AmiTimeout (sent, no reply in time) or AmiActionFailed (Response: Error).
        """
        protocol = self._protocol
        if protocol is None or protocol.closed or (not self._logged_in and fields.get("Action") != "Login"):
            raise AmiNotConnected(f"AMI is not connected; {fields.get('Action')} was not sent")
        return await self._send_on(protocol, dict(fields), timeout_s or self._settings.action_timeout_s)

    async def _send_on(self, protocol: HotlineAmiProtocol, fields: dict[str, Any], timeout_s: float) -> AmiResponse:
        action_id, future = protocol.send_action(fields)
        try:
            async with asyncio.timeout(timeout_s):
                result = await asyncio.shield(future)
        except TimeoutError:
            protocol.forget(action_id)
            raise AmiTimeout(f"no reply to {fields.get('Action')} within {timeout_s:g} s") from None
        messages = [to_ami_message(m) for m in (result if isinstance(result, list) else [result])]
        response = messages[0]
        if response.get("response").lower() in ("error", "failure", "fail"):
            raise AmiActionFailed(f"{fields.get('Action')}: {response.get('message') or 'error'}")
        return AmiResponse(response=response, events=tuple(messages[1:]))

    async def _supervise(self) -> None:
        backoff = 0.0
        while not self._closing:
            try:
                await self._connect_once()
                backoff = 0.0
                await self._serve_connection()
            except (OSError, AmiError, TimeoutError) as exc:
                log.warning("ami.connect_failed", error=str(exc) or type(exc).__name__)
            finally:
                self._logged_in = False
                self._ready.clear()
                if self._protocol is not None:
                    self._protocol.abort()
            if self._closing:
                return
            backoff = next_backoff(backoff, self._settings)
            log.info("ami.reconnect_scheduled", in_s=round(backoff, 2))
            await asyncio.sleep(backoff)

    async def _connect_once(self) -> None:
        settings = self._settings
        loop = asyncio.get_running_loop()
        self._lost.clear()
        async with asyncio.timeout(settings.action_timeout_s):
            _, protocol = await loop.create_connection(
                lambda: HotlineAmiProtocol(self._event_received, self._connection_lost, self._wanted),
                settings.host,
                settings.port,
            )
            assert isinstance(protocol, HotlineAmiProtocol)
            self._protocol = protocol
            self.version = await protocol.greeting
        await self._send_on(
            protocol,
            {"Action": "Login", "Username": settings.username, "Secret": settings.secret, "Events": settings.events},
            settings.action_timeout_s,
        )
        self._logged_in = True
        self._ready.set()
        self.connections += 1
        log.info(
            "ami.connected", host=settings.host, port=settings.port, protocol=self.version, connections=self.connections
        )

    async def _serve_connection(self) -> None:
        self._resync_due = False  # this resync covers events dropped before it
        for handler in self._connected_handlers:
            try:
                await handler()
            except AmiError as exc:
                log.warning("ami.resync_failed", error=str(exc))
            except Exception:
                log.exception("ami.resync_crashed")
        while not self._closing:
            try:
                async with asyncio.timeout(self._settings.ping_interval_s):
                    await self._lost.wait()
                raise AmiConnectionLost("AMI connection closed")
            except TimeoutError:
                pass
            try:
                await self.send_action({"Action": "Ping"}, timeout_s=self._settings.ping_timeout_s)
            except AmiTimeout:
                raise AmiConnectionLost("AMI did not answer a Ping: connection half-open, dropping it") from None

    def _connection_lost(self, exc: BaseException | None) -> None:
        self._logged_in = False
        self._ready.clear()
        self._lost.set()
        if not self._closing:
            log.warning("ami.connection_lost", error=str(exc) if exc else "closed by peer")

    def _wanted(self, name: str) -> bool:
        return "*" in self._handlers or name.lower() in self._handlers

    def _event_received(self, event: AmiMessage) -> None:
        """From the protocol, as bytes arrive: never blocks, never waits for a handler."""
        if event.name.lower() not in self._handlers and "*" not in self._handlers:
            return  # nobody here needs it
        if len(self._events) >= self._settings.event_backlog_max:
            self.events_dropped += 1
            if not self._resync_due:
                log.error(
                    "ami.events_dropped", backlog=len(self._events), event_name=event.name,
                    note="handlers fell behind; state is resynced from Asterisk once they catch up",
                )  # fmt: skip
            self._resync_due = True
            return
        self._events.append(event)
        self.events_backlog_peak = max(self.events_backlog_peak, len(self._events))
        self._events_ready.set()

    async def _dispatch_events(self) -> None:
        while True:
            if not self._events:
                if self._stopping:
                    return
                if self._resync_due and self.connected and not self._resync_failed:
                    await self._resync_after_overflow()
                    continue
                self._events_ready.clear()
                await self._events_ready.wait()
                self._resync_failed = False
                continue
            event = self._events.popleft()
            for handler in (*self._handlers.get(event.name.lower(), ()), *self._handlers.get("*", ())):
                try:
                    await handler(event)
                except Exception:
                    log.exception("ami.event_handler_failed", event_name=event.name)

    async def _resync_after_overflow(self) -> None:
        self._resync_due = False
        self.overflow_resyncs += 1
        log.warning("ami.resync_after_dropped_events", dropped_total=self.events_dropped)
        for handler in self._connected_handlers:
            try:
                await handler()
            except AmiError as exc:
                log.warning("ami.resync_failed", error=str(exc))
                self._resync_due = self._resync_failed = True  # again after the next event
            except Exception:
                log.exception("ami.resync_crashed")
