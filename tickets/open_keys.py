"""Renaming the open-ticket keys of earlier versions, which carried the caller's whole number
(``hotline:tickets:open:<platform>:<number>``), to the keyed digest's name
(``hotline:tickets:open-by-caller:<platform>:<digest>``, tickets/keys.py). The controller runs
it at every start for its own platform, with its own caller index secret; a second run finds
nothing to do. Merging is unchanged: the same ticket id, under the new name."""

from __future__ import annotations

from typing import Protocol, cast

import redis.asyncio as aioredis
import structlog

from tickets.keys import OLD_OPEN_PREFIX

log = structlog.get_logger(__name__)

SCAN_COUNT = 1000

# KEYS[1] the old name, KEYS[2] the new one. A new key already there was written after the
# upgrade and names the caller's newer open ticket: it wins, the old one goes. 1: moved or dropped.
_MOVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('RENAMENX', KEYS[1], KEYS[2]) == 0 then redis.call('DEL', KEYS[1]) end
return 1
"""


class OpenKeyNamer(Protocol):
    """What the migration needs of the ticket store (TicketStoreBase.open_key)."""

    def open_key(self, platform: str, caller: str) -> str: ...


async def migrate_open_ticket_keys(client: aioredis.Redis, platform: str, namer: OpenKeyNamer) -> int:
    """Rename ``platform``'s old-format open-ticket keys (``namer.open_key`` gives the new name);
    how many there were. Other platforms' keys are theirs to rename, with their own secret."""
    prefix = f"{OLD_OPEN_PREFIX}{platform}:"
    moved = 0
    batch: list[str] = []
    async for raw in client.scan_iter(match=f"{prefix}*", count=SCAN_COUNT):
        batch.append(raw.decode() if isinstance(raw, bytes) else str(raw))
        if len(batch) >= SCAN_COUNT:
            moved += await _move(client, batch, prefix, platform, namer)
            batch = []
    if batch:
        moved += await _move(client, batch, prefix, platform, namer)
    if moved:
        log.info("tickets.open_keys_renamed", platform=platform, keys=moved)
    return moved


async def _move(client: aioredis.Redis, keys: list[str], prefix: str, platform: str, namer: OpenKeyNamer) -> int:
    pipe = client.pipeline(transaction=False)  # one round trip per page of keys; each move is atomic
    for old in keys:
        pipe.eval(_MOVE, 2, old, namer.open_key(platform, old[len(prefix) :]))
    return sum(cast(list[int], await pipe.execute()))
