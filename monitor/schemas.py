"""The monitor routes' bodies as pydantic models: the OpenAPI document's schemas (web/openapi.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Mode = Literal["listen", "whisper", "barge"]


class MonitorRequest(BaseModel):
    mode: Mode
    phone: str = Field(default="", description="a phone of monitor.phones (default: the token's seat)")


class ModeRequest(BaseModel):
    mode: Mode


class MonitorView(BaseModel):
    id: str
    call_id: str
    seat: str
    phone: str
    who: str
    mode: Mode
    state: str
    started_at: str = Field(json_schema_extra={"format": "date-time"})
    answered_at: str | None = Field(json_schema_extra={"format": "date-time"})
    ended_at: str | None = Field(json_schema_extra={"format": "date-time"})
    duration_s: float
    end_reason: str
    modes: list[Mode]


class MonitorList(BaseModel):
    monitors: list[MonitorView]
    phones: list[str]
    ended: list[MonitorView] | None = Field(default=None, description="with ?ended=1")
