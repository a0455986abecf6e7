"""The case desk's config section (``cases:`` in config.yaml)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ID = re.compile(r"[\w.\-]{1,64}")


class CasesConfig(BaseModel):
    """Stand-ins until the units directory (``units/``) and the knowledge base (``knowledge/``)
    are wired in: the unit ids a case may name and the knowledge entry ids a seat may answer
    from. Empty (the default): every unit and entry is unknown, and cases are refused (422)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    units: tuple[str, ...] = Field(default=(), description="unit ids cases may be dispatched to")
    knowledge_entries: tuple[str, ...] = Field(default=(), description="knowledge entry ids seats may answer from")

    @field_validator("units", "knowledge_entries")
    @classmethod
    def _ids(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        bad = [i for i in ids if not _ID.fullmatch(i)]
        if bad:
            raise ValueError(f"not ids (letters, digits, '_', '-', '.'; at most 64): {bad}")
        return ids
