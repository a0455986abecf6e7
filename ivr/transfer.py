"""Transfers that carry the case: hand-off records, and a seat's transfer of its caller (API).

A transfer to a destination whose trunk leads to another 12345 platform (``sip.trunks.<name>.
platform``) writes a hand-off record to the shared Redis; its token rides on the channel
(``_HOTLINE_HANDOFF``, inherited by the new leg) and in a SIP header the receiving platform
reads (calls/handoff.py, ivr/entry.py).

A seat hands its caller on blind (the caller leaves the seat's bridge for the transfer context)
or starts a consultation (attended or three-way, ivr/consult.py): Asterisk's own attended
transfer holds the caller while the seat talks to the other side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from calls.handoff import Handoff, RedisHandoffs, new_token
from calls.model import CallRecord
from calls.tracker import CallTracker
from common.privacy import mask_number
from ivr.consult import Consultations, ConsultRefused
from ivr.dialplan.registry import DialplanRegistry
from ivr.dialplan.schema import Destination, DestinationKind, TransferMode
from ivr.transfer_events import TransferEvents, TransferState, publish_transfer
from telephony.ami_types import AmiError, AmiLink, set_variable
from telephony.dialplan_names import HANDOFF_VARIABLE, TRANSFER_CONTEXT, TRANSFER_DIAL_VARIABLE
from telephony.links import LinkState

log = structlog.get_logger(__name__)


class PlatformAvailability(Protocol):
    async def has_free_seat(self, platform: str) -> bool | None: ...


class LinkStates(Protocol):
    async def state(self, trunk: str) -> LinkState: ...


class TransferRefused(ValueError):
    """The transfer cannot be made (unknown destination, call not with a seat, Asterisk refused)."""


class TransferInProgress(TransferRefused):
    """This call is being transferred now, or its seat handed it on blind already (a double click)."""


async def create_handoff(
    handoffs: RedisHandoffs,
    *,
    platform: str,
    record: CallRecord | None,
    call_id: str,
    to: str,
    at: datetime,
    seat: str = "",
    note: str = "",
) -> Handoff:
    """The case as the next platform's seat should see it (written before the call leaves when
    Redis answers within the call path's budget, else in the background)."""
    return await handoffs.create_on_call_path(
        Handoff(
            token=new_token(),
            from_platform=platform,
            from_call_id=call_id,
            to=to,
            caller=record.caller if record else "",
            ivr_path=record.ivr_path if record else (),
            tags=dict(record.tags) if record else {},
            seat=seat,
            note=note,
            created_at=at,
        )
    )


@dataclass(frozen=True)
class TransferStarted:
    destination: str
    dial: str
    mode: TransferMode
    handoff: Handoff | None


class SeatTransfers:
    """A seat hands its caller on: blind (the caller leaves the seat's bridge for the transfer
    context, which dials the destination with the case attached), or after talking to the other
    side first (attended, three-way: a consultation)."""

    def __init__(
        self,
        *,
        platform: str,
        tracker: CallTracker,
        dialplans: DialplanRegistry,
        ami: AmiLink,
        handoffs: RedisHandoffs,
        platform_trunks: Mapping[str, str],
        trunks: frozenset[str],
        availability: PlatformAvailability,
        consultations: Consultations,
        clock: Callable[[], datetime],
        links: LinkStates | None = None,
        events: TransferEvents | None = None,
    ) -> None:
        self._platform = platform
        self._events = events  # blind transfers' transfer.state (consultations publish their own)
        self._links = links
        self._tracker = tracker
        self._dialplans = dialplans
        self._ami = ami
        self._handoffs = handoffs
        self._platform_trunks = platform_trunks
        self._trunks = trunks  # config.yaml's outbound trunks
        self._availability = availability
        self._consultations = consultations
        self._clock = clock
        self._busy: set[str] = set()  # calls with a transfer being made now
        # call → the seat binding (seat, answered at) that handed it on blind: that seat has let
        # the caller go; a repeat would redirect the caller twice. A later seat may transfer again.
        self._handed_on: dict[str, tuple[str, datetime | None]] = {}

    def destinations(self) -> Mapping[str, Destination]:
        """Where this platform's seats may hand callers on (dialplan and directory)."""
        return self._dialplans.current.destinations

    async def link_state(self, trunk: str) -> LinkState:
        """The state of the link a trunk to another platform is (UNKNOWN for other trunks)."""
        if self._links is None or trunk not in self._platform_trunks:
            return LinkState.UNKNOWN
        return await self._links.state(trunk)

    async def platform_links(self) -> dict[str, LinkState]:
        """Each platform this one has a trunk to → its link's state (up when any trunk there is)."""
        found: dict[str, LinkState] = {}
        rank = {LinkState.UNKNOWN: 0, LinkState.DOWN: 1, LinkState.UP: 2}
        trunks = list(self._platform_trunks.items())
        # asked all at once: an Asterisk slow to answer costs one action timeout, not one per trunk
        states = await asyncio.gather(*(self.link_state(trunk) for trunk, _ in trunks))
        for (_trunk, platform), state in zip(trunks, states, strict=True):
            if rank[state] >= rank[found.get(platform, LinkState.UNKNOWN)]:
                found[platform] = state
        return found

    async def transfer(
        self, call_id: str, to: str, seat: str, note: str, mode: TransferMode = TransferMode.BLIND
    ) -> TransferStarted:
        """One transfer of a call at a time, and a blind one once per seat binding: a second
        request meanwhile (a double click) is refused with TransferInProgress, nothing sent."""
        for ended in [c for c in self._handed_on if self._tracker.get_live(c) is None]:
            del self._handed_on[ended]
        record = self._tracker.get_live(call_id)
        if record is None or not record.seat:
            raise TransferRefused("only a call in progress with a seat can be transferred")
        if call_id in self._busy:
            raise TransferInProgress("a transfer of this call is being made now; see the call record for how it ends")
        if self._handed_on.get(call_id) == (record.seat, record.seat_answered_at):
            raise TransferInProgress(f"seat {record.seat} has handed this caller on already")
        self._busy.add(call_id)
        try:
            return await self._transfer(record, to, seat, note, mode)
        finally:
            self._busy.discard(call_id)

    async def _transfer(self, record: CallRecord, to: str, seat: str, note: str, mode: TransferMode) -> TransferStarted:
        call_id = record.call_id
        destinations = self.destinations()
        if to not in destinations:
            raise TransferRefused(f"unknown destination {to!r} (known: {', '.join(destinations)})")
        destination = destinations[to]
        if mode not in destination.modes:
            allowed = ", ".join(destination.modes)
            raise TransferRefused(f"{to!r} may be handed a caller only so: {allowed} (not {mode})")
        if destination.trunk not in self._trunks:
            raise TransferRefused(f"{to!r} needs the trunk {destination.trunk!r}, which this platform does not have")
        try:
            consulting = await self._consultations.in_progress(call_id)  # as Asterisk has it
        except AmiError as exc:
            raise TransferRefused(f"Asterisk did not answer; try again: {exc}") from None
        if consulting:
            raise TransferRefused("a consultation is in progress: complete or cancel it first")
        dial = f"PJSIP/{destination.number}@{destination.trunk}"
        target = self._platform_trunks.get(destination.trunk)
        if target and await self.link_state(destination.trunk) is LinkState.DOWN:
            # the link does not answer its probes: ringing would only keep the caller waiting
            raise TransferRefused(f"the link to {target} is down; the caller stays with you")
        if target and await self._availability.has_free_seat(target) is False:
            # all its seats busy: the caller stays with this seat, who may try again or take a message
            raise TransferRefused(f"{target} has no free seat now; the caller stays with you")
        handoff = None
        if target:
            handoff = await create_handoff(
                self._handoffs, platform=self._platform, record=record, call_id=call_id, to=to,
                at=self._clock(), seat=seat, note=note,
            )  # fmt: skip
        kind = DestinationKind.PLATFORM if target else destination.kind
        try:
            if mode is TransferMode.BLIND:
                await self._blind(record.channel, dial, handoff)
                self._handed_on[call_id] = (record.seat, record.seat_answered_at)
                await publish_transfer(
                    self._events, self._clock(), call_id=call_id, seat=record.seat or seat, to=to,
                    mode=mode, state=TransferState.STARTED, caller=mask_number(record.caller),
                )  # fmt: skip
            else:
                await self._consultations.start(
                    call_id=call_id,
                    seat=seat,
                    caller=record.caller,
                    dial=dial,
                    to=to,
                    mode=mode,
                    allowed=destination.modes,
                    handoff=handoff,
                )
        except (AmiError, ConsultRefused) as exc:
            if handoff is not None:
                self._handoffs.settle_later(handoff.token)  # nothing left: it must not expire into a ticket
            reason = str(exc) if isinstance(exc, ConsultRefused) else f"Asterisk did not take the transfer: {exc}"
            raise TransferRefused(reason) from None
        tags = {"transfer_by": seat, "transfer_kind": str(kind), "transfer_mode": str(mode)}
        tags |= {"handoff": handoff.token} if handoff else {}
        await self._tracker.amend(call_id, {"transfer_to": f"{to}:{destination.number}", "tags": tags})
        log.info("transfer.started", call_id=call_id, to=to, seat=seat, mode=str(mode), handoff=bool(handoff))
        return TransferStarted(to, dial, mode, handoff)

    async def _blind(self, channel: str, dial: str, handoff: Handoff | None) -> None:
        if handoff is not None:
            await set_variable(self._ami, channel, f"_{HANDOFF_VARIABLE}", handoff.token)
        await set_variable(self._ami, channel, TRANSFER_DIAL_VARIABLE, dial)
        await self._ami.send_action(
            {"Action": "Redirect", "Channel": channel, "Context": TRANSFER_CONTEXT, "Exten": "s", "Priority": "1"}
        )
