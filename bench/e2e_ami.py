"""Asterisk's own AMI events as the stopwatch, the same for our ACD and for app_queue.

Both systems run on one Asterisk with ``timestampevents=yes``, so every caller channel gets
the same three marks whoever distributes it: ``Newchannel`` (the INVITE arrived), queue
entry (app_queue's ``QueueCallerJoin``; for ours the first ``BridgeEnter`` into the holding
bridge of the hold context, where the caller waits after the IVR's queue node: BridgeWait) and
the first ``BridgeEnter`` into a bridge that is not the holding bridge (talking to a seat). No
``Newexten``: production switches it off (AMI_DISABLED_EVENTS) and turning it back on for the
stopwatch would make ours pay an event per dialplan step that production does not. A plain socket in a thread
keeps up with a few thousand events a second and is independent of the controller measured.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from telephony.dialplan_names import HOLD_CONTEXT

TRUNK_PREFIX = "PJSIP/trunk-"
WANTED = ("Newchannel", "QueueCallerJoin", "BridgeEnter", "Hangup")
OBSERVER = "bench-observer"


def add_observer(etc_dir: Path) -> tuple[str, str]:
    """An AMI user for the bench's stopwatch, added to this bench's own rendered manager.conf
    before its Asterisk starts: it reads dialplan events and sends Filter (class system), which
    the controller's user is never granted. Returns (username, secret)."""
    secret = secrets.token_urlsafe(24)
    manager = etc_dir / "manager.conf"
    # its events are switched off for every session (AMI_DISABLED_EVENTS): back on, in both phases
    manager.write_text(enable_events(manager.read_text(encoding="utf-8"), WANTED), encoding="utf-8")
    with manager.open("a", encoding="utf-8") as handle:
        handle.write(
            f"\n[{OBSERVER}]\nsecret = {secret}\ndeny = 0.0.0.0/0.0.0.0\n"
            "permit = 127.0.0.1/255.255.255.255\nread = call,agent,dialplan\nwrite = system\n"
        )
    return OBSERVER, secret


def enable_events(manager_conf: str, names: tuple[str, ...]) -> str:
    """``manager_conf`` with ``names`` taken out of its ``disabledevents`` line."""

    def keep(line: str) -> str:
        if not line.startswith("disabledevents = "):
            return line
        rest = [n for n in line.removeprefix("disabledevents = ").split(",") if n and n not in names]
        return "disabledevents = " + ",".join(rest) if rest else ""

    return "\n".join(keep(line) for line in manager_conf.split("\n"))


@dataclass
class CallerMarks:
    """Event times (epoch seconds, Asterisk's clock) of one caller channel."""

    arrived: float
    queued: float | None = None
    bridged: float | None = None
    ended: float | None = None

    @property
    def talk_s(self) -> float:
        """Seconds talking to a seat (0 if never seated or not yet ended)."""
        if self.bridged is None or self.ended is None:
            return 0.0
        return self.ended - self.bridged


@dataclass
class SeatMarks:
    """Seat channels created (each one is a ring: an offer or an app_queue attempt)."""

    created: list[float] = field(default_factory=list)


def _parse(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            fields[key.lower()] = value
    return fields


def _holding(event: dict[str, str]) -> bool:
    """The holding bridge our callers wait in (BridgeWait): not a seat yet."""
    return event.get("bridgetechnology") == "holding_bridge" or event.get("bridgename") == HOLD_CONTEXT


def queue_entry(name: str, event: dict[str, str]) -> bool:
    """A caller enters the queue: app_queue's ``QueueCallerJoin``, or ours' ``BridgeEnter`` into
    the holding bridge (BridgeWait in the hold context; again after each announcement, so only
    the first one counts)."""
    return name == "QueueCallerJoin" or (name == "BridgeEnter" and _holding(event))


class AmiRecorder:
    """Logs in, asks Asterisk to send only the events we time, and records marks per channel."""

    def __init__(self, port: int, username: str, secret: str) -> None:
        self.callers: dict[str, CallerMarks] = {}
        self.seats = SeatMarks()
        self._lock = threading.Lock()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._sock.settimeout(None)
        self._send({"Action": "Login", "Username": username, "Secret": secret, "Events": "call,agent,dialplan"})
        pattern = "|".join(WANTED)
        self._send({"Action": "Filter", "Operation": "Add", "Filter": f"Event: ({pattern})"})
        self._thread = threading.Thread(target=self._read, name="ami-recorder", daemon=True)
        self._thread.start()

    def _send(self, action: dict[str, str]) -> None:
        text = "".join(f"{key}: {value}\r\n" for key, value in action.items()) + "\r\n"
        self._sock.sendall(text.encode())

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            *blocks, rest = buffer.split(b"\r\n\r\n")
            buffer = rest
            for block in blocks:
                self._on_event(_parse(block.decode(errors="replace")))

    def _on_event(self, event: dict[str, str]) -> None:
        name = event.get("event")
        channel = event.get("channel", "")
        if name is None or "timestamp" not in event:
            return
        when = float(event["timestamp"])
        uniqueid = event.get("uniqueid", "")
        with self._lock:
            if name == "Newchannel":
                if channel.startswith(TRUNK_PREFIX):
                    self.callers[uniqueid] = CallerMarks(arrived=when)
                elif channel.startswith("PJSIP/"):
                    self.seats.created.append(when)
                return
            marks = self.callers.get(uniqueid)
            if marks is None:
                return
            if queue_entry(name, event) and marks.queued is None:
                marks.queued = when
            elif name == "BridgeEnter" and marks.bridged is None and not _holding(event):
                marks.bridged = when
            elif name == "Hangup":
                marks.ended = when

    def callers_between(self, start: float, end: float) -> list[CallerMarks]:
        """Callers whose INVITE arrived in [start, end)."""
        with self._lock:
            return [m for m in self.callers.values() if start <= m.arrived < end]

    def seat_rings_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for t in self.seats.created if start <= t < end)

    def close(self) -> None:
        try:
            self._send({"Action": "Logoff"})
            time.sleep(0.1)
            self._sock.close()
        except OSError:
            pass
