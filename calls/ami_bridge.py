"""Feeds AMI events into the call tracker, and resyncs after every (re)connect."""

from __future__ import annotations

from calls.model import CallOutcome
from calls.tracker import CallTracker
from telephony.ami_types import AmiLink, AmiMessage
from telephony.dialplan_names import ENTRY_CONTEXT, ROUTE_CONTEXT, ROUTED_EVENT, TRANSFERRED_EVENT, TRUNK_CONTEXT

_CALLER_CONTEXTS = frozenset({TRUNK_CONTEXT, ENTRY_CONTEXT, ROUTE_CONTEXT})
_STATE_UP = "6"
_NO_VALUE = frozenset({"", "<unknown>", "unknown", "anonymous"})


def _value(event: AmiMessage, name: str) -> str:
    """A header with Asterisk's placeholders for 'none' turned into ''."""
    value = event.get(name)
    return "" if value.lower() in _NO_VALUE else value


def is_caller_channel(event: AmiMessage) -> bool:
    """A caller's own channel: it started its call (uniqueid = linkedid) on our trunk."""
    uniqueid = event.get("uniqueid")
    return bool(uniqueid) and uniqueid == event.get("linkedid") and event.get("context") in _CALLER_CONTEXTS


class CallEventBridge:
    """Subscribes to the AMI events that move call records."""

    def __init__(self, ami: AmiLink, tracker: CallTracker) -> None:
        self._ami = ami
        self._tracker = tracker
        ami.on_event("Newchannel", self._on_new_channel)
        ami.on_event("Newstate", self._on_new_state)
        ami.on_event("Hangup", self._on_hangup)
        ami.on_event("AgentConnect", self._on_seat_answered)
        ami.on_event("UserEvent", self._on_user_event)
        ami.on_connected(self.resync)

    async def _on_new_channel(self, event: AmiMessage) -> None:
        if is_caller_channel(event):
            await self._tracker.channel_created(
                call_id=event.get("uniqueid"),
                channel=event.get("channel"),
                caller=_value(event, "calleridnum"),
                caller_name=_value(event, "calleridname"),
                called=event.get("exten"),
            )

    async def _on_new_state(self, event: AmiMessage) -> None:
        if event.get("channelstate") == _STATE_UP:
            await self._tracker.answered(event.get("uniqueid"))

    async def _on_seat_answered(self, event: AmiMessage) -> None:
        """The fallback route's app_queue connected the caller (Uniqueid) to a seat (MemberName)."""
        await self._tracker.amend(
            event.get("uniqueid"),
            {
                "seat": event.get("membername"),
                "seat_answered_at": self._tracker.clock(),
                "outcome": CallOutcome.ANSWERED,
                "tags": {"route": "fallback"},
            },
        )

    async def _on_user_event(self, event: AmiMessage) -> None:
        """Our dialplan's own events: a caller of another area was answered by its platform."""
        if event.get("userevent") == ROUTED_EVENT:
            await self._tracker.amend(
                event.get("uniqueid"),
                {"outcome": CallOutcome.TRANSFERRED, "transfer_to": f"route:{event.get('trunk')}"},
            )
        elif event.get("userevent") == TRANSFERRED_EVENT:  # a seat's transfer was answered
            await self._tracker.amend(event.get("uniqueid"), {"outcome": CallOutcome.TRANSFERRED})

    async def _on_hangup(self, event: AmiMessage) -> None:
        await self._tracker.hung_up(event.get("uniqueid"), event.get("cause-txt") or event.get("cause"))

    async def resync(self) -> None:
        """Adopt caller channels Asterisk has now; end records whose channel is gone."""
        seen_before = self._tracker.mark()
        reply = await self._ami.send_action({"Action": "CoreShowChannels"})
        channels = [e for e in reply.events if e.name == "CoreShowChannel"]
        for event in channels:
            if is_caller_channel(event):
                await self._on_new_channel(event)
        await self._tracker.reconcile({e.get("uniqueid") for e in channels}, seen_before)
