"""The case ticket (工单) as a value: what a caller asked, where it is, and its clocks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class TicketCategory(StrEnum):
    """The seed's five kinds of request; they set the resolve deadline (5 or 15 working days)."""

    CONSULTATION = "consultation"  # 咨询
    SERVICE_REQUEST = "service_request"  # 求助
    SUGGESTION = "suggestion"  # 建议
    COMPLAINT = "complaint"  # 投诉
    REPORT = "report"  # 举报


CATEGORY_TAG = "category"  # set by a dialplan `set` node, e.g. after "press 2 for complaints"


def category_from_tags(tags: Mapping[str, str]) -> TicketCategory:
    """The category the IVR tagged, else consultation (the shortest clock a seat may change)."""
    try:
        return TicketCategory(tags.get(CATEGORY_TAG, ""))
    except ValueError:
        return TicketCategory.CONSULTATION


class TicketSource(StrEnum):
    """How the request reached the hotline."""

    VOICEMAIL = "voicemail"  # a message left out of hours or when no seat was free
    PHONE = "phone"  # a seat took the call
    TRANSFER = "transfer"  # handed over by another platform (province ↔ prefecture)


class TicketState(StrEnum):
    """The seed's stages, as the states a ticket moves through."""

    ACCEPTED = "accepted"  # 受理
    DISPATCHED = "dispatched"  # 分办/转办: sent to the responsible unit
    SIGNED = "signed"  # 签收: the unit took it
    RETURNED = "returned"  # 退回: the unit says it is not theirs; the hotline dispatches again
    IN_PROGRESS = "in_progress"  # 办理
    EXTENDED = "extended"  # 延期: the hotline granted more time (at most twice)
    RESOLVED = "resolved"  # 办结
    VISITED = "visited"  # 回访: the caller was asked; the ticket is closed

    @property
    def is_open(self) -> bool:
        """Whether the request is still being handled (repeat calls merge into open tickets)."""
        return self not in (TicketState.RESOLVED, TicketState.VISITED)


class DeadlineKind(StrEnum):
    """The clocks of a ticket, as the overdue list names them."""

    DISPATCH = "dispatch"
    SIGN = "sign"
    RETURN = "return"
    RESOLVE = "resolve"


class Word(BaseModel):
    """One recognised word and where it is in the recording (seconds)."""

    model_config = ConfigDict(frozen=True)

    word: str
    start: float
    end: float
    conf: float


class Transcript(BaseModel):
    """What the recogniser heard; ``confidence`` is the mean word confidence (0 with no words)."""

    model_config = ConfigDict(frozen=True)

    text: str = ""
    words: tuple[Word, ...] = ()
    confidence: float = 0.0


class Deadlines(BaseModel):
    """When each step is due. Sign-for and return windows start only when their step happens."""

    model_config = ConfigDict(frozen=True)

    dispatch_by: datetime
    resolve_by: datetime
    sign_by: datetime | None = None
    return_by: datetime | None = None


class TimelineEntry(BaseModel):
    """One thing that happened to a ticket: a state change, or a note such as a repeat call."""

    model_config = ConfigDict(frozen=True)

    state: TicketState
    at: datetime
    actor: str
    note: str = ""


class Visit(BaseModel):
    """The 回访: what the citizen said when the hotline called after the case was resolved."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    resolved: bool | None = None  # key 1 yes, 2 no; None: not answered
    satisfaction: int | None = None  # 1 满意, 2 基本满意, 3 不满意; None: not answered
    comment_recording: str = ""  # the comment's file name in the voicemail spool (never a path)
    # what the ASR workers heard in the comment; None: not transcribed (yet); empty text: no model
    comment_transcript: Transcript | None = None
    how: str = "phone"  # how the visit was made (the automated call: phone)


class Ticket(BaseModel):
    """One citizen request. ``caller`` is stored whole (the unit calls back) and masked in logs."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str  # <platform code>-<yyyymmdd>-<sequence>, e.g. KM-20261128-0001
    platform: str
    source: TicketSource
    caller: str = ""
    category: TicketCategory = TicketCategory.CONSULTATION
    tags: dict[str, str] = {}
    transcript: Transcript | None = None
    recording: str = ""  # the message's file name in the voicemail spool (never a path)
    call_id: str = ""
    accepted_at: datetime
    state: TicketState = TicketState.ACCEPTED
    deadlines: Deadlines
    # resolve_by counted days of a year the calendar did not know yet (Monday–Friday): recomputed,
    # and this cleared, once the year is known (a calendar_extension, a newer chinesecalendar)
    deadlines_provisional: bool = False
    timeline: tuple[TimelineEntry, ...] = ()
    extensions: int = 0
    linked_call_ids: tuple[str, ...] = ()  # repeat requests merged into this ticket
    # random, given at creation: tells two cases apart should a number ever be given out twice
    # (Redis restored from a backup older than its last tickets); the export's idempotency key
    uid: str = ""
    # a case a seat registered from a call (cases/): who took it and what the citizen asked
    seat: str = ""
    matter_type: str = ""
    location: str = ""
    request: str = ""  # the citizen's words, as the seat wrote them down
    unit: str = ""  # the responsible unit's id (units directory)
    knowledge_entry: str = ""  # the knowledge base entry the seat answered from
    # the caller's answer to the survey after the seat (1 满意, 2 基本满意, 3 不满意), None: not asked
    satisfaction: int | None = None
    visit: Visit | None = None  # the 回访 (outbound/), once made
    # flagged for a supervisor (重办/督办): the 回访 found it not resolved or not satisfied
    needs_review: bool = False

    @property
    def is_open(self) -> bool:
        return self.state.is_open


# Platform ids (dialplan file names) → the letters that start their ticket numbers.
PLATFORM_CODES: dict[str, str] = {
    "province": "YN",
    "kunming": "KM",
    "qujing": "QJ",
    "yuxi": "YX",
    "baoshan": "BS",
    "zhaotong": "ZT",
    "lijiang": "LJ",
    "puer": "PE",
    "lincang": "LC",
    "chuxiong": "CX",
    "honghe": "HH",
    "wenshan": "WS",
    "xishuangbanna": "XSBN",
    "dali": "DL",
    "dehong": "DH",
    "nujiang": "NJ",
    "diqing": "DQ",
}


def platform_code(platform: str) -> str:
    """The ticket prefix of a platform; a platform not listed uses its id in capitals (still unique)."""
    return PLATFORM_CODES.get(platform, platform.upper())


def ticket_id(platform: str, day: date, sequence: int) -> str:
    """``KM-20261128-0001``: the platform, the local acceptance date, the day's sequence number."""
    return f"{platform_code(platform)}-{day:%Y%m%d}-{sequence:04d}"


def is_ticket_id(text: str) -> bool:
    """Whether ``text`` may be a ticket id. Ids (ticket_id()) never contain ":", the store's key
    separator: a text with one would name another key under ``ticket:`` (``by-recording:…``)."""
    return bool(text) and ":" not in text
