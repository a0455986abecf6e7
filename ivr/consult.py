"""A seat's consultation: talk to the other side first, then hand the caller on or join all three.

Asterisk's own attended transfer does the telephony (bridge_basic's state machine: the caller
hears music while the seat talks to the other side; the seat hanging up completes it; the other
side hanging up returns the seat to the caller). We start it by giving the seat's channel the
transfer key (ivr/rejoin.py: out of its bridge and into a new one with its caller; not where every
seat's channel has the key, ``transfer_key``: features.conf's atxfer where Asterisk records), then AMI
``Atxfer`` on the seat's channel (it dials ``1@hotline-consult``, which dials the destination with the case), finish it
with ``Hangup`` (complete), ``CancelAtxfer`` (back to the caller) or the three-way feature code
(``PlayDTMF`` received on the seat's channel). Before finishing we look at the bridges in
Asterisk, never at our memory alone: a completion sent when the seat is back with its caller
would hang up the citizen.

A seat can do all of it from the phone too (hang up, ``*1`` cancel, ``*3`` three-way), which is
also the way after a controller restart (the consultation in progress is then unknown here).

What we remember of a consultation never outlives it in Asterisk: a step that fails (an AMI
error at any action) is checked against Asterisk's bridges, and so is a consultation found in
memory when the seat asks for another transfer. One that is over there (the seat back with its
caller, or its line gone) is ended here too — it never blocks the call's next transfer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import structlog

from acd.model import OFFER_PREFIX
from calls.handoff import Handoff, RedisHandoffs
from calls.model import CallOutcome
from calls.tracker import CallTracker
from common.privacy import mask_number
from ivr.dialplan.schema import TransferMode
from ivr.rejoin import rejoin, together_again
from ivr.transfer_events import TransferEvents, TransferState, final_state, publish_transfer, utc_now
from telephony.ami_types import AmiActionFailed, AmiError, AmiLink, AmiMessage, AmiNotConnected, set_variable
from telephony.dialplan_names import (
    CONSULT_ANSWERED_EVENT,
    CONSULT_CALL_VARIABLE,
    CONSULT_CALLER_CHANNEL_VARIABLE,
    CONSULT_CALLER_VARIABLE,
    CONSULT_CONTEXT,
    CONSULT_DIAL_VARIABLE,
    CONSULT_ENDED_EVENT,
    CONSULT_EXTEN,
    CONSULT_SEAT_CHANNEL_VARIABLE,
    CONSULTING_VARIABLE,
    HANDOFF_VARIABLE,
    THREE_WAY_CODE,
)

log = structlog.get_logger(__name__)
_STATE_UP = "6"
# what Atxfer "dials" on the seat's behalf; '#' ends Asterisk's digit collection at once
_CONSULT_KEYS = CONSULT_EXTEN + "#"


class ConsultRefused(ValueError):
    """The consultation cannot be finished that way now (the message says why)."""


class ConsultState(StrEnum):
    CALLING = "calling"  # the other side rings; the caller hears music
    TALKING = "talking"  # the seat talks to the other side
    THREE_WAY = "three_way"  # caller, seat and the other side together


@dataclass
class Consultation:
    call_id: str
    seat: str
    seat_channel: str
    caller_channel: str
    to: str
    mode: TransferMode
    allowed: tuple[TransferMode, ...]  # the destination's modes
    handoff: Handoff | None
    state: ConsultState = ConsultState.CALLING
    caller: str = ""  # masked (common/privacy.py): what the events name
    # until its start's last AMI step has answered (the rejoin, then Atxfer): a finish asked
    # meanwhile would act on a seat that is not consulting yet, and end here a consultation
    # that Asterisk then starts (CancelAtxfer is acknowledged whatever the seat is doing)
    starting: bool = True


@dataclass(frozen=True)
class _Bridges:
    """Where the seat is in Asterisk right now."""

    with_caller: bool  # the seat shares a bridge with its caller
    other_side_up: bool  # someone besides seat and caller, answered, in the seat's bridge


class Consultations:
    """The consultations of this platform's seats, by call id."""

    def __init__(
        self,
        *,
        ami: AmiLink,
        tracker: CallTracker,
        handoffs: RedisHandoffs,
        events: TransferEvents | None = None,
        clock: Callable[[], datetime] = utc_now,
        transfer_key: bool = False,
    ) -> None:
        """``transfer_key``: every seat's channel has the attended-transfer key (features.conf),
        so a consultation starts with Atxfer at once, without the rejoin."""
        self._ami = ami
        self._transfer_key = transfer_key
        self._tracker = tracker
        self._handoffs = handoffs
        self._events = events
        self._clock = clock
        self._by_call: dict[str, Consultation] = {}
        self.cleaned_up = 0  # consultations ended here because Asterisk had ended them (failures)
        ami.on_event("UserEvent", self._on_user_event)
        ami.on_event("AttendedTransfer", self._on_attended_transfer)
        ami.on_event("Hangup", self._on_hangup)

    def get(self, call_id: str) -> Consultation | None:
        return self._by_call.get(call_id)

    def view(self, call_id: str) -> dict[str, str] | None:
        """What a seat's console shows of the consultation."""
        consult = self._by_call.get(call_id)
        if consult is None:
            return None
        return {"call_id": call_id, "to": consult.to, "mode": str(consult.mode), "state": str(consult.state)}

    async def start(
        self,
        *,
        call_id: str,
        seat: str,
        caller: str,
        dial: str,
        to: str,
        mode: TransferMode,
        allowed: tuple[TransferMode, ...],
        handoff: Handoff | None,
    ) -> Consultation:
        """The seat's phone dials the destination; the caller hears music meanwhile."""
        record = self._tracker.get_live(call_id)
        if record is None:
            raise ConsultRefused("the call has ended")
        talk = await self._seat_channel(record.channel)
        if talk is None:
            raise ConsultRefused("the seat is not talking to the caller now")
        seat_channel, bridge = talk
        # '__': inherited through the Local channel Asterisk's transfer dials, onto the new leg
        variables = {
            CONSULT_DIAL_VARIABLE: dial,
            CONSULT_CALLER_VARIABLE: caller,
            CONSULT_CALL_VARIABLE: call_id,
            CONSULT_CALLER_CHANNEL_VARIABLE: record.channel,
            CONSULT_SEAT_CHANNEL_VARIABLE: seat_channel,
        }
        if handoff is not None:
            variables[HANDOFF_VARIABLE] = handoff.token
        consult = Consultation(
            call_id, seat, seat_channel, record.channel, to, mode, allowed, handoff, caller=mask_number(caller)
        )
        self._by_call[call_id] = consult  # before Atxfer: its events may come before its reply
        await self._publish(consult, TransferState.STARTED)
        atxfer_sent = caller_told = rejoin_sent = False
        try:
            for name, value in variables.items():
                await set_variable(self._ami, seat_channel, f"__{name}", value)
            if not self._transfer_key:
                rejoin_sent = True
                await rejoin(self._ami, seat_channel, record.channel, bridge)  # the seat gets the transfer key
            # the caller waits on the consultation until the other side answers or the seat is back
            # (told only now: a seat, or this controller, lost while they are rejoined leaves the
            # caller the ordinary after-seat path, not a failed transfer's — nothing was dialled)
            caller_told = True
            await set_variable(self._ami, record.channel, f"SHARED({CONSULTING_VARIABLE})", "1")
            atxfer_sent = True
            await self._ami.send_action(
                {"Action": "Atxfer", "Channel": seat_channel, "Exten": _CONSULT_KEYS, "Context": CONSULT_CONTEXT}
            )
        except AmiError as exc:
            # no reply to Atxfer (timeout, connection lost): it may have started after all —
            # kept only if Asterisk shows it; otherwise the seat is told it failed
            uncertain = atxfer_sent and not isinstance(exc, AmiActionFailed | AmiNotConnected)
            if uncertain and await self._consulting(consult) is True:
                log.warning("consult.started_without_reply", call_id=call_id, error=str(exc))
                consult.starting = False
                return consult
            if rejoin_sent and not atxfer_sent:  # never leave them waiting apart
                await together_again(self._ami, seat_channel, record.channel, bridge)
            await self._not_started(consult, str(exc), caller_told)
            raise
        except BaseException:
            await self._not_started(consult, "interrupted", caller_told)
            raise
        consult.starting = False
        log.info("consult.started", call_id=call_id, seat=seat, to=to, mode=str(mode))
        if self._by_call.get(call_id) is consult and consult.state is ConsultState.CALLING:
            await self._publish(consult, TransferState.RINGING)  # (not when its answer came first)
        return consult

    async def _publish(self, consult: Consultation, state: TransferState, status: str = "") -> None:
        """Tell the seat's desk (and the supervisors) where the consultation stands now."""
        await publish_transfer(
            self._events, self._clock(), call_id=consult.call_id, seat=consult.seat, to=consult.to,
            mode=consult.mode, state=state, caller=consult.caller, status=status,
        )  # fmt: skip

    async def _not_started(self, consult: Consultation, why: str, caller_told: bool) -> None:
        """A consultation that never began: forget it, and the caller does not wait on it."""
        if self._by_call.get(consult.call_id) is consult:
            del self._by_call[consult.call_id]
        self.cleaned_up += 1
        log.warning("consult.not_started", call_id=consult.call_id, error=why)
        await self._publish(consult, TransferState.FAILED, "not_started")
        if not caller_told:
            return
        with contextlib.suppress(AmiError):
            await set_variable(self._ami, consult.caller_channel, f"SHARED({CONSULTING_VARIABLE})", "")

    async def complete(self, call_id: str) -> None:
        """The seat leaves; the caller and the other side stay together."""
        consult = self._require(call_id)
        bridges = await self._bridges_or_end(consult)
        if bridges.with_caller and not bridges.other_side_up:
            await self._gone(consult, "the seat is back with its caller")
            raise ConsultRefused("no consultation in progress: you are talking to the caller")
        if not bridges.with_caller and not bridges.other_side_up:
            raise ConsultRefused("the other side has not answered yet: wait, or cancel")
        hangup = {"Action": "Hangup", "Channel": consult.seat_channel, "Cause": "16"}
        await self._act(consult, lambda: self._ami.send_action(hangup))
        log.info("consult.completed_by_seat", call_id=call_id, seat=consult.seat)

    async def cancel(self, call_id: str) -> None:
        """Back to the caller; the other side is hung up and the case stays here."""
        consult = self._require(call_id)
        bridges = await self._bridges_or_end(consult)
        if bridges.with_caller:
            if not bridges.other_side_up:
                await self._gone(consult, "the seat is back with its caller")
            raise ConsultRefused("no consultation in progress: you are talking to the caller")
        cancel = {"Action": "CancelAtxfer", "Channel": consult.seat_channel}
        await self._act(consult, lambda: self._ami.send_action(cancel))
        await self._ended(consult, "cancelled")

    async def three_way(self, call_id: str) -> None:
        """Caller, seat and the other side together; the seat may leave later (complete)."""
        consult = self._require(call_id)
        if TransferMode.THREE_WAY not in consult.allowed:
            raise ConsultRefused(f"{consult.to!r} takes no three-way call")
        bridges = await self._bridges_or_end(consult)
        if bridges.with_caller or not bridges.other_side_up:
            raise ConsultRefused("a three-way call needs the other side answered while you consult")
        await self._act(consult, lambda: self._merge(consult))

    async def _merge(self, consult: Consultation) -> None:
        for digit in THREE_WAY_CODE:  # as if the seat pressed it: Asterisk's atxferthreeway
            await self._ami.send_action(
                {"Action": "PlayDTMF", "Channel": consult.seat_channel, "Digit": digit, "Receive": "yes"}
            )

    async def in_progress(self, call_id: str) -> bool:
        """Whether the call has a consultation in progress — in Asterisk, not only in memory: one
        Asterisk has ended (a lost event, a failed step) is ended here and does not count.
        Raises AmiError when Asterisk cannot be asked."""
        consult = self._by_call.get(call_id)
        if consult is None:
            return False
        if await self._consulting(consult, raise_errors=True):
            return True
        await self._gone(consult, "found over in Asterisk")
        return False

    async def _act(self, consult: Consultation, action: Callable[[], Awaitable[object]]) -> None:
        """An AMI step of a consultation; if it fails, Asterisk's bridges say whether the
        consultation is over (then it ends here too) before the error is passed on."""
        try:
            await action()
        except AmiError as exc:
            log.warning("consult.step_failed", call_id=consult.call_id, error=str(exc))
            if await self._consulting(consult) is False:
                await self._gone(consult, f"step failed: {exc}")
            raise

    async def _consulting(self, consult: Consultation, raise_errors: bool = False) -> bool | None:
        """True while Asterisk still has the consultation (the seat away from its caller in a
        call, or all three together); False when it is over; None when Asterisk cannot say."""
        try:
            bridges = await self._bridges(consult)
        except ConsultRefused:
            return False  # the seat's line is in no call: nothing to consult in
        except AmiError:
            if raise_errors:
                raise
            return None
        if consult.state is ConsultState.THREE_WAY:
            return bridges.with_caller and bridges.other_side_up
        return not bridges.with_caller or bridges.other_side_up

    async def _bridges_or_end(self, consult: Consultation) -> _Bridges:
        """The bridges, for an action the seat asked for; a seat whose line is in no call has
        no consultation left: it ends here and the action is refused."""
        try:
            return await self._bridges(consult)
        except ConsultRefused:
            await self._gone(consult, "the seat's line is in no call")
            raise

    async def _gone(self, consult: Consultation, why: str) -> None:
        if self._by_call.get(consult.call_id) is not consult:
            return
        self.cleaned_up += 1
        log.warning("consult.cleaned_up", call_id=consult.call_id, why=why)
        await self._ended(consult, "failed")

    def _require(self, call_id: str) -> Consultation:
        consult = self._by_call.get(call_id)
        if consult is None:
            raise ConsultRefused("no consultation in progress for this call")
        if consult.starting:
            raise ConsultRefused("the consultation is still starting: try again in a moment")
        return consult

    async def _channels(self) -> list[AmiMessage]:
        reply = await self._ami.send_action({"Action": "CoreShowChannels"})
        return [e for e in reply.events if e.name == "CoreShowChannel"]

    async def _seat_channel(self, caller_channel: str) -> tuple[str, str] | None:
        """The seat's channel in the caller's bridge (an ACD offer channel), and that bridge."""
        channels = await self._channels()
        bridge = next((e.get("bridgeid") for e in channels if e.get("channel") == caller_channel), "")
        if not bridge:
            return None
        return next(
            (
                (e.get("channel"), bridge)
                for e in channels
                if e.get("bridgeid") == bridge and e.get("uniqueid").startswith(OFFER_PREFIX)
            ),
            None,
        )

    async def _bridges(self, consult: Consultation) -> _Bridges:
        channels = await self._channels()
        seat = next((e for e in channels if e.get("channel") == consult.seat_channel), None)
        if seat is None or not seat.get("bridgeid"):
            raise ConsultRefused("the seat's line is not in a call now")
        bridge = seat.get("bridgeid")
        others = [e for e in channels if e.get("bridgeid") == bridge and e.get("channel") != consult.seat_channel]
        with_caller = any(e.get("channel") == consult.caller_channel for e in others)
        other_side_up = any(
            e.get("channel") != consult.caller_channel and e.get("channelstate") == _STATE_UP for e in others
        )
        return _Bridges(with_caller, other_side_up)

    async def _ended(self, consult: Consultation, status: str) -> None:
        told = self._by_call.get(consult.call_id) is consult  # (its end told once, by whichever came first)
        if told:
            del self._by_call[consult.call_id]
        if status != "completed" and consult.handoff is not None:
            self._handoffs.settle_later(consult.handoff.token)  # the case stays here, with this call
        await self._tracker.amend(consult.call_id, {"tags": {"transfer_status": status}})
        log.info("consult.ended", call_id=consult.call_id, status=status)
        if told:
            await self._publish(consult, final_state(status), status)

    # Asterisk's events

    async def _on_user_event(self, event: AmiMessage) -> None:
        name = event.get("userevent")
        if name == CONSULT_ENDED_EVENT:
            await self._leg_ended(event)
            return
        if name != CONSULT_ANSWERED_EVENT:
            return
        consult = self._by_call.get(event.get("call"))
        if consult is None or consult.state is not ConsultState.CALLING:
            return
        consult.state = ConsultState.TALKING
        log.info("consult.answered", call_id=consult.call_id)
        await self._publish(consult, TransferState.TALKING)
        if consult.mode is TransferMode.THREE_WAY:
            await self._merge(consult)  # a three-way transfer: the caller joins as soon as they answer

    async def _leg_ended(self, event: AmiMessage) -> None:
        """The consultation leg hung up. A completed transfer was already settled by its
        AttendedTransfer event; otherwise Asterisk has put the seat back with its caller."""
        consult = self._by_call.get(event.get("call"))
        if consult is None or consult.state is ConsultState.THREE_WAY:
            return
        status = event.get("status").upper()
        if consult.state is ConsultState.CALLING and status != "ANSWER":
            await self._ended(consult, f"not_reached_{status.lower() or 'unknown'}")
        elif consult.state is ConsultState.TALKING:
            await self._ended(consult, "other_side_hung_up")

    async def _on_attended_transfer(self, event: AmiMessage) -> None:
        transferers = {event.get("origtransfererchannel"), event.get("secondtransfererchannel")}
        consult = next((c for c in self._by_call.values() if c.seat_channel in transferers), None)
        if consult is None:
            return
        if event.get("result").lower() != "success":
            log.warning("consult.transfer_failed", call_id=consult.call_id, result=event.get("result"))
            return
        if event.get("desttype").lower() == "threeway":
            consult.state = ConsultState.THREE_WAY
            await self._tracker.amend(
                consult.call_id, {"outcome": CallOutcome.TRANSFERRED, "tags": {"transfer_status": "three_way"}}
            )
            log.info("consult.three_way", call_id=consult.call_id)
            await self._publish(consult, TransferState.THREE_WAY)
            return
        await self._tracker.amend(consult.call_id, {"outcome": CallOutcome.TRANSFERRED})
        await self._ended(consult, "completed")

    async def _on_hangup(self, event: AmiMessage) -> None:
        uniqueid, channel = event.get("uniqueid"), event.get("channel")
        consult = self._by_call.get(uniqueid) or next(
            (c for c in self._by_call.values() if c.seat_channel == channel), None
        )
        if consult is None:
            return
        if consult.state is ConsultState.THREE_WAY:
            self._by_call.pop(consult.call_id, None)  # the record says three_way; the others talk on
            await self._publish(consult, TransferState.ENDED, "three_way")
        elif uniqueid == consult.call_id:
            await self._ended(consult, "caller_hung_up")
        # the seat hanging up while consulting completes the transfer: AttendedTransfer says how
