"""A consultation's first step: the seat's channel gets the attended-transfer key.

A talking seat's channel has no DTMF hook, so Asterisk may bridge the conversation natively (RTP
to RTP, bridge_native_rtp.c refuses a channel with DTMF hooks). AMI ``Atxfer`` only queues the
key as DTMF, which a hook must turn into the transfer, and bridge_basic.c installs hooks only when
a channel is pushed into a bridge. So the seat and its caller are taken out of their bridge (one
dual AMI ``Redirect``: each waits alone in a holding bridge at the dialplan's rejoin label, where
the seat's channel gets ``FEATUREMAP(atxfer)``) and put together in a new one (AMI ``Bridge``).

Why not AMI ``Bridge`` at once: it moves one channel after the other, and the first move leaves
the old two-party bridge with one channel, which dissolves it and drops the other
(bridge.c ``bridge_dissolve_check_stolen``). Moving each out of a holding bridge drops nobody.
AMI ``Bridge`` also sets where each goes afterwards (the priority after its rejoin wait: the
seat is done, the caller goes on to hotline-after-seat as Bridge()'s F would have sent it).
Where each is, is asked of Asterisk per channel (AMI ``Status``); one who leaves meanwhile ends
the other's wait at once (``together_again``).

Not used where features.conf gives every seat's channel the key (Asterisk records the calls:
ivr/consult.py ``transfer_key``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telephony.ami_types import AmiActionFailed, AmiError, AmiLink
from telephony.dialplan_names import (
    AFTER_REJOIN_LABEL,
    HOLD_CONTEXT,
    OFFER_CONTEXT,
    REJOIN_BRIDGE_PREFIX,
    REJOIN_LABEL,
)


class RejoinFailed(AmiActionFailed):
    """The seat and its caller did not both reach their holding bridges in time."""


@dataclass(frozen=True)
class Place:
    """Where Asterisk has one channel now (AMI ``Status``)."""

    bridge: str  # the id of its bridge; "" when in none
    waiting: bool  # at its rejoin label: BridgeWait in its own holding bridge (rejoin-<uniqueid>)


async def _place(ami: AmiLink, channel: str) -> Place | None:
    """Where ``channel`` is; None when it is gone. One channel's status, not every channel's
    (CoreShowChannels is ≈ 0.5 KB a channel: ≈ 0.5 MB to read with 1,000 calls)."""
    try:
        reply = await ami.send_action({"Action": "Status", "Channel": channel})
    except AmiActionFailed as exc:
        if "no such channel" in str(exc).lower():
            return None
        raise
    # Application/Data: the dialplan application the channel runs. Seen on Asterisk: a caller
    # just redirected out of the seat's bridge still shows its queue wait (BridgeWait
    # hotline-hold,…, in a bridge) until its rejoin BridgeWait starts: only the name tells.
    status = next((e for e in reply.events if e.name == "Status" and e.get("channel") == channel), None)
    if status is None:
        return None
    bridge = status.get("bridgeid")
    holding = status.get("application").lower() == "bridgewait" and status.get("data").startswith(REJOIN_BRIDGE_PREFIX)
    return Place(bridge, holding and bool(bridge))


async def _where(ami: AmiLink, channels: tuple[str, str]) -> tuple[Place | None, Place | None]:
    """Where the seat and the caller are (both asked at once: one socket write)."""
    seat, caller = await asyncio.gather(_place(ami, channels[0]), _place(ami, channels[1]))
    return seat, caller


def _apart(seat: Place | None, caller: Place | None, shared: str) -> bool:
    """Each waits in its own holding bridge: neither still in the ``shared`` one (one may reach
    its holding bridge while the other is still leaving that one, whose dissolving makes AMI
    Bridge fail), both at their rejoin label's BridgeWait."""
    if seat is None or caller is None or not (seat.waiting and caller.waiting):
        return False
    return seat.bridge != caller.bridge and shared not in (seat.bridge, caller.bridge)


async def _bridge(ami: AmiLink, seat_channel: str, caller_channel: str) -> None:
    await ami.send_action({"Action": "Bridge", "Channel1": seat_channel, "Channel2": caller_channel, "Tone": "no"})


async def rejoin(
    ami: AmiLink,
    seat_channel: str,
    caller_channel: str,
    shared_bridge: str,
    *,
    timeout_s: float = 5.0,
    poll_s: float = 0.02,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Seat and caller out of their ``shared_bridge`` and into a new one. Raises AmiError (RejoinFailed
    when one of them never reached its holding bridge: it left, or Asterisk is slow); each
    leaves its holding bridge on its own after the dialplan's REJOIN_WAIT_S."""
    await ami.send_action(
        {
            "Action": "Redirect",
            "Channel": seat_channel,
            "Context": OFFER_CONTEXT,
            "Exten": "s",
            "Priority": REJOIN_LABEL,
            "ExtraChannel": caller_channel,
            "ExtraContext": HOLD_CONTEXT,
            "ExtraExten": "s",
            "ExtraPriority": REJOIN_LABEL,
        }
    )
    deadline = clock() + timeout_s
    while True:
        seat, caller = await _where(ami, (seat_channel, caller_channel))
        if _apart(seat, caller, shared_bridge):
            break
        if seat is None or caller is None:
            raise RejoinFailed("the seat or the caller left while the consultation started")
        if clock() >= deadline:
            raise RejoinFailed(f"the seat and the caller were not apart within {timeout_s:g} s")
        await sleep(poll_s)
    await _bridge(ami, seat_channel, caller_channel)


async def together_again(
    ami: AmiLink,
    seat_channel: str,
    caller_channel: str,
    shared_bridge: str,
    *,
    timeout_s: float = 3.0,
    poll_s: float = 0.05,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """After a failed ``rejoin``: if the seat and the caller wait apart, bridge them again (never
    when they share a bridge: moving one out of it would drop the other). If one of them left,
    the other, waiting alone, is ended at once (the seat hung up, the caller sent on after the
    seat) rather than after REJOIN_WAIT_S. A move still under way (one in its holding bridge, the
    other not yet) is waited for up to ``timeout_s``: given up, each would wait out REJOIN_WAIT_S
    alone and the conversation would be over. ``rejoin``'s 5 s and these 3 s end before the first
    of them has waited REJOIN_WAIT_S (10 s). Never raises."""
    deadline = clock() + timeout_s
    try:
        while True:
            seat, caller = await _where(ami, (seat_channel, caller_channel))
            if _apart(seat, caller, shared_bridge):
                await _bridge(ami, seat_channel, caller_channel)
                return
            if seat is None and caller is None:
                return
            if seat is None or caller is None:
                if await _end_alone(ami, seat_channel, seat, caller_channel, caller):
                    return
            elif seat.bridge and seat.bridge == caller.bridge:
                return  # together (still, or again)
            if clock() >= deadline:
                return  # too late
            await sleep(poll_s)
    except AmiError:
        return


async def _end_alone(
    ami: AmiLink, seat_channel: str, seat: Place | None, caller_channel: str, caller: Place | None
) -> bool:
    """One of the two left: the other, once waiting alone at its rejoin label, goes where its wait
    would have led after REJOIN_WAIT_S — the seat hung up, the caller on to hotline-after-seat.
    False while the other is not there yet (still on its way, or never redirected: then its own
    dialplan goes on as before, e.g. Bridge()'s F)."""
    if seat is not None and seat.waiting:
        await ami.send_action({"Action": "Hangup", "Channel": seat_channel, "Cause": "16"})
        return True
    if caller is not None and caller.waiting:
        await ami.send_action(
            {
                "Action": "Redirect",
                "Channel": caller_channel,
                "Context": HOLD_CONTEXT,
                "Exten": "s",
                "Priority": AFTER_REJOIN_LABEL,
            }
        )
        return True
    return False
