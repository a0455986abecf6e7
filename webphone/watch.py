"""A browser seat whose phone went away: its websocket closed (the page was closed, the network
dropped), Asterisk removed its contact and says the device is UNAVAILABLE (AMI
``DeviceStateChange``). The seat is paused ("phone lost": the ACD offers it nothing it cannot
answer); a conversation it was in loses the seat's leg at once (hung up here, not after the
media timeout), and its caller is marked so that the after-seat step puts them back in the
queue they came from (ivr/after_seat.py) instead of ending the call.

A contact removed because the seat registered again elsewhere (a second tab or device: the AOR
keeps one contact, ``remove_existing``; Asterisk adds the new one, then removes the old) is not a
lost phone: before acting, the watch asks Asterisk whether the seat still has a contact
(``PJSIP_AOR(<seat>,contact)``) that answers (``PJSIP_CONTACT(<id>,status)`` not Unreachable) and
leaves a seat that does alone.

A page that vanished without closing its socket (a frozen or cut-off PC) keeps its contact; the
browser AOR's qualify (SIP OPTIONS every ``webrtc.qualify_s``) finds it ``Unreachable`` within
seconds, and the seat is lost the same way (before the 30 s media timeout would end its leg
as an ordinary hang-up)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

import structlog

from acd.seat import Seat, SeatState
from calls.model import CallChanges, CallRecord
from telephony.ami_types import AmiError, AmiMessage, AmiResponse

log = structlog.get_logger(__name__)

LOST_REASON = "phone lost"  # the seat's pause reason (not_ready)
SEAT_LOST_TAG = "seat_lost"  # on the caller's record: the seat's phone dropped mid-call (the seat id)
_CONTACT_ID = re.compile(r"[0-9A-Za-z_-]{1,64};@[0-9a-f]{1,64}")  # <aor>;@<hash of the URI>, Asterisk's
_GONE = ("Unreachable", "Removed")  # PJSIP_CONTACT(...,status) of a contact that does not answer
_BUSY = (SeatState.READY, SeatState.RINGING, SeatState.ON_CALL, SeatState.WRAP_UP)


class Seats(Protocol):
    def get(self, seat_id: str) -> Seat: ...

    async def pause(self, seat_id: str, reason: str) -> Seat: ...


class Tracker(Protocol):
    async def amend(self, call_id: str, changes: CallChanges) -> None: ...


class AmiLink(Protocol):
    def on_event(self, name: str, handler: Callable[[AmiMessage], Awaitable[None]]) -> None: ...

    async def send_action(
        self, fields: Mapping[str, str | list[str]], timeout_s: float | None = None
    ) -> AmiResponse: ...


def lost_seat(event: AmiMessage, browser_seats: frozenset[str]) -> str | None:
    """The browser seat whose phone this event says is gone, or None. Pure.

    ``ContactStatus`` Removed: its websocket closed (Asterisk removes the contact at once, even
    mid-call); Unreachable: it did not answer the AOR's qualify (a page gone without closing
    its socket); ``DeviceStateChange`` UNAVAILABLE: no contact and no call."""
    if event.name == "ContactStatus":
        gone = event.get("ContactStatus") in ("Removed", "Unreachable")
        seat = event.get("AOR")
    else:
        device = event.get("Device")
        gone = device.startswith("PJSIP/") and event.get("State") == "UNAVAILABLE"
        seat = device.removeprefix("PJSIP/")
    return seat if gone and seat in browser_seats else None


class PhoneWatch:
    """Watches the browser seats' devices (telephony events) and acts on a lost phone."""

    def __init__(
        self,
        ami: AmiLink,
        seats: Seats,
        tracker: Tracker,
        browser_seats: Iterable[str],
        live_records: Callable[[], Iterable[CallRecord]],
    ) -> None:
        self._ami = ami
        self._seats = seats
        self._tracker = tracker
        self._browser = frozenset(browser_seats)
        self._live = live_records
        if self._browser:
            ami.on_event("DeviceStateChange", self._on_device)
            ami.on_event("ContactStatus", self._on_device)

    async def _on_device(self, event: AmiMessage) -> None:
        seat_id = lost_seat(event, self._browser)
        if seat_id is None:
            return
        if await self._still_reachable(seat_id):
            log.info("webphone.contact_replaced", seat=seat_id)  # registered again elsewhere: not lost
            return
        await self.phone_lost(seat_id)

    async def _still_reachable(self, seat_id: str) -> bool:
        """Whether Asterisk still has a contact for the seat (AMI ``Getvar`` of ``PJSIP_AOR``)
        that is not Unreachable (``PJSIP_CONTACT``). Asterisk not answering: False (the event
        said the phone is gone; act on it)."""
        try:
            contacts = await self._getvar(f"PJSIP_AOR({seat_id},contact)")
            for contact in filter(None, (c.strip() for c in contacts.split(","))):
                if _CONTACT_ID.fullmatch(contact) is None:
                    return True  # not one we can ask about: a contact is there, leave the seat alone
                if await self._getvar(f"PJSIP_CONTACT({contact},status)") not in _GONE:
                    return True
        except AmiError as exc:
            log.warning("webphone.contacts_unknown", seat=seat_id, error=str(exc))
        return False

    async def _getvar(self, variable: str) -> str:
        reply = await self._ami.send_action({"Action": "Getvar", "Variable": variable}, timeout_s=2.0)
        return reply.response.get("value").strip()

    async def phone_lost(self, seat_id: str) -> None:
        seat = self._seats.get(seat_id)
        log.warning("webphone.lost", seat=seat_id, state=seat.state.value)
        if seat.state is SeatState.ON_CALL:
            for record in self._live():
                if record.seat == seat_id and record.ended_at is None:
                    await self._tracker.amend(record.call_id, {"tags": {SEAT_LOST_TAG: seat_id}})
            try:  # the seat's leg: its caller leaves the bridge for the after-seat step, requeued there
                await self._ami.send_action({"Action": "Hangup", "Channel": f"/^PJSIP\\/{seat_id}-/", "Cause": "16"})
            except AmiError as exc:
                log.warning("webphone.hangup_failed", seat=seat_id, error=str(exc))
        if seat.state in _BUSY:
            await self._seats.pause(seat_id, LOST_REASON)
