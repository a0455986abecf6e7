"""Export of new tickets to a webhook: at least once, one idempotency key per ticket, parked
after the last attempt (real Redis, a local aiohttp receiver)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from hotline.controller_tasks import every
from ivr.calendar import PlatformCalendar
from tickets.export import FAILED, WebhookExporter
from tickets.model import Transcript
from tickets.store import RedisTicketStore


class Receiver:
    """A downstream system that fails the first ``failures`` posts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.posts: list[tuple[str, dict[str, Any], str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.posts.append((request.headers["Idempotency-Key"], body, request.headers.get("Authorization", "")))
        if len(self.posts) <= self.failures:
            return web.Response(status=503)
        return web.Response(status=201)


async def make_ticket(client: aioredis.Redis, recording: str) -> str:
    calendar = PlatformCalendar()
    store = RedisTicketStore(client, lambda _p: calendar)
    result = await store.create_from_voicemail(
        recording=recording,
        platform="kunming",
        caller="13800000001",
        call_id=recording,
        accepted_at=datetime(2026, 3, 2, 1, tzinfo=UTC),
        transcript=Transcript(text="路灯坏了"),
    )
    return result.ticket.id


@contextlib.asynccontextmanager
async def exporting(client: aioredis.Redis, receiver: Receiver, **options: Any) -> AsyncIterator[WebhookExporter]:
    app = web.Application()
    app.router.add_post("/tickets", receiver.handle)
    server = TestServer(app)
    await server.start_server()
    exporter = WebhookExporter(
        client, str(server.make_url("/tickets")), consumer="c1", token="s3cret", first_backoff_s=0.01, **options
    )
    task = asyncio.create_task(exporter.run())
    try:
        yield exporter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.close()


async def eventually(probe: Any, timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not probe():  # noqa: ASYNC110 - polling counters owned by another task
            await asyncio.sleep(0.02)


async def test_a_ticket_is_retried_with_one_idempotency_key(client: aioredis.Redis) -> None:
    ticket_id = await make_ticket(client, "voicemail/a.wav")  # made before the exporter ran: still sent
    receiver = Receiver(failures=2)
    async with exporting(client, receiver) as exporter:
        await eventually(lambda: exporter.delivered == 1)
    uid = receiver.posts[-1][1]["uid"]
    assert uid and [key for key, _, _ in receiver.posts] == [f"{ticket_id}:{uid}"] * 3
    assert receiver.posts[-1][1]["id"] == ticket_id
    assert receiver.posts[-1][2] == "Bearer s3cret"
    pending = await client.xpending("hotline:tickets:new", "webhook")
    assert pending["pending"] == 0


async def test_a_receiver_that_never_accepts_parks_the_ticket(client: aioredis.Redis) -> None:
    ticket_id = await make_ticket(client, "voicemail/b.wav")
    receiver = Receiver(failures=100)
    async with exporting(client, receiver, max_attempts=3) as exporter:
        await eventually(lambda: exporter.parked == 1)
    assert len(receiver.posts) == 3
    assert await client.hexists(FAILED, ticket_id)


class _SwallowingRedis:
    """A Redis client whose blocking read, when cancelled, carries on and answers nothing, as
    redis-py was seen to do (it retried the read the cancel cut): the task's cancel is spent."""

    def __init__(self) -> None:
        self.reads = 0

    async def xgroup_create(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def xreadgroup(self, *args: Any, **kwargs: Any) -> None:
        self.reads += 1
        if kwargs.get("block"):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(kwargs["block"] / 1000)


async def test_a_cancel_the_redis_client_swallowed_still_stops_the_exporter() -> None:
    fake = _SwallowingRedis()
    exporter = WebhookExporter(cast(Any, fake), "http://127.0.0.1:9/tickets", consumer="c1")
    task = asyncio.create_task(exporter.run())
    await eventually(lambda: fake.reads >= 2)  # in its blocking read
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    assert done == {task} and task.cancelled()  # before: it read on for ever (a hung test, a stuck stop)


async def test_a_periodic_job_whose_client_swallowed_the_cancel_still_stops() -> None:
    rounds = 0

    async def job() -> None:
        nonlocal rounds
        rounds += 1
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)

    task = asyncio.create_task(every(0.01, job))
    await eventually(lambda: rounds >= 2)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    assert done == {task} and task.cancelled()
