"""Knowledge entries: the file schema (pydantic, unknown keys are errors) and the checked entry.

A knowledge file is ``entries:`` — a list of entries. The platform an entry belongs to is the
folder its file is in (``province/`` for every platform's seats, ``<platform id>/`` for one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

ENTRY_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # anchored: pydantic patterns search
UNIT_ID = re.compile(r"^[a-z0-9_-]{1,64}$")
# ids the HTTP routes use next to /api/v1/knowledge/{id}
RESERVED_IDS = frozenset({"reload", "status"})
MAX_ENTRIES_PER_FILE = 500
MAX_KEYWORDS = 20
# control characters (a newline is fine only in an answer) and the line/paragraph separators
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_LINE_BREAK = re.compile(r"[\n\r]")


def _plain_text(multiline: bool) -> BeforeValidator:
    def check(value: Any) -> Any:
        if isinstance(value, str):
            if _CONTROL.search(value) or (not multiline and _LINE_BREAK.search(value)):
                raise ValueError("control characters or line breaks are not allowed here")
            return value.strip()
        return value

    return BeforeValidator(check)


def _a_date(value: Any) -> Any:
    """A calendar day: YAML's 2026-01-01 or the text "2026-01-01"; never a time or a number."""
    if isinstance(value, datetime):
        raise ValueError("a day (YYYY-MM-DD) without a time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not a date (YYYY-MM-DD): {value[:40]!r}") from None
    raise ValueError("a date written YYYY-MM-DD")


Line = Annotated[str, _plain_text(False), StringConstraints(min_length=1)]
Day = Annotated[date, BeforeValidator(_a_date)]


class EntrySpec(BaseModel):
    """One entry as written in a knowledge file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=ENTRY_ID.pattern)]
    question: Annotated[Line, Field(max_length=200)]
    answer: Annotated[str, _plain_text(True), StringConstraints(min_length=1, max_length=4000)]
    matter_type: Annotated[Line, Field(max_length=32)]
    unit: Annotated[str, Field(pattern=UNIT_ID.pattern)] | None = None
    keywords: tuple[Annotated[Line, Field(max_length=32)], ...] = Field(default=(), max_length=MAX_KEYWORDS)
    valid_from: Day | None = None
    valid_until: Day | None = None


class FileSpec(BaseModel):
    """A knowledge file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: tuple[EntrySpec, ...] = Field(max_length=MAX_ENTRIES_PER_FILE)


@dataclass(frozen=True)
class Entry:
    """A checked entry, with where it came from."""

    id: str
    platform: str  # the folder: "province" or a platform id
    question: str
    answer: str
    matter_type: str
    unit: str | None
    keywords: tuple[str, ...]
    valid_from: date | None
    valid_until: date | None
    source: str  # file:line of the entry
    version: str  # of its file

    def valid_on(self, day: date) -> bool:
        """Offered on ``day`` (the platform's local date): within valid_from..valid_until, both included."""
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )

    @classmethod
    def from_spec(cls, spec: EntrySpec, platform: str, source: str, version: str) -> Entry:
        return cls(
            id=spec.id,
            platform=platform,
            question=spec.question,
            answer=spec.answer.strip(),
            matter_type=spec.matter_type,
            unit=spec.unit,
            keywords=spec.keywords,
            valid_from=spec.valid_from,
            valid_until=spec.valid_until,
            source=source,
            version=version,
        )
