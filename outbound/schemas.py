"""Outbound's response bodies as pydantic models: the OpenAPI document's schemas (web/openapi.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Channels(BaseModel):
    in_use: int
    max: int


class ServiceLevel(BaseModel):
    last_15min: float | None = Field(description="inbound's 15 s service level, last 15 min (null: no call offered)")
    min: float = Field(description="outbound.min_service_level: below it no new call starts (0: off)")


class OutboundStatus(BaseModel):
    platform: str
    enabled: bool
    paused: bool
    held_by: str = Field(
        description="why no new call starts now: paused, inbound_waiting, service_level, channels_full "
        "('' when calls may start)"
    )
    channels: Channels
    inbound_waiting: int
    service_level: ServiceLevel
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
