"""The callback desk's request and response bodies as pydantic models: the OpenAPI document's
schemas (web/openapi.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]  # ISO 8601


class DeskEntry(BaseModel):
    """A missed caller to call back, as a seat sees it: the number masked, an ``entry`` id to click."""

    entry: str = Field(description="what POST …/callback names (the id of the last call it missed)")
    caller: str = Field(description="masked")
    first_missed_at: Time
    last_missed_at: Time
    attempts: int = Field(description="missed calls")
    tries: int = Field(description="seats' callbacks the citizen did not answer")
    last_try_at: Time | None
    last_try_result: str
    last_ivr_path: list[str]


class DialbackView(BaseModel):
    """A seat's callback in progress (its phone rings, then the citizen's)."""

    call_id: str = Field(description="the call record's id")
    seat: str
    caller: str = Field(description="masked")
    state: str = Field(description="seat_ringing, talking")
    blended: bool


class DeskList(BaseModel):
    callbacks: list[DeskEntry]
    inbound_waiting: int = Field(description="callers waiting now: 回拨 is refused (409) while any wait")
    held_by: str = Field(
        description="inbound first: what holds new callbacks ('inbound_waiting', 'service_level'; '' : none)"
    )
    blended: bool = Field(description="acd.blended_callbacks: idle seats are offered callbacks")
    in_progress: list[DialbackView] = Field(description="this seat's callback, if any")


class CallBackRequest(BaseModel):
    """Exactly one of ``entry`` (a callback entry) or ``ticket_id`` (a case: its caller)."""

    entry: str | None = Field(default=None, max_length=128)
    ticket_id: str | None = Field(default=None, max_length=128)
