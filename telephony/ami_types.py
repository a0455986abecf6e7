"""Our AMI types and errors, independent of panoramisk."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class AmiError(Exception):
    """Base of every AMI failure the adapter raises."""


class AmiNotConnected(AmiError):
    """No logged-in AMI connection right now; the action was not sent."""


class AmiConnectionLost(AmiError):
    """The connection died after the action was sent; it was NOT re-sent (it may have run)."""


class AmiTimeout(AmiError):
    """No reply within the action's timeout; the action may still run in Asterisk."""


class AmiActionFailed(AmiError):
    """Asterisk answered Response: Error."""


class AmiInvalidAction(AmiError, ValueError):
    """An action field holds a line break (it would inject AMI headers or actions): not sent."""


@dataclass(frozen=True)
class AmiMessage:
    """One AMI event or response; header names are lower-case."""

    headers: Mapping[str, str | tuple[str, ...]]
    content: str = ""

    def get(self, name: str, default: str = "") -> str:
        """A header's value (the last one when repeated)."""
        value = self.headers.get(name.lower(), default)
        return value[-1] if isinstance(value, tuple) else value

    @property
    def name(self) -> str:
        """The event name, or '' for a response."""
        return self.get("event")

    @property
    def success(self) -> bool:
        return self.get("response").lower() in ("success", "follows", "goodbye")


@dataclass(frozen=True)
class AmiResponse:
    """The reply to an action: its response and, for list actions, the events that followed."""

    response: AmiMessage
    events: tuple[AmiMessage, ...] = field(default=())


EventHandler = Callable[[AmiMessage], Awaitable[None]]
ConnectedHandler = Callable[[], Awaitable[None]]


class AmiLink(Protocol):
    """What the rest of the controller needs from AMI (fakes implement this in unit tests)."""

    @property
    def connected(self) -> bool: ...

    async def send_action(
        self, fields: Mapping[str, str | list[str]], timeout_s: float | None = None
    ) -> AmiResponse: ...

    def on_event(self, name: str, handler: EventHandler) -> None: ...

    def on_connected(self, handler: ConnectedHandler) -> None: ...


async def set_variable(ami: AmiLink, channel: str, name: str, value: str) -> None:
    """Set a channel variable (or a function such as ``TIMEOUT(absolute)``) on ``channel``."""
    await ami.send_action({"Action": "Setvar", "Channel": channel, "Variable": name, "Value": value})
