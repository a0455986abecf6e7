"""What the ACD asks of Asterisk, named for what it does (AMI actions underneath).

Every method raises telephony.ami_types.AmiError when Asterisk did not take the action; the
engine decides what that means for the call."""

from __future__ import annotations

import asyncio

from telephony.ami_types import AmiLink, AmiMessage, set_variable
from telephony.dialplan_names import LEFT_VARIABLE, MAX_WAIT_VARIABLE, OFFER_CONTEXT, SEATED_VARIABLE
from telephony.values import shown_number


class AcdTelephony:
    def __init__(self, ami: AmiLink, ring_timeout_s: float) -> None:
        self._ami = ami
        self._ring_timeout_ms = int(ring_timeout_s * 1000)

    @property
    def connected(self) -> bool:
        return self._ami.connected

    async def ring_seat(self, offer_id: str, seat_id: str, caller: str) -> None:
        """The seat's phone rings (async Originate into the offer context); the channel's
        uniqueid is ``offer_id``; OriginateResponse tells how it went."""
        await self._ami.send_action(
            {
                "Action": "Originate",
                "Channel": f"PJSIP/{seat_id}",
                "Context": OFFER_CONTEXT,
                "Exten": "s",
                "Priority": "1",
                "Async": "true",
                "Timeout": str(self._ring_timeout_ms),
                # the offer is the channel's uniqueid (the seat AGI reads it there): no variable
                "ChannelId": offer_id,
                # the caller's number as SIP brought it may hold anything: digits only, or 12345
                "CallerID": f'"12345" <{shown_number(caller, "12345")}>',
            }
        )

    async def hang_up(self, channel: str) -> None:
        await self._ami.send_action({"Action": "Hangup", "Channel": channel, "Cause": "16"})

    async def end_wait_now(self, channel: str, why: str) -> None:
        """The caller's max wait ends now (Asterisk's T extension runs the overflow node)."""
        await set_variable(self._ami, channel, "TIMEOUT(absolute)", "1")
        await set_variable(self._ami, channel, LEFT_VARIABLE, why)

    async def seated(self, channel: str) -> None:
        """A seat has the caller: max wait must not cut the talk (MAX_WAIT too: the caller may
        not have reached the hold context yet), and after the talk the caller is done. The
        three Setvar actions are sent at once, in this order (Asterisk runs a session's actions
        in turn), and their replies awaited together: one wait, not three round trips. The
        first failure is raised once all have replied."""
        settings = (("TIMEOUT(absolute)", "0"), (MAX_WAIT_VARIABLE, "0"), (SEATED_VARIABLE, "1"))
        replies = await asyncio.gather(
            *(set_variable(self._ami, channel, variable, value) for variable, value in settings),
            return_exceptions=True,
        )
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply

    async def unseated(self, channel: str, max_wait_s: float) -> None:
        """The seat never took the caller bound to it: it waits again (not SEATED, so the hold
        context's slices go on), and max wait runs again for ``max_wait_s`` (0: not at all).
        SEATED goes first (the hold context reads it when a slice ends); each reply awaited in turn."""
        await set_variable(self._ami, channel, SEATED_VARIABLE, "")
        if max_wait_s > 0:
            seconds = str(max(int(max_wait_s), 1))  # 0 would mean none: at least one second
            await set_variable(self._ami, channel, MAX_WAIT_VARIABLE, seconds)
            await set_variable(self._ami, channel, "TIMEOUT(absolute)", seconds)

    async def channels(self) -> dict[str, AmiMessage]:
        """Every channel Asterisk has now, by uniqueid (CoreShowChannels)."""
        reply = await self._ami.send_action({"Action": "CoreShowChannels"})
        return {e.get("uniqueid"): e for e in reply.events if e.name == "CoreShowChannel"}
