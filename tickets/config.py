"""config.yaml's tickets section: the export of tickets to the downstream handling system."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from common.config_model import ConfigModel


class TicketsConfig(ConfigModel):
    """Case tickets made from messages, and their export to the downstream handling system."""

    webhook_url: str | None = Field(default=None, pattern=r"^https?://")
    webhook_token: str | None = Field(default=None, repr=False)
    webhook_max_attempts: Annotated[int, Field(ge=1, le=100)] = 10

    @field_validator("webhook_url")
    @classmethod
    def _private_in_transit(cls, value: str | None) -> str | None:
        # a ticket carries the citizen's whole number and words: plain http only on this host
        url = urlsplit(value or "")
        if url.scheme == "http" and url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("must be https:// (tickets carry callers' numbers); plain http:// only to this host")
        return value

    # a transfer to another platform whose call never arrived there becomes a ticket after this
    handoff_expiry_s: Annotated[float, Field(gt=0, le=86400)] = 300.0
