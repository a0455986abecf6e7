"""Export of new tickets to the downstream handling system: the Redis stream
``hotline:tickets:new`` (written in the same transaction as the ticket) delivered to a webhook.

At-least-once with an idempotency key: every POST of a ticket carries ``Idempotency-Key: <ticket
id>:<uid>`` (``tickets.store.export_key``), so the receiver can drop repeats (a retry after a
timeout, or a controller that died between the POST and the acknowledgement).
``X-Hotline-Event`` says what the POST is: ``created`` (a new ticket), or
``deadlines_recomputed`` (provisional deadlines counted again once the calendar knew their
year: the receiver updates the ticket it has by its ``id``). A delivery is acknowledged on 2xx
only; failures are retried with backoff and, after ``max_attempts``, parked in
``hotline:tickets:export:failed`` for an operator — never dropped silently.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import aiohttp
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, ResponseError

from common.aio import raise_if_cancel_requested
from tickets.store import EXPORT_STREAM

log = structlog.get_logger(__name__)

GROUP = "webhook"
FAILED = "hotline:tickets:export:failed"  # hash: ticket id → {"error", "attempts"}
MAX_BACKOFF_S = 60.0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class WebhookExporter:
    """One consumer of the export stream, posting each new ticket to ``url``."""

    def __init__(
        self,
        client: aioredis.Redis,
        url: str,
        *,
        consumer: str,
        token: str | None = None,
        max_attempts: int = 10,
        first_backoff_s: float = 1.0,
        timeout_s: float = 10.0,
        stream: str = EXPORT_STREAM,
    ) -> None:
        self._redis = client
        self._stream = stream
        self._url = url
        self._consumer = consumer
        self._token = token
        self._max_attempts = max_attempts
        self._first_backoff_s = first_backoff_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.delivered = 0
        self.parked = 0

    async def _ensure_group(self) -> None:
        try:
            # from the start of the stream: tickets made before the first export are sent too
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                raise_if_cancel_requested()
                try:
                    await self._ensure_group()
                    await self._drain(session)
                except RedisError as exc:
                    log.warning("tickets.export_redis_unavailable", error=str(exc))
                    await asyncio.sleep(1.0)

    async def _drain(self, session: aiohttp.ClientSession) -> None:
        while True:
            raise_if_cancel_requested()  # a cancelled blocking read redis-py retried instead of raising
            # our own pending entries first (a previous run died before acknowledging them)
            reply = cast(
                list[Any] | None,
                await self._redis.xreadgroup(GROUP, self._consumer, {self._stream: "0"}, count=20),
            )
            entries = [entry for _stream, stream_entries in (reply or []) for entry in stream_entries]
            if not entries:
                reply = cast(
                    list[Any] | None,
                    await self._redis.xreadgroup(GROUP, self._consumer, {self._stream: ">"}, count=20, block=1000),
                )
                entries = [entry for _stream, stream_entries in (reply or []) for entry in stream_entries]
            for entry_id, fields in entries:
                await self._deliver(session, _text(entry_id), {_text(k): _text(v) for k, v in fields.items()})

    async def _deliver(self, session: aiohttp.ClientSession, entry_id: str, fields: dict[str, str]) -> None:
        ticket_id = fields.get("ticket_id") or fields.get("idempotency_key", "")
        headers = {
            "Idempotency-Key": fields.get("idempotency_key", ticket_id),
            "Content-Type": "application/json",
            "X-Hotline-Event": fields.get("event", "created"),
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        backoff = self._first_backoff_s
        error = ""
        for attempt in range(1, self._max_attempts + 1):
            try:
                async with session.post(self._url, data=fields.get("ticket", "{}"), headers=headers) as response:
                    if 200 <= response.status < 300:
                        await self._redis.xack(self._stream, GROUP, entry_id)
                        self.delivered += 1
                        log.info("tickets.exported", ticket=ticket_id, attempt=attempt)
                        return
                    error = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            log.warning("tickets.export_failed", ticket=ticket_id, attempt=attempt, error=error)
            if attempt < self._max_attempts:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(FAILED, ticket_id, json.dumps({"error": error, "attempts": self._max_attempts}))
            pipe.xack(self._stream, GROUP, entry_id)
            await pipe.execute()
        self.parked += 1
        log.error("tickets.export_parked", ticket=ticket_id, error=error)
