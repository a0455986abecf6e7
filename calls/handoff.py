"""Hand-off records: the case that travels with a call transferred to another 12345 platform.

The sending platform writes the record to the shared Redis and passes its token in a SIP
header (``X-Hotline-Handoff``) and a channel variable; the receiving platform reads the header
when the call arrives, links its own call record to the token, and shows the record to the
seat whose phone rings. A record nobody picks up in time is still there for the expiry job,
which files it as a ticket (nothing a caller said is lost between platforms).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any, cast

import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel, ConfigDict

from calls.redis_budget import RedisBudget
from common.privacy import mask_number

log = structlog.get_logger(__name__)

PREFIX = "hotline:handoff:"
PENDING = "hotline:handoffs:pending"  # ZSET token → created_at (epoch), until picked up
HEADER = "X-Hotline-Handoff"
TTL_S = 30 * 86400  # kept a month for the record of both legs


class Handoff(BaseModel):
    """What the receiving seat needs to know without asking the caller again."""

    model_config = ConfigDict(frozen=True)

    token: str
    from_platform: str
    from_call_id: str
    to: str  # destination name, e.g. province
    caller: str = ""
    ivr_path: tuple[str, ...] = ()
    tags: dict[str, str] = {}
    seat: str = ""  # the seat that transferred, if any
    note: str = ""  # the seat's words for the next seat
    ticket_id: str = ""
    created_at: datetime
    picked_up_platform: str = ""
    picked_up_call_id: str = ""
    picked_up_at: datetime | None = None


def new_token() -> str:
    return secrets.token_hex(12)


def token_hint(token: str) -> str:
    """For logs: enough to match two lines, not enough to claim the case (a token is a key)."""
    return f"{token[:4]}…" if token else ""


class RedisHandoffs:
    """Hand-off records in the Redis all platforms share.

    On the call path (``…_on_call_path``, ``settle_later``) nobody waits on a slow Redis longer
    than its budget (calls/redis_budget.py): what is not done by then is done in the background.
    """

    def __init__(self, client: aioredis.Redis, budget: RedisBudget | None = None) -> None:
        self._redis = client
        self._budget = budget or RedisBudget()

    async def create_on_call_path(self, handoff: Handoff) -> Handoff:
        """Written before the call leaves when Redis answers in time (the next platform reads it
        at once); otherwise written in the background and the call goes on with its token."""
        if not await self._budget.write_and_wait(f"hand-off {token_hint(handoff.token)}", lambda: self.create(handoff)):
            log.warning("handoff.written_later", token=token_hint(handoff.token))
        return handoff

    def settle_later(self, token: str) -> None:
        """``settle`` in the background (after the hand-off's own write, if still pending)."""
        self._budget.write(f"settle hand-off {token_hint(token)}", lambda: self.settle(token))

    async def picked_up_on_call_path(
        self, token: str, platform: str, call_id: str, at: datetime
    ) -> tuple[Handoff | None] | None:
        """``picked_up`` within the call path's budget: ``(handoff,)`` (None: unknown token), or
        None when Redis did not answer in time — then the pick-up is recorded in the background."""

        async def pick() -> tuple[Handoff | None]:
            return (await self.picked_up(token, platform, call_id, at),)

        found = await self._budget.read(f"hand-off {token_hint(token)}", pick, None)
        if found is None:
            self._budget.write(f"pick up hand-off {token_hint(token)}", pick)
        return found

    async def create(self, handoff: Handoff) -> Handoff:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(PREFIX + handoff.token, handoff.model_dump_json(), ex=TTL_S)
            pipe.zadd(PENDING, {handoff.token: handoff.created_at.timestamp()})
            await pipe.execute()
        return handoff

    async def get(self, token: str) -> Handoff | None:
        raw = await self._redis.get(PREFIX + token)
        return Handoff.model_validate_json(raw) if raw else None

    async def picked_up(self, token: str, platform: str, call_id: str, at: datetime) -> Handoff | None:
        """The receiving platform has the call: link its leg (once; a retry keeps the first)."""
        handoff = await self.get(token)
        if handoff is None or handoff.picked_up_call_id:
            return handoff
        done = handoff.model_copy(
            update={"picked_up_platform": platform, "picked_up_call_id": call_id, "picked_up_at": at}
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(PREFIX + token, done.model_dump_json(), ex=TTL_S)
            pipe.zrem(PENDING, token)
            await pipe.execute()
        return done

    async def expired(self, older_than: datetime) -> list[Handoff]:
        """Hand-offs created before ``older_than`` that no platform picked up."""
        tokens = cast(list[bytes], await self._redis.zrangebyscore(PENDING, 0, older_than.timestamp()))
        found = []
        for token in tokens:
            handoff = await self.get(token.decode())
            if handoff is not None:
                found.append(handoff)
        return found

    async def settle(self, token: str) -> None:
        """An expired hand-off was dealt with (filed as a ticket)."""
        await self._redis.zrem(PENDING, token)


def handoff_view(handoff: Handoff) -> dict[str, Any]:
    """As the API shows it: the caller's number masked like everywhere else."""
    data: dict[str, Any] = json.loads(handoff.model_dump_json())
    data["caller"] = mask_number(handoff.caller)
    return data
