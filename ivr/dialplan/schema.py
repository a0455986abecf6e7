"""The dialplan YAML schema (pydantic). Documented with examples in docs/dialplans.md."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from telephony.values import AreaCode, DialNumber, PlatformId, PromptText, TrunkName

NodeId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
PromptName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
DIGITS = "0123456789*#"
_RANGE = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")
EMERGENCY_NUMBERS = ("110", "119", "120", "122")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_time_range(text: str) -> tuple[dt.time, dt.time]:
    """'08:00-20:00' → (08:00, 20:00); '24:00' means the end of the day."""
    match = _RANGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time range like '08:00-20:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r} has an impossible time")
    start = dt.time(h1, m1)
    end = dt.time.max if h2 == 24 else dt.time(h2, m2)
    if end <= start:
        raise ValueError(f"{text!r} ends before it starts")
    return start, end


TimeRanges = tuple[str, ...]


class ServiceHours(_Model):
    """Manual service hours per day type (Asia/Shanghai time). 7×12 by default."""

    workday: TimeRanges = ("08:00-20:00",)
    restday: TimeRanges = ("08:00-20:00",)
    holiday: TimeRanges = ("08:00-20:00",)

    @field_validator("workday", "restday", "holiday")
    @classmethod
    def _ranges(cls, value: TimeRanges) -> TimeRanges:
        for text in value:
            parse_time_range(text)
        return value


class LocalHolidaySpec(_Model):
    """A local statutory holiday: one date or an inclusive range."""

    name: str = Field(min_length=1)
    date: dt.date | None = None
    first: dt.date | None = Field(default=None, alias="from")
    last: dt.date | None = Field(default=None, alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_form(self) -> LocalHolidaySpec:
        if self.date is not None and (self.first or self.last):
            raise ValueError("give either date, or from and to")
        if self.date is None and not (self.first and self.last):
            raise ValueError("give a date, or both from and to")
        if self.first and self.last and self.last < self.first:
            raise ValueError("'to' is before 'from'")
        return self


class CalendarDay(_Model):
    """One day for a year chinese-calendar lacks, or a correction."""

    date: dt.date
    type: Literal["workday", "restday", "holiday"]
    name: str = ""


class TransferMode(StrEnum):
    BLIND = "blind"  # the caller is handed on; the seat is free at once
    ATTENDED = "attended"  # the seat talks to the other side first (the caller on hold), then hands on
    THREE_WAY = "three_way"  # caller, seat and the other side together; the seat may leave later


class DestinationKind(StrEnum):
    PLATFORM = "platform"  # another 12345 platform (the province, a prefecture)
    EMERGENCY = "emergency"  # 110 / 119 / 120 / 122
    DEPARTMENT = "department"  # a department hotline the province keeps (保留的部门热线)
    UTILITY = "utility"  # water, power, gas, public transport (公共企事业单位)
    OTHER = "other"


def check_transfer_modes(kind: DestinationKind, modes: tuple[TransferMode, ...]) -> None:
    """An emergency is handed on at once: a consultation first would keep 110 waiting."""
    if kind is DestinationKind.EMERGENCY and TransferMode.ATTENDED in modes:
        raise ValueError("an emergency number is handed on blind or three-way, never attended (consulted first)")


class Destination(_Model):
    """Where a transfer goes: a number on an outbound trunk from config.yaml (sip.trunks).
    A dialplan's own, or an entry of the shared directory (dialplans/directory.yaml)."""

    trunk: TrunkName
    number: DialNumber
    name: str = ""
    kind: DestinationKind = DestinationKind.OTHER
    modes: tuple[TransferMode, ...] = Field(default=(TransferMode.BLIND, TransferMode.ATTENDED), min_length=1)

    @model_validator(mode="after")
    def _modes(self) -> Destination:
        check_transfer_modes(self.kind, self.modes)
        return self


class _Node(_Model):
    """Fields every node has."""

    label: str = ""


class PlayNode(_Node):
    kind: Literal["play"]
    prompts: tuple[PromptName, ...] = Field(min_length=1)
    next: NodeId


class MenuNode(_Node):
    kind: Literal["menu"]
    prompt: PromptName
    options: dict[str, NodeId] = Field(min_length=1)
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=5)
    invalid_prompt: PromptName | None = None
    timeout_prompt: PromptName | None = None
    default: NodeId

    @field_validator("options", mode="before")
    @classmethod
    def _digit_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            converted = {str(k): v for k, v in value.items()}
            for key in converted:
                if len(key) != 1 or key not in DIGITS:
                    raise ValueError(f"option {key!r} is not one key of 0-9, * or #")
            return converted
        return value


class HoursNode(_Node):
    kind: Literal["hours"]
    open: NodeId
    closed: NodeId
    holiday: NodeId | None = Field(default=None, description="taken on holidays within hours; default: open")


# the tags a set node may give; a queue's ``skills`` entry naming one stands for that tag's value
ROUTING_TAGS = ("category", "language", "priority", "topic")
TagName = Literal["category", "language", "priority", "topic"]
TagValue = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,31}$")]
SkillName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,31}$")]


class QueueNode(_Node):
    kind: Literal["queue"]
    queue: str = Field(default="general", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    # a skill (``yi``) or a tag name (``language``: the caller's tag value, e.g. ``dialect``)
    skills: tuple[SkillName, ...] = ()
    priority: int = Field(default=0, ge=0, le=9)
    max_wait_s: float = Field(default=300, gt=0, le=3600)
    next: NodeId = Field(description="overflow: where the call goes when no seat takes it")


class TransferNode(_Node):
    kind: Literal["transfer"]
    to: str = Field(min_length=1, description="a key of destinations")
    ring_timeout_s: float = Field(default=40, gt=0, le=300)
    next: NodeId = Field(description="where the call goes when the transfer fails")


class VoicemailNode(_Node):
    kind: Literal["voicemail"]
    prompt: PromptName
    max_s: int = Field(default=120, ge=5, le=600)
    silence_s: int = Field(default=5, ge=1, le=30)
    min_s: float = Field(default=2.0, ge=0, le=60, description="shorter: not a ticket, a callback")
    review_prompt: PromptName | None = Field(default=None, description="'1 to keep, 2 to record again'")
    max_rerecords: int = Field(default=1, ge=0, le=3)
    confirm_prompt: PromptName | None = Field(default=None, description="played once the message is safe")
    next: NodeId
    failed_prompt: PromptName | None = Field(
        default=None, description="the message could not be kept (spool full): default prompts.voicemail_failed"
    )
    failed: NodeId | None = Field(
        default=None, description="where the caller goes when the message could not be kept (default: next)"
    )


class CallbackNode(_Node):
    kind: Literal["callback"]
    prompt: PromptName = Field(description="the offer, e.g. 'press 1 to be called back, keeping your place'")
    key: str = Field(default="1", pattern=r"^[0-9*#]$")
    timeout_s: float = Field(default=6.0, gt=0, le=30)
    trunk: TrunkName = Field(description="the outbound trunk the seat calls the caller back on")
    confirm_prompt: PromptName | None = None
    next: NodeId = Field(description="where the call goes when the caller does not take the offer")


class SurveyNode(_Node):
    kind: Literal["survey"]
    prompt: PromptName
    scale: int = Field(default=5, ge=2, le=9)
    timeout_s: float = Field(default=6.0, gt=0, le=30)
    thanks_prompt: PromptName | None = None
    next: NodeId


class CaseNumberNode(_Node):
    """Reads the case number of the call back to the caller (the record's ``case_id``, set when
    a seat registered the case); a call without a case goes straight on to ``next``."""

    kind: Literal["case_number"]
    prompt: PromptName = Field(description="said before the number, e.g. '您的工单编号是'")
    next: NodeId


class SetNode(_Node):
    kind: Literal["set"]
    tags: dict[TagName, TagValue] = Field(min_length=1)
    next: NodeId

    @field_validator("tags")
    @classmethod
    def _priority(cls, value: dict[str, str]) -> dict[str, str]:
        if "priority" in value and not re.fullmatch(r"[0-9]", value["priority"]):
            raise ValueError(f"priority {value['priority']!r} is not one digit 0-9 (higher is served first)")
        return value


class CallerListNode(_Node):
    """Looks the caller's number up in the caller lists (dialplans/caller_lists.yaml)."""

    kind: Literal["caller_list"]
    lists: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")], ...] = Field(
        default=(), description="the lists to look in; empty: every list of this platform"
    )
    blocked_prompt: PromptName = Field(description="said to a blocked caller before the call is ended")
    next: NodeId


class HangupNode(_Node):
    kind: Literal["hangup"]
    prompt: PromptName | None = None


Node = Annotated[
    PlayNode
    | MenuNode
    | HoursNode
    | QueueNode
    | TransferNode
    | VoicemailNode
    | CallbackNode
    | SurveyNode
    | CaseNumberNode
    | SetNode
    | CallerListNode
    | HangupNode,
    Field(discriminator="kind"),
]


class DialplanSpec(_Model):
    """One platform's dialplan file."""

    platform: PlatformId
    name: str = Field(min_length=1)
    area_code: AreaCode
    hours: ServiceHours = ServiceHours()
    local_holidays: tuple[LocalHolidaySpec, ...] = ()
    calendar_extension: tuple[CalendarDay, ...] = ()
    prompts: dict[PromptName, PromptText] = Field(default_factory=dict)
    destinations: dict[str, Destination] = Field(default_factory=dict)
    start: NodeId
    # a call handed over by another platform (with its case) starts here, e.g. straight at a queue
    handoff_start: NodeId | None = None
    # a seat's transfer (API) that nobody answered: the call goes on here (e.g. voicemail);
    # unset: Asterisk's fallback route keeps the caller's message
    transfer_failed: NodeId | None = None
    # the seat hung up first (not a transfer): the caller goes on here, e.g. the case number and
    # the satisfaction survey; unset: the call ends with the seat's hang-up
    after_seat: NodeId | None = None
    nodes: dict[NodeId, Node] = Field(min_length=1)


# caller lists (dialplans/caller_lists.yaml; loaded in ivr/dialplan/caller_lists.py)

CallerNumber = Annotated[str, Field(pattern=r"^\+?[0-9]{3,20}$")]


class CallerListAction(StrEnum):
    BLOCK = "block"  # a nuisance caller: a polite prompt, then the call is ended (outcome ``blocked``)
    PRIORITY = "priority"  # served first in the queue (老年人, VIP …): tag ``priority``


class CallerList(_Model):
    """One list of callers by number."""

    name: str = Field(min_length=1, max_length=40, description="what supervisors read, e.g. 老年人")
    action: CallerListAction
    priority: int | None = Field(default=None, ge=1, le=9, description="for action priority: the queue priority")
    platforms: tuple[PlatformId, ...] = Field(default=(), description="only these platforms; empty: every one")
    numbers: tuple[CallerNumber, ...] = ()

    @model_validator(mode="after")
    def _priority(self) -> CallerList:
        if self.action is CallerListAction.PRIORITY and self.priority is None:
            raise ValueError("a priority list needs a priority (1-9)")
        if self.action is CallerListAction.BLOCK and self.priority is not None:
            raise ValueError("a block list has no priority")
        return self


class CallerListsSpec(_Model):
    lists: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")], CallerList] = Field(default_factory=dict)
