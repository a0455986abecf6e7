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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from telephony.ami_types import AmiActionFailed, AmiError, AmiLink
from telephony.dialplan_names import HOLD_CONTEXT, OFFER_CONTEXT, REJOIN_LABEL


class RejoinFailed(AmiActionFailed):
    """The seat and its caller did not both reach their holding bridges in time."""


async def _where(ami: AmiLink, channels: tuple[str, str]) -> tuple[str, str] | None:
    """The bridge ids of the two channels now ("" when in none); None when one is gone."""
    reply = await ami.send_action({"Action": "CoreShowChannels"})
    found = {e.get("channel"): e.get("bridgeid") for e in reply.events if e.name == "CoreShowChannel"}
    if channels[0] not in found or channels[1] not in found:
        return None
    return found[channels[0]], found[channels[1]]


def _apart(bridges: tuple[str, str] | None, shared: str) -> bool:
    """Each in a bridge of its own (their holding bridges): neither still in the ``shared`` one
    (one may have reached its holding bridge while the other is still leaving that one, whose
    dissolving makes AMI Bridge fail)."""
    return bridges is not None and all(bridges) and bridges[0] != bridges[1] and shared not in bridges


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
        bridges = await _where(ami, (seat_channel, caller_channel))
        if _apart(bridges, shared_bridge):
            break
        if bridges is None:
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
    when they share a bridge: moving one out of it would drop the other). A move still under way
    (one in its holding bridge, the other not yet) is waited for up to ``timeout_s``: given up,
    each would wait out REJOIN_WAIT_S alone and the conversation would be over (the seat hung up,
    the caller sent after the seat). ``rejoin``'s 5 s and these 3 s end before the first of them
    has waited REJOIN_WAIT_S (10 s). Never raises."""
    deadline = clock() + timeout_s
    try:
        while True:
            bridges = await _where(ami, (seat_channel, caller_channel))
            if _apart(bridges, shared_bridge):
                await _bridge(ami, seat_channel, caller_channel)
                return
            if bridges is None or (bridges[0] and bridges[0] == bridges[1]) or clock() >= deadline:
                return  # one of them left, or they are together (still, or again), or too late
            await sleep(poll_s)
    except AmiError:
        return
