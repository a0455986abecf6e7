"""The units directory's and desk codes' response bodies as pydantic models: the OpenAPI
document's schemas (web/openapi.py), checked against live answers by tests/unit/test_openapi.py."""

from __future__ import annotations

from pydantic import BaseModel

from units.model import Disposition, MatterType, PauseReason


class Contact(BaseModel):
    number: str
    label: str | None


class UnitView(BaseModel):
    id: str
    name: str
    platform: str
    department: str | None
    parent: str | None
    contacts: list[Contact]
    matter_types: list[str]


class UnitList(BaseModel):
    platform: str
    units: list[UnitView]
    truncated: bool


class DeskCodes(BaseModel):
    platform: str
    version: str
    dispositions: list[Disposition]
    pause_reasons: list[PauseReason]
    matter_types: list[MatterType]
