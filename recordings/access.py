"""Safe lookup of spool files named by call records, and the audit trail of every access."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, cast

import redis.asyncio as aioredis

AUDIT_STREAM = "hotline:audit"
AUDIT_MAX_ENTRIES = 1_000_000
# how far back a filtered read of the trail looks (the newest entries first, a page at a time)
AUDIT_SCAN_ENTRIES = 100_000
_AUDIT_PAGE = 1000


class UnsafePath(ValueError):
    """A stored path that would leave the spool (never served)."""


def spool_file(spool_dir: Path, relative: str) -> Path:
    """The file ``relative`` names inside ``spool_dir``; refuses absolute paths and escapes.

    Only paths our own code wrote onto call records reach here, never a request's text; the
    check is a second line of defence.
    """
    candidate = Path(relative)
    if not relative or candidate.is_absolute() or ".." in candidate.parts:
        raise UnsafePath(f"refusing spool path {relative!r}")
    root = spool_dir.resolve()
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise UnsafePath(f"refusing spool path {relative!r}")
    return resolved


@dataclass(frozen=True)
class AuditEntry:
    """Who did what to which call's data, and whether it was allowed."""

    at: datetime
    who: str
    role: str
    action: str
    call_id: str
    result: str  # "allowed", "denied", "missing"
    remote: str
    platform: str = ""  # the platform whose API was asked (one stream serves them all)


AuditFilter = Callable[[AuditEntry], bool]


class AuditLog(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...

    async def recent(self, limit: int, keep: AuditFilter | None = None) -> list[AuditEntry]: ...


class RedisAuditLog:
    """Audit entries on a capped Redis stream."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def record(self, entry: AuditEntry) -> None:
        fields = {
            key: (value.isoformat() if isinstance(value, datetime) else str(value))
            for key, value in asdict(entry).items()
        }
        await self._redis.xadd(AUDIT_STREAM, fields, maxlen=AUDIT_MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]

    async def recent(
        self, limit: int, keep: AuditFilter | None = None, scan: int = AUDIT_SCAN_ENTRIES
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries that ``keep`` accepts (all: None), among the newest
        ``scan``: one stream serves every platform, so another platform's traffic (or a token
        refused again and again) cannot push a platform's own entries out of its view."""
        entries: list[AuditEntry] = []
        newest = "+"
        scanned = 0
        while len(entries) < limit and scanned < scan:
            page = min(_AUDIT_PAGE if keep else limit - len(entries), scan - scanned)
            # redis-py's stubs allow str or bytes; this client is created without decode_responses
            rows = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                await self._redis.xrevrange(AUDIT_STREAM, max=newest, count=page),
            )
            for _, fields in rows:
                entry = _audit_entry({key.decode(): value.decode() for key, value in fields.items()})
                if keep is None or keep(entry):
                    entries.append(entry)
                    if len(entries) >= limit:
                        break
            if len(rows) < page:
                break  # the start of the stream
            scanned += len(rows)
            newest = f"({rows[-1][0].decode()}"  # older than the last one read
        return entries


def _audit_entry(text: dict[str, str]) -> AuditEntry:
    return AuditEntry(
        at=datetime.fromisoformat(text["at"]),
        who=text["who"],
        role=text["role"],
        action=text["action"],
        call_id=text["call_id"],
        result=text["result"],
        remote=text["remote"],
        platform=text.get("platform", ""),
    )


def audit_json(entry: AuditEntry) -> dict[str, str]:
    """An entry as the API shows it."""
    return {
        key: value.isoformat() if isinstance(value, datetime) else str(value) for key, value in asdict(entry).items()
    }
