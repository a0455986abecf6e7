"""API tokens and roles: seat < supervisor < admin. Tokens are kept as SHA-256 only."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["seat", "supervisor", "admin"]
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ApiToken(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    """One API token, stored as its SHA-256 (make one with ``hotline12345 token new``)."""

    name: str = Field(min_length=1)
    role: Role
    sha256: str
    seat: str | None = Field(default=None, description="for role seat: the seat this token may act as")
    # the platform whose objects the token may change (and see; the province's may see every
    # platform's); unset: the platform of the controller whose config.yaml lists it
    platform: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{1,31}$")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _SHA256.fullmatch(value):
            raise ValueError("must be 64 lower-case hex digits (the token's SHA-256)")
        return value


ROLE_RANK: dict[Role, int] = {"seat": 1, "supervisor": 2, "admin": 3}


@dataclass(frozen=True)
class Principal:
    """Who made a request."""

    name: str
    role: Role
    seat: str | None = None
    platform: str | None = None  # None: the platform of the controller that serves the request

    def may(self, needed: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[needed]

    def may_act_as_seat(self, seat_id: str) -> bool:
        """Seats change their own state; supervisors and admins anyone's."""
        return self.may("supervisor") or (self.role == "seat" and self.seat == seat_id)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random bearer token."""
    return "h12345_" + secrets.token_urlsafe(32)


class TokenRegistry:
    """Looks bearer tokens up by their hash."""

    def __init__(self, tokens: Iterable[ApiToken]) -> None:
        self._by_hash = {
            token.sha256: Principal(token.name, token.role, token.seat, token.platform) for token in tokens
        }

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, authorization: str) -> Principal | None:
        """The principal for an ``Authorization: Bearer …`` header value, or None."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            digest = token_sha256(token.strip())
        except UnicodeEncodeError:  # bytes that are not UTF-8 (aiohttp keeps them as surrogates)
            return None
        return self._by_hash.get(digest)
