"""The reports' request and response models (the OpenAPI document, web/openapi.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ReportAnswer(BaseModel):
    """A report: one row per period and queue / seat / node / unit (docs/api.md lists the figures)."""

    model_config = ConfigDict(populate_by_name=True)

    report: str = Field(description="queues, seats, ivr or cases")
    platform: str
    from_: str = Field(alias="from", description="the first local day, YYYY-MM-DD")
    to: str = Field(description="the last local day, YYYY-MM-DD")
    by: str = Field(description="hour, day, week or month")
    timezone: str
    rows: list[dict[str, Any]] = Field(description="period, the dimension, then counts, seconds and rates (null: none)")


class FoundCall(BaseModel):
    """A call a search found; the caller masked."""

    call_id: str
    platform: str
    caller: str
    started_at: str
    ended_at: str | None
    queue: str
    seat: str
    seat_answered_at: str | None
    outcome: str | None
    case_id: str
    survey_score: int | None
    has_recording: bool
    has_call_recording: bool


class CallSearchAnswer(BaseModel):
    """A page of found calls, newest first; ``next_cursor`` continues (null: no more)."""

    platform: str
    calls: list[FoundCall]
    next_cursor: str | None
