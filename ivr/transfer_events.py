"""What a seat's transfer says on the controller's event bus as it goes (``transfer.state``): the
seat's desk is sent each change (cases/seat_events.py routes it by ``seat``), so a consultation
someone else started for the seat's call (a supervisor through the API) shows on its desk at once,
and the desk never polls for one. No whole caller number is in it (``caller`` is masked).
See docs/api.md, "Seat events"."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

TRANSFER_EVENT = "transfer.state"


class TransferState(StrEnum):
    STARTED = "started"  # asked for: Asterisk is being told (blind: the caller is redirected)
    RINGING = "ringing"  # the other side rings; the caller hears music
    TALKING = "talking"  # the seat talks to the other side
    THREE_WAY = "three_way"  # caller, seat and the other side together
    COMPLETED = "completed"  # the caller and the other side are together; the seat is out
    BACK_TO_CALLER = "back_to_caller"  # cancelled, not reached, or the other side hung up
    FAILED = "failed"  # it never started, a blind transfer was not answered, or Asterisk ended it
    ENDED = "ended"  # the caller hung up, or the seat left a three-way call


FINAL_STATES = frozenset(
    {TransferState.COMPLETED, TransferState.BACK_TO_CALLER, TransferState.FAILED, TransferState.ENDED}
)


class TransferEvents(Protocol):
    """The controller's event bus (acd/events.py ``EventBus``)."""

    async def publish(self, kind: str, at: datetime, **fields: Any) -> None: ...


def final_state(status: str) -> TransferState:
    """The state of a consultation that ended with the record's ``transfer_status``."""
    if status == "completed":
        return TransferState.COMPLETED
    if status in ("cancelled", "other_side_hung_up") or status.startswith("not_reached_"):
        return TransferState.BACK_TO_CALLER
    if status == "caller_hung_up":
        return TransferState.ENDED
    return TransferState.FAILED


def utc_now() -> datetime:
    return datetime.now(UTC)


async def publish_transfer(
    events: TransferEvents | None,
    at: datetime,
    *,
    call_id: str,
    seat: str,
    to: str,
    mode: str,
    state: TransferState,
    caller: str,
    status: str = "",
) -> None:
    """Publish one ``transfer.state`` event (``caller`` must be masked already); nothing without
    a bus. ``status``: the record's ``transfer_status`` when the transfer is over."""
    if events is None or not seat:
        return
    fields: dict[str, Any] = {
        "call_id": call_id,
        "seat": seat,
        "to": to,
        "mode": str(mode),
        "state": str(state),
        "caller": caller,
    }
    if status:
        fields["status"] = status
    await events.publish(TRANSFER_EVENT, at, **fields)
