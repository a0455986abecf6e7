"""What the ACD engine works with: waiting callers, offers to seats, bindings (values only)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Protocol

from acd.router import WaitingCaller
from calls.model import CallRecord


def waiting_key(platform: str) -> str:
    """Hash: call id → QueuedCall JSON, one per platform (they share one Redis)."""
    return f"hotline:acd:waiting:{platform}"


OFFER_PREFIX = "offer-"  # uniqueid of every seat channel the engine originates


@dataclass(frozen=True)
class QueuedCall:
    """A caller waiting for a seat (what the IVR's queue node hands over)."""

    call_id: str
    channel: str
    queue: str
    skills: tuple[str, ...]
    priority: int
    entered_at: float  # epoch seconds (survives a controller restart, unlike a monotonic clock)
    caller: str = ""  # shown on the seat's phone
    # a callback keeps the place of a caller who hung up: the seat calls them on this trunk
    callback_trunk: str = ""
    origin_call_id: str = ""  # the call whose place it keeps
    max_wait_s: float = 0.0  # the queue node's max wait (0: unknown, e.g. saved by an older version)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> QueuedCall:
        data = json.loads(text)
        data["skills"] = tuple(data.get("skills", ()))
        # a field a later release saved is left out (a rollback keeps its waiting callers)
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def waiting(self) -> WaitingCaller:
        return WaitingCaller(self.call_id, self.queue, frozenset(self.skills), self.priority, self.entered_at)

    @property
    def rank(self) -> tuple[int, float]:
        return (-self.priority, self.entered_at)

    @property
    def is_callback(self) -> bool:
        return bool(self.callback_trunk)


@dataclass
class Offer:
    """One seat's phone ringing (then talking) for the queue."""

    offer_id: str
    seat_id: str
    intended: str | None  # the caller it was rung for; the one bound at answer may differ
    started_at: float
    channel: str = ""  # the seat channel's name, once Asterisk has created it
    bound: str | None = None  # the caller bound when the seat answered
    bound_at: float = 0.0
    withdrawn: bool = False  # we hung it up (nobody left to take): not the seat's fault
    adopted: bool = False  # found ringing after a restart: its OriginateResponse went to the old run
    answered: bool = False  # OriginateResponse Success came: no Failure will end it
    bridged: bool = False  # the bound caller entered the seat's bridge (BridgeEnter)
    call: QueuedCall | None = None  # the caller bound, as it waited: put back in line if never bridged


@dataclass(frozen=True)
class Binding:
    """What the seat's channel needs to reach its caller."""

    call_id: str
    caller_channel: str  # "" for a callback: the seat dials ``dial`` instead
    recording: str  # absolute path for MixMonitor, or "" when recording is off
    dial: str = ""  # a callback: PJSIP/<caller>@<trunk>


@dataclass(frozen=True)
class QueuePosition:
    position: int  # 1 = next
    expected_wait_s: float


CALLBACK_PREFIX = "callback-"


class MissedCalls(Protocol):
    """Where a callback that did not reach the caller goes (calls/callbacks.py)."""

    async def add_missed(self, record: CallRecord) -> None: ...
