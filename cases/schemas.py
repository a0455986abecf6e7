"""The case desk's request and response bodies as pydantic models: the OpenAPI document's
schemas (web/openapi.py). The body is still checked by ``parse_case`` (cases/model.py), which
names the field at fault; these models say the same for clients."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cases.model import MAX_LOCATION_CHARS, MAX_MATTER_TYPE_CHARS, MAX_REQUEST_CHARS, CaseOutcome
from tickets.model import TicketCategory


class CaseBody(BaseModel):
    """POST /api/v1/calls/{call_id}/case."""

    category: TicketCategory
    unit: str = Field(description="a unit id of GET /api/v1/units", pattern=r"^[a-z0-9_-]{1,64}$")
    outcome: CaseOutcome
    request: str = Field(max_length=MAX_REQUEST_CHARS, description="the citizen's words, as the seat wrote them")
    matter_type: str = Field(default="", max_length=MAX_MATTER_TYPE_CHARS)
    location: str = Field(default="", max_length=MAX_LOCATION_CHARS)
    knowledge_entry: str = Field(default="", description="required when outcome is answered")


class LinkBody(BaseModel):
    """POST /api/v1/calls/{call_id}/link: an open case to add this call to."""

    ticket_id: str = Field(min_length=1, max_length=64)


class CaseAnswer(BaseModel):
    """The case a call has (registered, linked, or already there: 409 with ``error``)."""

    model_config = ConfigDict(extra="allow")

    case_id: str
    ticket: str = Field(description="the ticket's path in this API")
    state: str | None = None
    source: str | None = None
    linked_call_ids: list[str] | None = None
    error: str | None = None


class CaseConflict(BaseModel):
    """409: the call has a case already (``case_id``, ``ticket``), or the ticket is closed."""

    error: str
    case_id: str | None = None
    ticket: str | None = None


class CallerHistory(BaseModel):
    """A call's caller: earlier calls and cases (``caller_number`` whole for the seat's own call)."""

    model_config = ConfigDict(extra="allow")

    call_id: str
    caller: str
    case_id: str | None
    caller_number: str | None = None
    window_days: int
    calls: list[dict[str, Any]] = Field(description="the caller's other calls of the window, newest first")
    open_cases: list[dict[str, Any]]
