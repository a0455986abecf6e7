"""Staged writes (calls/redis_budget.py ``write_staged``): the ones next to each other in the
queue go to Redis in one pipeline, each still coalesced, retried and dropped as its own."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import BusyLoadingError, ExecAbortError, OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from calls.redis_budget import RedisBudget, refused_for_good
from hotline.redis_process import RedisProcess
from tests.support.ports import free_port
from tests.support.waiting import wait_until

GUARD_S = 10.0


async def reads_processed(client: aioredis.Redis) -> int:
    """Read events Redis has handled: one per pipeline sent at once, one per lone command."""
    return int(cast(dict[str, int], await client.info("stats"))["total_reads_processed"])


async def test_staged_writes_queued_together_take_one_round_trip_and_keep_their_order(client: aioredis.Redis) -> None:
    budget = RedisBudget()
    budget.write_staged("warm-up", client, lambda pipe: pipe.hset("seats", "s0", "ready"))  # a connection
    assert await budget.drain(GUARD_S)
    before = await reads_processed(client)
    for n in range(20):
        budget.write_staged(f"seat {n}", client, lambda pipe, n=n: pipe.hset("seats", f"s{n}", "ringing"))  # type: ignore[misc]
        budget.write_staged(f"event {n}", client, lambda pipe, n=n: pipe.rpush("log", f"e{n}"), retry=False)  # type: ignore[misc]
    assert await budget.drain(GUARD_S)
    # 40 writes: one pipeline (plus the INFOs), not 40 round trips
    assert await reads_processed(client) - before <= 3
    assert await client.lrange("log", 0, -1) == [f"e{n}".encode() for n in range(20)]
    assert await client.hlen("seats") == 20
    await budget.close()


async def test_a_later_staged_write_of_a_key_replaces_the_pending_one_in_its_place(client: aioredis.Redis) -> None:
    budget = RedisBudget()

    def push(value: str, key: str | None = None) -> None:
        budget.write_staged(value, client, lambda pipe: pipe.rpush("order", value), key=key)

    push("a")
    push("seat-1: ringing", key="seat-1")
    push("b")
    push("seat-1: on call", key="seat-1")
    assert await budget.drain(GUARD_S)
    assert await client.lrange("order", 0, -1) == [b"a", b"seat-1: on call", b"b"]
    await budget.close()


async def test_plain_and_staged_writes_run_in_queue_order(client: aioredis.Redis) -> None:
    budget = RedisBudget()
    budget.write_staged("s1", client, lambda pipe: pipe.rpush("order", "s1"))
    budget.write("p1", lambda: client.rpush("order", "p1"))
    budget.write_staged("s2", client, lambda pipe: pipe.rpush("order", "s2"))
    budget.write_staged("s3", client, lambda pipe: pipe.rpush("order", "s3"))
    assert await budget.drain(GUARD_S)
    assert await client.lrange("order", 0, -1) == [b"s1", b"p1", b"s2", b"s3"]
    await budget.close()


async def test_a_refused_command_fails_only_its_own_write(client: aioredis.Redis) -> None:
    budget = RedisBudget()
    await client.set("text", "not a list")

    def stage(key: str, value: str) -> object:
        return lambda pipe: pipe.rpush(key, value)

    budget.write_staged("ok 1", client, stage("order", "1"), retry=False)  # type: ignore[arg-type]
    budget.write_staged("refused", client, stage("text", "x"), retry=False)  # type: ignore[arg-type]  # WRONGTYPE
    budget.write_staged("ok 2", client, stage("order", "2"), retry=False)  # type: ignore[arg-type]
    assert await budget.drain(GUARD_S)
    assert await client.lrange("order", 0, -1) == [b"1", b"2"]
    assert budget.writes_failed == 1
    await budget.close()


async def test_a_pipeline_that_cannot_reach_redis_keeps_its_writes_queued_in_order(tmp_path: Path) -> None:
    """Redis not up yet: as on the one-write path, the first write is tried (kept: it retries)
    and the writes behind it wait, the best-effort one too; all land once Redis is up, in order.
    A best-effort write at the head is dropped, as before."""
    budget = RedisBudget()
    server = RedisProcess(tmp_path / "redis", free_port())
    away = aioredis.Redis(host="127.0.0.1", port=server.port, socket_connect_timeout=0.2)
    try:
        budget.write_staged("lost event", away, lambda pipe: pipe.rpush("order", "lost"), retry=False)
        for value, retry in (("seat", True), ("event", False), ("waiting", True)):
            budget.write_staged(value, away, lambda pipe, value=value: pipe.rpush("order", value), retry=retry)  # type: ignore[misc]
        await wait_until(lambda: budget.writes_failed >= 2, timeout_s=GUARD_S)  # no Redis there
        assert budget.backlog == 3  # the head (best effort) dropped, the rest kept
        server.start()
        assert await budget.drain(GUARD_S)
        assert await away.lrange("order", 0, -1) == [b"seat", b"event", b"waiting"]
    finally:
        await budget.close()
        await away.aclose()
        server.stop()


async def test_a_stage_that_raises_fails_its_own_write_only(client: aioredis.Redis) -> None:
    budget = RedisBudget()

    def broken(pipe: object) -> None:
        raise TypeError("a bug in a stage")

    budget.write_staged("ok 1", client, lambda pipe: pipe.rpush("order", "1"))
    budget.write_staged("broken", client, broken)
    budget.write_staged("ok 2", client, lambda pipe: pipe.rpush("order", "2"))
    assert await budget.drain(GUARD_S)
    assert await client.lrange("order", 0, -1) == [b"1", b"2"]
    assert budget.writes_failed == 1 and budget.backlog == 0
    budget.write_staged("ok 3", client, lambda pipe: pipe.rpush("order", "3"))  # the writer still runs
    assert await budget.drain(GUARD_S)
    assert await client.lrange("order", 0, -1) == [b"1", b"2", b"3"]
    await budget.close()


async def test_a_refused_write_a_later_write_of_its_key_replaced_is_not_retried(client: aioredis.Redis) -> None:
    """A keyed write refused in a way that passes (here NOSCRIPT) stays queued; a newer write of
    the same key that arrived meanwhile lands in the next pipeline beside it: the old one is then
    given up, never written after the newer one (only the last write of a key matters)."""
    budget = RedisBudget()
    newer_sent = False

    def old_state(pipe: Pipeline) -> None:
        nonlocal newer_sent
        if not newer_sent:  # the newer write comes while the old one is on its way
            newer_sent = True
            budget.write_staged("seat-1 newer", client, lambda p: p.hset("seats", "seat-1", "ready"), key="seat-1")
        pipe.evalsha("0" * 40, 0)  # NOSCRIPT: refused, retried (it passes)

    budget.write_staged("seat-1 older", client, old_state, key="seat-1")
    assert await budget.drain(GUARD_S)
    assert await client.hget("seats", "seat-1") == b"ready"
    assert budget.backlog == 0
    await budget.close()


async def test_a_write_redis_refuses_for_good_is_not_retried_and_holds_nothing_up(client: aioredis.Redis) -> None:
    """WRONGTYPE is refused the same way every time: a retrying write so refused is given up
    (an error line), staged or not, and the writes queued behind it go through."""
    budget = RedisBudget()
    await client.set("text", "not a list")
    budget.write_staged("ok 1", client, lambda pipe: pipe.rpush("order", "1"))
    budget.write_staged("refused staged", client, lambda pipe: pipe.rpush("text", "x"))  # retry=True
    budget.write_staged("ok 2", client, lambda pipe: pipe.rpush("order", "2"))
    budget.write("refused plain", lambda: client.rpush("text", "y"))  # retry=True
    budget.write("ok 3", lambda: client.rpush("order", "3"))
    assert await budget.drain(GUARD_S)
    assert await client.lrange("order", 0, -1) == [b"1", b"2", b"3"]
    assert budget.writes_failed == 2
    assert await client.get("text") == b"not a list"
    await budget.close()


def test_passing_refusals_are_retried_and_others_are_not() -> None:
    assert refused_for_good(ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"))
    assert refused_for_good(ResponseError("ERR wrong number of arguments for 'rpush' command"))
    assert refused_for_good(ExecAbortError("Transaction discarded because of previous errors."))
    # redis-py's own classes carry the text without the code
    assert not refused_for_good(ReadOnlyError("You can't write against a read only replica."))
    assert not refused_for_good(BusyLoadingError("Redis is loading the dataset in memory"))
    assert not refused_for_good(OutOfMemoryError("command not allowed when used memory > 'maxmemory'."))
    assert not refused_for_good(ResponseError("LOADING Redis is loading the dataset in memory"))
    assert not refused_for_good(ResponseError("NOREPLICAS Not enough good replicas to write."))
    assert not refused_for_good(RedisConnectionError("Connection refused"))
    assert not refused_for_good(TimeoutError())
