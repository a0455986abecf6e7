"""Renaming the open-ticket keys of earlier versions, which carried the caller's whole number
(``hotline:tickets:open:<platform>:<number>``), to the keyed digest's name
(``hotline:tickets:open-by-caller:<platform>:<digest>``, tickets/keys.py). The controller runs
it in the background once it serves calls (a SCAN of the whole key space takes seconds at
province scale: not in the restart gap), for its own platform, with its own caller index
secret, retried with back-off until one run completes; a second run finds nothing to do.
Merging is unchanged meanwhile: the store reads the old key when the new one is absent, and
deletes the old one whenever it deletes or replaces the new one (tickets/store.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from tickets.keys import OLD_OPEN_PREFIX

log = structlog.get_logger(__name__)

SCAN_COUNT = 1000
FIRST_RETRY_S = 1.0  # after a failed run (Redis away): then doubled, up to
MAX_RETRY_S = 60.0
PROGRESS_EVERY = 50  # pages of SCAN_COUNT keys renamed between progress lines

Sleep = Callable[[float], Awaitable[None]]

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
    moved = pages = 0
    batch: list[str] = []
    async for raw in client.scan_iter(match=f"{prefix}*", count=SCAN_COUNT):
        batch.append(raw.decode() if isinstance(raw, bytes) else str(raw))
        if len(batch) >= SCAN_COUNT:
            moved += await _move(client, batch, prefix, platform, namer)
            batch = []
            pages += 1
            if pages % PROGRESS_EVERY == 0:
                log.info("tickets.open_keys_renaming", platform=platform, keys_so_far=moved)
    if batch:
        moved += await _move(client, batch, prefix, platform, namer)
    return moved


async def migrate_until_done(
    client: aioredis.Redis, platform: str, namer: OpenKeyNamer, *, sleep: Sleep = asyncio.sleep
) -> int:
    """``migrate_open_ticket_keys`` until one run completes (the controller's background task):
    a Redis error logs and retries after a back-off (1 s, doubled, at most 60 s). The result is
    logged (``tickets.open_keys_renamed``, with the count and the attempts it took)."""
    delay = FIRST_RETRY_S
    attempt = 1
    log.info("tickets.open_keys_migration_started", platform=platform)
    while True:
        try:
            moved = await migrate_open_ticket_keys(client, platform, namer)
        except (RedisError, OSError) as exc:
            log.warning(
                "tickets.open_keys_not_renamed", platform=platform, attempt=attempt, retry_in_s=delay, error=str(exc)
            )
            await sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)
            attempt += 1
            continue
        log.info("tickets.open_keys_renamed", platform=platform, keys=moved, attempts=attempt)
        return moved


async def _move(client: aioredis.Redis, keys: list[str], prefix: str, platform: str, namer: OpenKeyNamer) -> int:
    pipe = client.pipeline(transaction=False)  # one round trip per page of keys; each move is atomic
    for old in keys:
        pipe.eval(_MOVE, 2, old, namer.open_key(platform, old[len(prefix) :]))
    return sum(cast(list[int], await pipe.execute()))
