"""The request and response bodies of the app shell's routes (api_calls, api_seats, api_tickets,
api_ops, api_network, api_pages), as pydantic models: the OpenAPI document's schemas
(web/openapi.py), checked against live answers by tests/unit/test_openapi.py.

Times are ISO 8601 strings (``format: date-time``); rates are shares 0–1, null when there is
nothing to count (no score is not 100 %).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ivr.dialplan.schema import TransferMode
from tickets.model import DeadlineKind, Ticket, TicketState

Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]  # ISO 8601


class _Open(BaseModel):
    """A body that may grow fields: clients ignore what they do not know."""

    model_config = ConfigDict(extra="allow")


class Me(BaseModel):
    name: str
    role: Literal["seat", "supervisor", "admin"]
    seat: str | None


class Health(_Open):
    status: Literal["ok", "degraded"]
    components: dict[str, str] = Field(description="ami, redis, agi, spool, asr_worker: up | down | slow | …")
    reasons: list[str] = []
    platform: str | None = None
    version: str | None = None


class DialplanStatus(_Open):
    version: str


class CallView(BaseModel):
    """A call record; the caller's number and name masked."""

    call_id: str
    platform: str
    caller: str
    caller_name: str
    called: str
    state: str
    started_at: Time
    answered_at: Time | None
    ended_at: Time | None
    ended_at_estimated: bool  # the hang-up was not seen: ended_at is when the controller noticed
    ivr_path: list[str]
    digits: list[str]
    tags: dict[str, str]
    survey_score: int | None
    queue: str | None
    queued_at: Time | None
    seat: str | None
    seat_answered_at: Time | None
    transfer_to: str | None
    dialplan_version: str | None
    outcome: str | None
    hangup_cause: str | None
    has_recording: bool
    has_call_recording: bool
    case_id: str | None
    direction: Literal["inbound", "outbound"]  # outbound: a seat called the citizen back (dialback/)


class CallList(BaseModel):
    calls: list[CallView]


class CallbackView(BaseModel):
    """A caller to call back: the number whole (it is to be dialled; the read is audited)."""

    caller: str
    platform: str
    first_missed_at: Time
    last_missed_at: Time
    attempts: int
    last_call_id: str
    last_ivr_path: list[str]


class CallbackList(BaseModel):
    callbacks: list[CallbackView]


class AuditList(BaseModel):
    audit: list[dict[str, Any]] = Field(description="who, role, action, call_id, result, remote, platform, at")


class SeatView(BaseModel):
    """A seat's state, its 24 h figures (absent while the records store is away) and work."""

    seat: str
    state: str
    reason: str | None
    since: Time | None
    missed_in_a_row: int
    calls_taken: int
    answered_24h: int | None = None
    average_talk_24h_s: float | None = None
    surveys_24h: int | None = None
    satisfaction_rate_24h: float | None = None
    wrap_up_s: float | None
    paused_s: float | None
    pause_s_by_reason: dict[str, float]
    disposition_due: bool
    last_call: str | None
    current: dict[str, Any] | None = Field(
        default=None, description="the seat's call now (for the seat itself and supervisors)"
    )


class SeatList(BaseModel):
    seats: list[SeatView]


class SeatChangeBody(BaseModel):
    """POST /api/v1/seats/{seat_id}/{action}: pause takes ``reason``, disposition ``code``."""

    reason: str | None = Field(default=None, description="pause: a pause reason's code (none: not ready)")
    code: str | None = Field(default=None, description="disposition: the wrap-up code of the seat's last call")


class QueueView(BaseModel):
    queue: str
    waiting_now: int
    callbacks_waiting: int
    longest_wait_now_s: float
    offered: int
    answered: int
    answered_within_15s: int
    abandoned: int
    overflowed: int
    answer_rate: float | None
    abandon_rate: float | None
    service_level_15s: float | None
    average_speed_of_answer_s: float
    average_talk_s: float
    surveys: int
    satisfaction_rate: float | None


class QueueList(BaseModel):
    window_hours: int
    surveys: int
    satisfaction_rate: float | None
    queues: list[QueueView]


def _without_recording(schema: dict[str, Any]) -> None:
    schema["properties"].pop("recording", None)  # a spool path is the server's, never shown


class TicketView(Ticket):
    """A ticket; the caller masked, the deadlines it is past named, no spool path."""

    model_config = ConfigDict(json_schema_extra=_without_recording)

    overdue: list[DeadlineKind]
    has_audio: bool
    allowed: list[TicketState] = Field(description="the states POST …/transition may move it to")


class TicketList(BaseModel):
    tickets: list[TicketView]


class TransitionBody(BaseModel):
    to: TicketState = Field(description="the target state")
    note: str = Field(default="", max_length=500)


class ParkedJob(BaseModel):
    recording: str
    error: str
    attempts: int
    parked_at: Time


class ParkedList(BaseModel):
    parked: list[ParkedJob]


class Queued(BaseModel):
    queued: str


class TransferBody(BaseModel):
    to: str = Field(description="a destination of GET /api/v1/destinations")
    mode: TransferMode = TransferMode.BLIND
    note: str = Field(default="", max_length=500)


class TransferAnswer(BaseModel):
    call_id: str
    to: str
    mode: str
    handoff: dict[str, Any] | None


class ConsultAnswer(BaseModel):
    call_id: str
    action: str


class Consultation(_Open):
    call_id: str


class Destination(_Open):
    to: str
    name: str
    modes: list[str]


class DestinationList(BaseModel):
    destinations: list[Destination]


class PlatformList(BaseModel):
    platforms: list[dict[str, Any]]
