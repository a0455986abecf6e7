"""An in-memory AmiLink for unit tests of what sits on AMI (the ACD engine): records actions,
lets the test play Asterisk's events, answers CoreShowChannels (and Status of one channel) from a
scripted channel list."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from telephony.ami_types import AmiActionFailed, AmiMessage, AmiResponse, ConnectedHandler, EventHandler


def message(**headers: str) -> AmiMessage:
    """An AMI message from keyword headers (names lower-cased as the adapter does)."""
    return AmiMessage({key.lower(): value for key, value in headers.items()})


class FakeAmiLink:
    """Satisfies ``telephony.ami_types.AmiLink`` without a socket.

    ``channels``: the CoreShowChannel events' headers (uniqueid, channel, bridgeid …).
    ``gates``: action name (lower case) → an Event the action waits for before it is answered.
    ``failing``: action names (lower case) answered with AmiActionFailed.
    ``fail_at``: the n-th action sent (0-based, counting every action so far) raises that error
    instead of being answered (a failure injected at one step).
    ``reactions``: action name (lower case) → what Asterisk does when it answers the action with
    success (e.g. moves ``channels`` between bridges).
    """

    def __init__(self) -> None:
        self.connected = True
        self.actions: list[dict[str, str]] = []
        self.channels: list[dict[str, str]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failing: set[str] = set()
        self.fail_at: dict[int, Exception] = {}
        self.reactions: dict[str, Callable[[dict[str, str]], None]] = {}
        self._handlers: dict[str, list[EventHandler]] = {}
        self._connected_handlers: list[ConnectedHandler] = []

    async def send_action(self, fields: Mapping[str, str | list[str]], timeout_s: float | None = None) -> AmiResponse:
        action = {key: value if isinstance(value, str) else ",".join(value) for key, value in fields.items()}
        self.actions.append(action)
        name = action["Action"].lower()
        injected = self.fail_at.get(len(self.actions) - 1)
        gate = self.gates.get(name)
        if gate is not None:
            await gate.wait()
        if injected is not None:
            raise injected
        if name in self.failing:
            raise AmiActionFailed(f"{action['Action']} failed")
        reaction = self.reactions.get(name)
        if reaction is not None:
            reaction(action)
        if name == "status" and "Channel" in action:  # one channel's, from the same list
            found = [c for c in self.channels if c.get("channel") == action["Channel"]]
            if not found:
                raise AmiActionFailed("Status: No such channel")
            status = (message(Event="Status", **found[0]), message(Event="StatusComplete", Items="1"))
            return AmiResponse(message(Response="Success", EventList="start"), status)
        if name == "coreshowchannels":
            events = tuple(message(Event="CoreShowChannel", **channel) for channel in self.channels)
            return AmiResponse(message(Response="Success", EventList="start"), events)
        return AmiResponse(message(Response="Success", Message="ok"))

    def on_event(self, name: str, handler: EventHandler) -> None:
        self._handlers.setdefault(name.lower(), []).append(handler)

    def on_connected(self, handler: ConnectedHandler) -> None:
        self._connected_handlers.append(handler)

    async def emit(self, event: str, **headers: str) -> None:
        """Asterisk sends ``event``: run every handler registered for it, in order."""
        for handler in self._handlers.get(event.lower(), []):
            await handler(message(Event=event, **headers))

    async def reconnect(self) -> None:
        """The link (re)connected: run the on-connected handlers."""
        for handler in self._connected_handlers:
            await handler()

    def sent(self, action: str) -> list[dict[str, str]]:
        """The actions named ``action`` sent so far, oldest first."""
        return [a for a in self.actions if a["Action"].lower() == action.lower()]
