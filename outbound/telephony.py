"""What outbound asks of Asterisk: an Originate over the outbound trunk into the outbound
context (AMI underneath), and which of our channels still exist (after a restart)."""

from __future__ import annotations

import asyncio
from enum import StrEnum

import structlog

from telephony.ami_types import AmiActionFailed, AmiError, AmiLink, AmiMessage
from telephony.dialplan_names import OUTBOUND_CONTEXT, OUTBOUND_VARIABLE
from telephony.values import shown_number

log = structlog.get_logger(__name__)

ORIGINATE_GRACE_S = 15.0  # beyond the ring time, for the OriginateResponse to arrive
REASON_WAIT_S = 2.0  # after a "Failure" reply, for its OriginateResponse event


class DialOutcome(StrEnum):
    ANSWERED = "answered"  # the AGI has (or will have) the call
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # Asterisk refused it or could not place it
    UNKNOWN = "unknown"  # no word from Asterisk: the call may be on (settled later)


# OriginateResponse's Reason (Asterisk's AST_CONTROL_*): 4 answered, 5 busy, 3 no answer, 8 congestion
_REASONS = {"4": DialOutcome.ANSWERED, "5": DialOutcome.BUSY, "3": DialOutcome.NO_ANSWER, "1": DialOutcome.NO_ANSWER}


# the Hangup cause (Q.850) of an Originate whose Reason says nothing (0): 17 busy, 18/19 no answer
_CAUSES = {
    "17": DialOutcome.BUSY,
    "18": DialOutcome.NO_ANSWER,
    "19": DialOutcome.NO_ANSWER,
    "16": DialOutcome.NO_ANSWER,
}


def outcome_of(event: AmiMessage, hangup_cause: str = "") -> DialOutcome:
    """An OriginateResponse's outcome; ``hangup_cause``: the channel's Hangup cause, if heard."""
    if event.get("response").lower() == "success":
        return DialOutcome.ANSWERED
    reason = event.get("reason")
    outcome = _REASONS.get(reason) or _CAUSES.get(hangup_cause, DialOutcome.FAILED)
    log.info("outbound.originate_failed", reason=reason, cause=hangup_cause, outcome=str(outcome))
    return outcome


class OutboundTelephony:
    """Places the calls; hears their OriginateResponse (by the channel id we gave)."""

    def __init__(self, ami: AmiLink, trunk: str) -> None:
        self._ami = ami
        self._trunk = trunk
        self._pending: dict[str, asyncio.Future[DialOutcome]] = {}
        self._causes: dict[str, str] = {}  # a dialled channel's Hangup cause
        self._dialling: set[str] = set()

    @property
    def connected(self) -> bool:
        return self._ami.connected

    async def on_originate_response(self, event: AmiMessage) -> None:
        uniqueid = event.get("uniqueid")
        future = self._pending.get(uniqueid)
        if future is not None and not future.done():
            future.set_result(outcome_of(event, self._causes.get(uniqueid, "")))

    async def on_hangup(self, event: AmiMessage) -> None:
        uniqueid = event.get("uniqueid")
        if uniqueid in self._dialling:
            self._causes[uniqueid] = event.get("cause")

    async def dial(self, job_id: str, channel_id: str, number: str, ring_s: int, caller_id: str) -> DialOutcome:
        """Ring ``number`` over the trunk; the outcome once Asterisk knows it."""
        self._dialling.add(channel_id)
        try:
            outcome = await self._dial(job_id, channel_id, number, ring_s, caller_id)
            if outcome is DialOutcome.FAILED:  # the Hangup (with its cause) may come after the response
                for _ in range(10):
                    if channel_id in self._causes:
                        break
                    await asyncio.sleep(0.1)
                outcome = _CAUSES.get(self._causes.get(channel_id, ""), outcome)
            return outcome
        finally:
            self._dialling.discard(channel_id)
            self._causes.pop(channel_id, None)

    async def _dial(self, job_id: str, channel_id: str, number: str, ring_s: int, caller_id: str) -> DialOutcome:
        digits = shown_number(number)
        if not digits:
            return DialOutcome.FAILED
        future: asyncio.Future[DialOutcome] = asyncio.get_running_loop().create_future()
        self._pending[channel_id] = future
        try:
            try:
                reply = await self._ami.send_action(
                    {
                        "Action": "Originate",
                        "Channel": f"PJSIP/{digits}@{self._trunk}",
                        "Context": OUTBOUND_CONTEXT,
                        "Exten": "s",
                        "Priority": "1",
                        "Async": "true",
                        "Timeout": str(ring_s * 1000),
                        "ChannelId": channel_id,
                        "CallerID": f'"12345" <{shown_number(caller_id, "12345")}>',
                        "Variable": f"{OUTBOUND_VARIABLE}={job_id}",
                    },
                    timeout_s=ring_s + ORIGINATE_GRACE_S,
                )
                for event in reply.events:
                    if event.name == "OriginateResponse":
                        return outcome_of(event, self._causes.get(channel_id, ""))
            except AmiActionFailed as exc:
                # an unanswered async Originate ends in "Failure": its OriginateResponse (also an
                # event) says why (busy, no answer); without one, Asterisk refused the action
                try:
                    async with asyncio.timeout(REASON_WAIT_S):
                        return await future
                except TimeoutError:
                    log.warning("outbound.originate_refused", job=job_id, error=str(exc))
                    return DialOutcome.FAILED
            except AmiError as exc:
                log.warning("outbound.originate_unconfirmed", job=job_id, error=str(exc))
            try:
                async with asyncio.timeout(ring_s + ORIGINATE_GRACE_S):
                    return await future
            except TimeoutError:
                return DialOutcome.UNKNOWN
        finally:
            self._pending.pop(channel_id, None)

    async def live_channels(self) -> set[str]:
        """The uniqueids of every channel Asterisk has now (CoreShowChannels)."""
        reply = await self._ami.send_action({"Action": "CoreShowChannels"})
        return {e.get("uniqueid") for e in reply.events if e.name == "CoreShowChannel"}
