"""The phone settings route's answer as a pydantic model: the OpenAPI document's schema."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PhoneSettings(BaseModel):
    """A seat's phone: a SIP softphone (only ``seat`` and ``phone``) or the desk's browser phone."""

    seat: str
    phone: Literal["sip", "browser"]
    websocket_url: str | None = Field(default=None, description="wss://host:port/ws (Asterisk's WSS listener)")
    sip_uri: str | None = Field(default=None, description="sip:<seat>@host, the seat's address of record")
    authorization_user: str | None = None
    password: str | None = Field(default=None, description="the seat's SIP secret: its own token only")
    display_name: str | None = None
    ice_servers: list[str] = Field(default_factory=list, description="stun:/turn: URLs for browsers behind NAT")
