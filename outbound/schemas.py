"""Outbound's response bodies as pydantic models: the OpenAPI document's schemas (web/openapi.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Channels(BaseModel):
    in_use: int
    max: int


class OutboundStatus(BaseModel):
    platform: str
    enabled: bool
    paused: bool
    held_by: str = Field(description="why no new call starts now ('' when calls may start)")
    channels: Channels
    inbound_waiting: int
    kinds: dict[str, dict[str, int]] = Field(description="kind → state → jobs")


class TryResult(BaseModel):
    at: str | None = Field(json_schema_extra={"format": "date-time"})
    result: str


class AttemptView(BaseModel):
    id: str
    ticket_id: str
    kind: str
    number: str = Field(description="masked")
    state: str
    tries: int
    next_try_at: str | None = Field(json_schema_extra={"format": "date-time"})
    last_result: str | None
    updated_at: str | None = Field(json_schema_extra={"format": "date-time"})
    results: list[TryResult]


class AttemptList(BaseModel):
    platform: str
    attempts: list[AttemptView]


class Paused(BaseModel):
    platform: str
    paused: bool
