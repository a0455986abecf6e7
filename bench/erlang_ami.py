"""The Erlang-A bench's stopwatch and its patience: Asterisk's own AMI events, one session.

Like bench/e2e_ami.py (same observer user, same marks, same for both ACDs), but it also keeps
every seat channel (a ring: our offer or app_queue's attempt) with its bridge and hang-up, the
caller's number (to look up the patience drawn for it), and it hangs callers up: when a caller
has waited in the queue (``QueueCallerJoin``, or for ours the hold context's holding bridge) for its patience
without reaching a seat, the bench sends AMI ``Hangup`` for its channel. Patience therefore
counts only while waiting, is enforced by the same code for both ACDs, and a ring to a seat
for that caller (app_queue) or for the queue (ours) is cut the same way a caller's hang-up
would cut it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from bench.e2e_ami import TRUNK_PREFIX, WANTED, _holding, _parse, queue_entry
from bench.erlang_stats import CallerLeg, SeatLeg


def seat_of(channel: str) -> str | None:
    """``PJSIP/2003-0000001a`` → ``2003``; None for the trunk or anything else."""
    if not channel.startswith("PJSIP/") or channel.startswith(TRUNK_PREFIX):
        return None
    name = channel.removeprefix("PJSIP/").rpartition("-")[0]
    return name if name.isdigit() else None


class ErlangRecorder:
    """Logs in, filters to the events we time, records callers and seat legs by unique id."""

    def __init__(self, port: int, username: str, secret: str) -> None:
        self.callers: dict[str, CallerLeg] = {}
        self.seats: dict[str, SeatLeg] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._sock.settimeout(None)
        self._send({"Action": "Login", "Username": username, "Secret": secret, "Events": "call,agent,dialplan"})
        self._send({"Action": "Filter", "Operation": "Add", "Filter": f"Event: ({'|'.join(WANTED)})"})
        self._thread = threading.Thread(target=self._read, name="erlang-recorder", daemon=True)
        self._thread.start()

    def _send(self, action: dict[str, str]) -> None:
        text = "".join(f"{key}: {value}\r\n" for key, value in action.items()) + "\r\n"
        with self._send_lock:
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
            *blocks, buffer = buffer.split(b"\r\n\r\n")
            for block in blocks:
                self.on_event(_parse(block.decode(errors="replace")))

    def on_event(self, event: dict[str, str]) -> None:
        name, channel = event.get("event"), event.get("channel", "")
        if name is None or "timestamp" not in event:
            return
        when, uniqueid = float(event["timestamp"]), event.get("uniqueid", "")
        with self._lock:
            if name == "Newchannel":
                seat = seat_of(channel)
                if channel.startswith(TRUNK_PREFIX):
                    self.callers[uniqueid] = CallerLeg(channel, event.get("calleridnum", ""), when)
                elif seat is not None:
                    self.seats[uniqueid] = SeatLeg(seat, when)
                return
            caller, seat_leg = self.callers.get(uniqueid), self.seats.get(uniqueid)
            if caller is not None:
                if queue_entry(name, event):
                    if caller.queued is None:
                        caller.queued = when
                elif name == "BridgeEnter" and caller.bridged is None and not _holding(event):
                    caller.bridged = when
                elif name == "Hangup":
                    caller.ended = when
            elif seat_leg is not None:
                if name == "BridgeEnter" and seat_leg.bridged is None and not _holding(event):
                    seat_leg.bridged = when
                elif name == "Hangup":
                    seat_leg.ended = when

    def enforce_patience(self, patience_s: Callable[[str], float | None], now: float) -> int:
        """Hang up every caller who has waited longer than its patience; how many were hung up."""
        overdue = []
        with self._lock:
            for leg in self.callers.values():
                if leg.patience_hangup or leg.queued is None or leg.bridged is not None or leg.ended is not None:
                    continue
                patience = patience_s(leg.number)
                if patience is not None and now - leg.queued >= patience:
                    leg.patience_hangup = True
                    overdue.append(leg.channel)
        for channel in overdue:
            self._send({"Action": "Hangup", "Channel": channel})
        return len(overdue)

    def open_callers(self) -> int:
        with self._lock:
            return sum(1 for leg in self.callers.values() if leg.ended is None)

    def snapshot(self) -> tuple[list[CallerLeg], list[SeatLeg]]:
        """Copies of every leg recorded so far."""
        with self._lock:
            callers = [CallerLeg(**vars(leg)) for leg in self.callers.values()]
            seats = [SeatLeg(**vars(leg)) for leg in self.seats.values()]
        return callers, seats

    def close(self) -> None:
        try:
            self._send({"Action": "Logoff"})
            time.sleep(0.1)
            self._sock.close()
        except OSError:
            pass
