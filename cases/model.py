"""What a seat sends to register a case, checked where it enters; the seams to the units
directory and the knowledge base (other packages; the app shell wires them)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from tickets.model import TicketCategory

MAX_REQUEST_CHARS = 2000
MAX_MATTER_TYPE_CHARS = 64
MAX_LOCATION_CHARS = 200
# unit and knowledge entry ids: letters (any script), digits, "_", "-", "." — never ":" (a Redis
# key separator), "/", white space or control characters
_ID = re.compile(r"[\w.\-]{1,64}")
# Asterisk uniqueids ("1764233001.42") and our own call ids; nothing that could name another key
CALL_ID = re.compile(r"[A-Za-z0-9_.\-]{1,80}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # newline and tab allowed in the citizen's words
_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CaseOutcome(StrEnum):
    """What the seat did with the request."""

    ANSWERED = "answered"  # answered from the knowledge base: resolved at once (当场办结)
    DISPATCHED = "dispatched"  # sent to the responsible unit (分办): the clocks run


class CaseInvalid(ValueError):
    """A body the case endpoint cannot take; ``field`` names what is wrong (answered with 400)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class CaseRequest:
    """A checked request to register a case."""

    category: TicketCategory
    unit: str
    outcome: CaseOutcome
    request: str
    matter_type: str = ""
    location: str = ""
    knowledge_entry: str = ""


def is_call_id(text: str) -> bool:
    return bool(CALL_ID.fullmatch(text))


def is_entity_id(text: str) -> bool:
    """Whether ``text`` may be a unit or knowledge entry id."""
    return bool(_ID.fullmatch(text))


def _text(body: Mapping[str, object], field: str, limit: int, *, required: bool, multiline: bool = False) -> str:
    value = body.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CaseInvalid(field, "is required")
        return ""
    if not isinstance(value, str):
        raise CaseInvalid(field, "must be a string")
    value = value.strip()
    if len(value) > limit:
        raise CaseInvalid(field, f"is longer than {limit} characters")
    if (_CONTROL if multiline else _LINE_CONTROL).search(value):
        raise CaseInvalid(field, "contains control characters")
    return value


def _id(body: Mapping[str, object], field: str, *, required: bool) -> str:
    value = _text(body, field, 64, required=required)
    if value and not is_entity_id(value):
        raise CaseInvalid(field, "is not an id (letters, digits, '_', '-', '.'; at most 64)")
    return value


def parse_case(body: Mapping[str, object]) -> CaseRequest:
    """The case a body describes, or CaseInvalid naming the first field that is wrong."""
    raw_category = _text(body, "category", 32, required=True)
    try:
        category = TicketCategory(raw_category)
    except ValueError:
        raise CaseInvalid("category", f"one of {', '.join(c.value for c in TicketCategory)}") from None
    unit = _id(body, "unit", required=True)
    raw_outcome = _text(body, "outcome", 16, required=True)
    try:
        outcome = CaseOutcome(raw_outcome)
    except ValueError:
        raise CaseInvalid("outcome", f"one of {', '.join(o.value for o in CaseOutcome)}") from None
    entry = _id(body, "knowledge_entry", required=outcome is CaseOutcome.ANSWERED)
    return CaseRequest(
        category=category,
        unit=unit,
        outcome=outcome,
        request=_text(body, "request", MAX_REQUEST_CHARS, required=True, multiline=True),
        matter_type=_text(body, "matter_type", MAX_MATTER_TYPE_CHARS, required=False),
        location=_text(body, "location", MAX_LOCATION_CHARS, required=False),
        knowledge_entry=entry,
    )


class UnitLookup(Protocol):
    """The units directory (``units/``): whether ``unit_id`` is a unit ``platform`` may dispatch
    to (its own or a province-wide one)."""

    async def has_unit(self, platform: str, unit_id: str) -> bool: ...

    async def has_matter_type(self, platform: str, matter_type: str) -> bool: ...


class KnowledgeLookup(Protocol):
    """The knowledge base (``knowledge/``): whether ``entry_id`` is an entry ``platform`` may
    answer from (valid now), and a note that a seat answered from it (its use count)."""

    async def has_entry(self, platform: str, entry_id: str) -> bool: ...

    async def record_use(self, platform: str, entry_id: str) -> None: ...


class StaticUnits:
    """A fixed set of unit ids per platform (``"*"``: every platform) and, if given, of matter
    types (None: any) — for tests."""

    def __init__(self, units: Mapping[str, Iterable[str]], matter_types: Iterable[str] | None = None) -> None:
        self._units = {platform: frozenset(ids) for platform, ids in units.items()}
        self._matter_types = None if matter_types is None else frozenset(matter_types)

    async def has_matter_type(self, platform: str, matter_type: str) -> bool:
        return self._matter_types is None or matter_type in self._matter_types

    async def has_unit(self, platform: str, unit_id: str) -> bool:
        return unit_id in self._units.get(platform, frozenset()) or unit_id in self._units.get("*", frozenset())


class StaticKnowledge:
    """A fixed set of entry ids per platform (``"*"``: every platform), counting uses in memory
    — for tests and for tests."""

    def __init__(self, entries: Mapping[str, Iterable[str]]) -> None:
        self._entries = {platform: frozenset(ids) for platform, ids in entries.items()}
        self.uses: dict[tuple[str, str], int] = {}

    async def has_entry(self, platform: str, entry_id: str) -> bool:
        return entry_id in self._entries.get(platform, frozenset()) or entry_id in self._entries.get("*", frozenset())

    async def record_use(self, platform: str, entry_id: str) -> None:
        self.uses[(platform, entry_id)] = self.uses.get((platform, entry_id), 0) + 1
