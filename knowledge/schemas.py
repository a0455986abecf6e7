"""The knowledge base's response bodies as pydantic models: the OpenAPI document's schemas
(web/openapi.py), checked against live answers by tests/unit/test_openapi.py."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EntryView(BaseModel):
    id: str
    platform: str
    question: str
    answer: str
    matter_type: str
    unit: str | None
    keywords: list[str]
    valid_from: str | None = Field(json_schema_extra={"format": "date"})
    valid_until: str | None = Field(json_schema_extra={"format": "date"})
    uses: int
    source: str
    valid_now: bool | None = Field(default=None, description="in GET /api/v1/knowledge/{entry_id} only")


class SearchAnswer(BaseModel):
    platform: str
    version: str
    matter_types: list[str]
    entries: list[EntryView]


class KnowledgeStatus(BaseModel):
    root: str
    version: str
    files: int
    entries: int
    loaded_at: str | None = Field(json_schema_extra={"format": "date-time"})
    last_error: str | None
    loading: bool = Field(description="true while the base is loaded at start (search answers 503)")
    reloads_ok: int
    reloads_failed: int
    uses_unsaved: int
