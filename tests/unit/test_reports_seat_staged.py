"""A seat's report count rides the write-behind's pipeline with the seat's own write (one round
trip, not two), counted once when sent again, the same as ``apply`` writes — on a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from acd.seat import Seat, SeatState
from calls.redis_budget import RedisBudget
from hotline.redis_process import RedisProcess
from reports.counting import seat_increments
from reports.service import ReportService
from reports.store import RedisRollups

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


async def _reads(client: aioredis.Redis) -> int:
    return int((await client.info("stats"))["total_reads_processed"])


async def _hashes(client: aioredis.Redis) -> dict[bytes | str, dict[bytes | str, bytes | str]]:
    return {key: await client.hgetall(key) for key in sorted(await client.keys("hotline:reports:seats:*"))}


async def test_a_seat_count_goes_in_the_seats_pipeline_and_counts_once(redis_server: RedisProcess) -> None:
    client = aioredis.Redis.from_url(redis_server.url, db=5)
    budget = RedisBudget()
    try:
        await client.flushdb()
        rollups = RedisRollups(client, keep=timedelta(days=40), marker_ttl=timedelta(days=1))
        reports = ReportService(
            rollups, "p", "Asia/Shanghai", lambda what, job: None,
            staged=lambda what, stage: budget.write_staged(what, client, stage),
        )  # fmt: skip
        ready = Seat("1001", SeatState.READY, since=T0)
        ringing = Seat("1001", SeatState.RINGING, since=T0 + timedelta(seconds=42))
        await reports.on_seat_change(ready)  # the first state seen: counted from its change
        before = await _reads(client)
        budget.write_staged("seat 1001", client, lambda pipe: pipe.hset("hotline:seats:p", "1001", "ringing"))
        await reports.on_seat_change(ringing)
        assert await budget.drain(5)
        assert await _reads(client) - before == 2  # the INFO above and ONE pipeline: seat and count
        assert await client.hget("hotline:seats:p", "1001") == b"ringing"
        counted = await _hashes(client)
        assert {fields[b"state_ms.ready\x1f1001"] for fields in counted.values()} == {b"42000"}  # hour and day

        # the same change again (a retried round): counted once
        await reports.on_seat_change(ready)
        budget.write_staged("seat 1001", client, lambda pipe: pipe.hset("hotline:seats:p", "1001", "ringing"))
        await reports.on_seat_change(ringing)
        assert await budget.drain(5)
        assert await _hashes(client) == counted

        # what ``apply`` writes for the same event on a fresh Redis db: the same hashes
        other = aioredis.Redis.from_url(redis_server.url, db=6)
        try:
            await other.flushdb()
            by_apply = RedisRollups(other, keep=timedelta(days=40), marker_ttl=timedelta(days=1))
            event = f"seat:1001:{T0.isoformat()}:ready"
            assert await by_apply.apply("p", event, seat_increments(ready, ringing, reports.tz))
            assert await _hashes(other) == counted
            assert await other.ttl(f"hotline:reports:counted:p:{event}") > 0
        finally:
            await other.aclose()
    finally:
        await budget.close()
        await client.aclose()
