"""Call records never go back in time: every version the tracker keeps has the next revision,
and RedisCallStore writes a version (and its index entries) only where the stored one is not
newer — whatever order the writes of a record's versions reach Redis in (a hung Redis whose
kernel held a timed-out write, then took the retry of a newer version first). On a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from calls.model import CallRecord, CallState
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from common.redis_sentinel import ReplicationAcks, SentinelRedis
from hotline.redis_process import RedisProcess
from tests.support.ports import free_port
from tests.unit.test_call_store_writes import KEYS, T0, snapshot, versions

RETENTION = timedelta(days=30)
OPEN = "hotline:calls:open:kunming"


def revised(call_id: str, caller: str) -> list[CallRecord]:
    """The versions of a call (test_call_store_writes), numbered as the tracker numbers them."""
    return [v.model_copy(update={"revision": n + 1}) for n, v in enumerate(versions(call_id, caller))]


NEWEST = len(revised("k", "1")) - 1


async def _shuffled(port: int, order: list[int], stores: list[int], other: bool) -> None:
    shuffled = aioredis.Redis(port=port, db=4)
    in_order = aioredis.Redis(port=port, db=5)
    try:
        for db in (shuffled, in_order):
            await db.flushdb()
        call, bystander = revised("k-1.1", "13800138001"), revised("k-2.1", "13800138002")
        # two stores: the writer's (which remembers the index entries it wrote) and a fresh one
        writers = [RedisCallStore(shuffled, RETENTION, "kunming", KEYS) for _ in range(2)]
        for n, (version, store) in enumerate(zip(order, stores, strict=True)):
            batch = [call[version], *([bystander[n % len(bystander)]] if other else [])]  # its versions cycle
            stale = await writers[store].save_many(batch)
            assert set(stale) <= {"k-1.1", "k-2.1"}
        reference = RedisCallStore(in_order, RETENTION, "kunming", KEYS)
        for version in range(max(order) + 1):  # what the writes in their own order leave
            await reference.save(call[version])
        stored = await writers[0].get("k-1.1")
        assert stored == call[max(order)]  # the newest version that was written, whatever came after it
        assert (b"k-1.1" in await shuffled.smembers(OPEN)) == call[max(order)].is_open
        if not other:
            assert await snapshot(shuffled) == await snapshot(in_order)  # index entries as well
    finally:
        await shuffled.aclose()
        await in_order.aclose()


@st.composite
def _arrivals(draw: st.DrawFn) -> tuple[list[int], list[int], bool]:
    """The versions' writes in the order Redis takes them: each at least once (a retry may come
    again, before or after newer ones), by either of two stores, with or without another call."""
    order = draw(st.permutations(range(NEWEST + 1)))
    retries = draw(st.lists(st.integers(0, NEWEST), max_size=6))
    for version in retries:
        order.insert(draw(st.integers(0, len(order))), version)
    stores = draw(st.lists(st.integers(0, 1), min_size=len(order), max_size=len(order)))
    return order, stores, draw(st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_arrivals())
def test_the_newest_version_stays_whatever_order_the_writes_land_in(
    redis_server: RedisProcess, arrivals: tuple[list[int], list[int], bool]
) -> None:
    asyncio.run(_shuffled(redis_server.port, *arrivals))


async def test_a_record_written_before_revisions_is_replaced_and_a_stale_one_reported(client: aioredis.Redis) -> None:
    store = RedisCallStore(client, RETENTION, "kunming", KEYS)
    call = revised("k-3.1", "13800138003")
    old_format = json.loads(call[NEWEST].model_dump_json())
    del old_format["revision"]
    await client.set("hotline:call:k-3.1", json.dumps(old_format))
    assert await store.get("k-3.1") == call[NEWEST].model_copy(update={"revision": 0})  # still read
    assert await store.save(call[1])  # any saved change replaces it
    assert await store.get("k-3.1") == call[1]
    await client.set("hotline:call:k-4.1", "not JSON at all")  # nothing to compare with: replaced too
    assert await store.save(call[2].model_copy(update={"call_id": "k-4.1"}))
    assert await store.save_many([call[NEWEST], call[0].model_copy(update={"call_id": "k-4.1"})]) == {"k-4.1": 3}
    assert not await store.save(call[3])  # older than the stored one: left out, nothing written
    assert await store.get("k-3.1") == call[NEWEST]
    assert await client.smembers(OPEN) == {b"k-4.1"}  # k-3.1 ended: no stale version put it back


class _CountingConnection(Connection):
    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        await super().send_packed_command(command, check_health)


async def test_a_batch_is_still_one_round_trip(redis_server: RedisProcess, client: aioredis.Redis) -> None:
    pool = aioredis.ConnectionPool(connection_class=_CountingConnection, port=redis_server.port)
    counted = aioredis.Redis(connection_pool=pool)
    try:
        store = RedisCallStore(counted, RETENTION, "kunming", KEYS)
        calls = [revised(f"k-{n}.1", f"1380013{n:04d}") for n in range(40)]
        await counted.ping()
        await client.config_resetstat()
        _CountingConnection.sends = 0
        assert await store.save_many([call[NEWEST - 1] for call in calls]) == {}
        assert _CountingConnection.sends == 1  # one send, its replies read back: one round trip
        stats = await client.info("commandstats")
        assert [stats[f"cmdstat_{c}"]["calls"] for c in ("multi", "eval", "exec")] == [1, 1, 1]
        assert len(await client.zrange("hotline:calls:recent:kunming", 0, -1)) == 40
    finally:
        await counted.aclose()
        await pool.aclose()


class HoldingProxy:
    """A TCP proxy in front of Redis that can hold what clients send (as a kernel holds the
    bytes of a write to a hung Redis, or of a cut link) and deliver it later, in order, even
    after the client gave up on the connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.holding = False
        self._held: list[tuple[asyncio.StreamWriter, bytearray, list[bool]]] = []
        self._server: asyncio.Server | None = None
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Task[None]]] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        held: bytearray | None = None
        gone = [False]

        async def back() -> None:
            while data := await up_r.read(65536):
                if not client_w.is_closing():
                    client_w.write(data)

        replies = asyncio.create_task(back())
        self._links.append((client_w, up_w, replies))
        while data := await client_r.read(65536):
            if held is None and self.holding:
                held = bytearray()
                self._held.append((up_w, held, gone))
            if held is not None:
                held.extend(data)  # once held, all that follows on this connection waits behind it
            else:
                up_w.write(data)
        client_w.close()
        gone[0] = True
        if held is None:
            up_w.close()
            replies.cancel()

    def release(self) -> None:
        """Deliver the held bytes (to Redis, which then runs them), then close those links."""
        for up_w, held, gone in self._held:
            up_w.write(bytes(held))
            if gone[0]:
                up_w.write_eof()
        self._held.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for client_w, up_w, replies in self._links:
            replies.cancel()
            for writer in (client_w, up_w):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        server.send_signal(signal.SIGCONT)
        server.stop()


@pytest.fixture
async def proxy(own_redis: RedisProcess) -> AsyncIterator[HoldingProxy]:
    holding = HoldingProxy(own_redis.port)
    await holding.start()
    yield holding
    await holding.stop()


async def settled(tracker: CallTracker) -> None:
    """Flush until nothing is left, as the writer's retries (run_flusher) would."""
    for _ in range(100):
        if await tracker.flush_dirty() == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{tracker.unsaved} records still unsaved")


async def _evals(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_eval", {}).get("calls", 0))


async def test_a_write_a_hung_redis_takes_after_a_newer_one_does_not_undo_it(
    own_redis: RedisProcess, proxy: HoldingProxy
) -> None:
    """Redis hangs (SIGSTOP) while the tracker writes a version of a call that is in the IVR:
    the write times out (1 s) with its bytes on their way. The call ends; Redis answers again and the
    ended version is saved. Then the held write of the older version reaches Redis (the proxy
    delivers it last: the order a hung Redis may take them in, forced here). The ended record
    stays — as a plain SET sent the same way shows it would not without the revision check."""
    direct = aioredis.Redis(port=own_redis.port)
    # one try per write: the tracker's writer is what tries again
    via_proxy = aioredis.Redis(port=proxy.port, socket_timeout=1.0, retry=Retry(NoBackoff(), 0))
    control = aioredis.Redis(port=proxy.port, socket_timeout=1.0, retry=Retry(NoBackoff(), 0))
    tracker = CallTracker(RedisCallStore(via_proxy, RETENTION, "kunming", KEYS), "kunming", clock=lambda: T0)
    try:
        await tracker.ivr_started("k-5.1", "PJSIP/trunk-5", "13800138005", "", "12345")
        await tracker.ivr_step("k-5.1", "welcome")
        await settled(tracker)
        for _ in range(100):  # connected before the hang (a slow machine may time out a first try)
            with contextlib.suppress(aioredis.RedisError):
                if await control.set("hotline:control", "first"):
                    break

        own_redis.send_signal(signal.SIGSTOP)
        proxy.holding = True
        await tracker.ivr_step("k-5.1", "main_menu")  # revision 3, in the IVR
        assert await tracker.flush_dirty() == 1  # timed out: the write is on its way, Redis is hung
        with pytest.raises(aioredis.RedisError):
            await control.set("hotline:control", "older")  # the control: a write without revisions
        ended = await tracker.hung_up("k-5.1", "Normal Clearing")
        assert ended is not None and ended.state is CallState.ENDED and ended.revision == 4

        own_redis.send_signal(signal.SIGCONT)
        proxy.holding = False
        await settled(tracker)
        await direct.set("hotline:control", "newer")
        before = await _evals(direct)

        proxy.release()  # the older version's write lands last
        for _ in range(200):
            if await _evals(direct) > before and await direct.get("hotline:control") == b"older":
                break
            await asyncio.sleep(0.05)
        assert await direct.get("hotline:control") == b"older"  # a plain write does go back in time
        assert await _evals(direct) >= before + 1  # the held record write ran …
        stored = await RedisCallStore(direct, RETENTION, "kunming", KEYS).get("k-5.1")
        assert stored == ended  # … and left the ended record as it was
        assert await direct.smembers(OPEN) == set()
    finally:
        own_redis.send_signal(signal.SIGCONT)
        await via_proxy.aclose()
        await control.aclose()
        await direct.aclose()


async def test_a_tracker_behind_the_store_saves_above_its_revision(client: aioredis.Redis) -> None:
    """A record another controller left at a higher revision, which this one did not adopt (it
    changed the call before reading it): its own newest version goes out above the stored one."""
    store = RedisCallStore(client, RETENTION, "kunming", KEYS)
    assert await store.save(revised("k-6.1", "13800138006")[4].model_copy(update={"revision": 50}))
    tracker = CallTracker(store, "kunming", clock=lambda: T0)
    await tracker.ivr_started("k-6.1", "PJSIP/trunk-6", "13800138006", "", "12345")
    ended = await tracker.hung_up("k-6.1", "Normal Clearing")
    assert ended is not None and ended.revision == 2
    assert await tracker.flush_dirty() == 0
    stored = await store.get("k-6.1")
    assert stored == ended.model_copy(update={"revision": 51})
    assert await client.smembers(OPEN) == set()


async def test_behind_sentinel_a_batch_is_still_followed_by_wait(
    redis_server: RedisProcess, client: aioredis.Redis
) -> None:
    """The script runs inside MULTI/EXEC, so common/redis_sentinel.py's WAIT follows it."""
    primary = SentinelRedis(port=redis_server.port)
    primary.acks = ReplicationAcks(replicas=1, timeout_ms=20)
    try:
        store = RedisCallStore(primary, RETENTION, "kunming", KEYS)
        assert await store.save_many([revised("k-7.1", "13800138007")[NEWEST]]) == {}
        assert (primary.acks.waited, primary.acks.short) == (1, 1)  # no replica here: counted short
        assert await store.get("k-7.1") == revised("k-7.1", "13800138007")[NEWEST]
    finally:
        await primary.aclose()


def test_the_revision_is_the_last_field_the_script_reads() -> None:
    """SAVE_SCRIPT reads the stored revision at the end of the JSON (a full decode otherwise)."""
    assert list(CallRecord.model_fields)[-1] == "revision"
    assert revised("k-8.1", "13800138008")[NEWEST].model_dump_json().endswith(f',"revision":{NEWEST + 1}}}')
