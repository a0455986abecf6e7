"""redis.sentinel's config checks, the replicated transactions (WAIT on the same connection),
and a demoted primary's READONLY treated as Redis being away (retried, never dropped)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ReadOnlyError

from calls.redis_budget import RedisBudget
from common.redis_sentinel import ReplicationAcks, SentinelRedis, parse_node, replication_metrics
from hotline.config import ConfigError, parse_config
from hotline.local_secrets import redis_client, redis_where
from hotline.redis_process import RedisProcess
from tests.support.ports import free_port
from tests.support.waiting import wait_until

SENTINEL = "redis:\n  sentinel:\n    service_name: hotline\n    nodes: ['10.0.0.1:26379', 'sentinel-b.example:26379']\n"


def errors_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yaml", Path("/srv/hotline"))
    return str(caught.value)


def test_a_sentinel_section_is_read_and_its_password_file_anchored() -> None:
    config = parse_config(SENTINEL + "    password_file: sentinel-pw\n", "config.yaml", Path("/srv/hotline"))
    sentinel = config.redis.sentinel
    assert sentinel is not None
    assert sentinel.service_name == "hotline"
    assert sentinel.nodes == ("10.0.0.1:26379", "sentinel-b.example:26379")
    assert sentinel.password_file == Path("/srv/hotline/sentinel-pw")
    assert (sentinel.replicas_to_ack, sentinel.ack_timeout_ms) == (1, 500)
    assert parse_config("", "config.yaml", Path("/srv/hotline")).redis.sentinel is None


@pytest.mark.parametrize(
    ("nodes", "says"),
    [
        ("['10.0.0.1']", "is not host:port"),
        ("['10.0.0.1:0']", "is not host:port"),
        ("['10.0.0.1:65536']", "is not host:port"),
        ("['a,b:26379']", "is not a host name or an IP address"),
        ("['a b:26379']", "is not a host name or an IP address"),
        ('["a\\n:26379"]', "is not a host name or an IP address"),
        ("['a:２６３７９']", "is not host:port"),
        ("['x:1', 'x:1']", "a sentinel is named twice"),
        ("[]", "at least 1 item"),
    ],
)
def test_bad_sentinel_nodes_are_named(nodes: str, says: str) -> None:
    message = errors_of(f"redis:\n  sentinel:\n    service_name: hotline\n    nodes: {nodes}\n")
    assert "config.yaml:4: redis.sentinel.nodes" in message
    assert says in message


def test_sentinel_section_mistakes_are_named() -> None:
    assert "redis.sentinel.service_name" in errors_of("redis:\n  sentinel:\n    nodes: ['a:1']\n")
    assert "redis.sentinel.service_name" in errors_of(
        "redis:\n  sentinel:\n    service_name: 'my master'\n    nodes: ['a:1']\n"
    )
    assert "redis.sentinel.service_name" in errors_of(
        "redis:\n  sentinel:\n    service_name: \"hotline\\n\"\n    nodes: ['a:1']\n"
    )
    assert "redis.sentinel.quorum" in errors_of(SENTINEL + "    quorum: 2\n")  # unknown key
    assert "redis.sentinel.replicas_to_ack" in errors_of(SENTINEL + "    replicas_to_ack: -1\n")
    assert "with sentinel, the url must be redis://" in errors_of(SENTINEL + "  url: rediss://r.example/0\n")


def test_parse_node_takes_v6_in_brackets() -> None:
    assert parse_node("[::1]:26379") == ("::1", 26379)
    assert parse_node("redis-a:1") == ("redis-a", 1)


@pytest.fixture
def lone_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


def exposed(client: object) -> dict[str, float]:
    return {metric.name: metric.value for metric in replication_metrics(client)}


async def test_a_transaction_waits_for_replicas_on_its_own_connection(lone_redis: RedisProcess) -> None:
    acks = ReplicationAcks(replicas=1, timeout_ms=50)
    client = SentinelRedis(port=lone_redis.port)
    client.acks = acks
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.set("k", "v")
            pipe.incr("n")
            assert await pipe.execute() == [True, 1]
        # no replica: the write is done, the shortfall is counted (not raised, not retried)
        assert (acks.waited, acks.short) == (1, 1)
        async with client.pipeline(transaction=False) as pipe:  # no MULTI: no WAIT
            pipe.get("k")
            assert await pipe.execute() == [b"v"]
        assert acks.waited == 1
        # a lone primary: the transactions of the next seconds do not wait again (one timeout
        # per hold-off, not one per write), and they are counted as unconfirmed
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr("n")
            assert await pipe.execute() == [2]
        assert (acks.waited, acks.short, acks.unconfirmed) == (1, 1, 1)
        assert exposed(client) == {
            "hotline_redis_replica_waits_total": 1,
            "hotline_redis_replica_shortfalls_total": 1,
            "hotline_redis_writes_unconfirmed_total": 1,
            "hotline_redis_replica_hold_off": 1,
        }
        acks.hold_off_until = 0.0  # the hold-off over: the next transaction waits again
        async with client.pipeline(transaction=True) as pipe:
            pipe.incr("n")
            assert await pipe.execute() == [3]
        assert (acks.waited, acks.short, acks.unconfirmed) == (2, 2, 1)
        acks.hold_off_until = 0.0
        assert exposed(client)["hotline_redis_replica_hold_off"] == 0
        # a plain client (no redis.sentinel): the same families, all 0
        assert set(exposed(object()).values()) == {0}
        assert set(exposed(object())) == set(exposed(client))
    finally:
        await client.aclose()


async def test_a_write_a_read_only_replica_refuses_is_retried_until_it_is_primary(lone_redis: RedisProcess) -> None:
    """A demoted primary answers READONLY: the write-behind keeps it and lands it once the node
    (here promoted with REPLICAOF NO ONE) takes writes; a call-path read gets its default."""
    admin = redis.Redis(port=lone_redis.port)
    admin.replicaof("127.0.0.1", free_port())  # a primary nobody runs: read-only from now on
    client = SentinelRedis(port=lone_redis.port)
    budget = RedisBudget(0.5)
    try:
        with pytest.raises(ReadOnlyError):
            await client.set("probe", "1")

        async def write() -> None:
            await client.set("record", "kept")

        async def failing_read() -> str:
            await client.set("other", "x")
            return "written"

        assert await budget.read("a write on the call path", failing_read, "default") == "default"
        budget.write("the call record", write)
        await wait_until(lambda: budget.writes_failed >= 2, timeout_s=10)
        assert budget.backlog == 1 and budget.writes_dropped == 0  # kept, not dropped
        admin.replicaof("NO", "ONE")
        assert await budget.drain(30)
        assert admin.get("record") == b"kept"
    finally:
        await budget.close()
        await client.aclose()
        admin.close()


async def test_the_one_client_factory_goes_through_the_sentinels(tmp_path: Path) -> None:
    (tmp_path / "sentinel-pw").write_text("sentinel-secret\n", encoding="utf-8")
    text = (
        "redis:\n  url: redis://app:data%40pw@ignored:1/3\n"
        "  sentinel:\n    service_name: hotline\n    nodes: ['10.0.0.1:26379', '[::1]:26380']\n"
        "    password_file: sentinel-pw\n    replicas_to_ack: 2\n"
    )
    client = redis_client(parse_config(text, "config.yaml", tmp_path), socket_timeout=3)
    try:
        assert isinstance(client, SentinelRedis)
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "hotline"
        kwargs = pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("app", "data@pw", 3)
        assert client.owned_sentinel is not None
        sentinels = [s.connection_pool.connection_kwargs for s in client.owned_sentinel.sentinels]
        assert [(s["host"], s["port"], s["password"], s["socket_timeout"]) for s in sentinels] == [
            ("10.0.0.1", 26379, "sentinel-secret", 3),
            ("::1", 26380, "sentinel-secret", 3),
        ]
        assert (client.acks.replicas, client.acks.timeout_ms) == (2, 500)
        assert redis_where(parse_config(text, "config.yaml", tmp_path)) == "sentinel hotline@10.0.0.1:26379,[::1]:26380"
    finally:
        await client.aclose()
    missing = parse_config(text.replace("sentinel-pw", "nowhere"), "config.yaml", tmp_path)
    with pytest.raises(ConfigError, match=r"redis\.sentinel\.password_file: cannot read it"):
        redis_client(missing)
    (tmp_path / "sentinel-pw").write_text("\n", encoding="utf-8")  # emptied: not "no password"
    with pytest.raises(ConfigError, match=r"redis\.sentinel\.password_file: .*sentinel-pw is empty"):
        redis_client(parse_config(text, "config.yaml", tmp_path))


@pytest.mark.parametrize("sentinel", [False, True])
def test_a_write_held_back_by_a_cut_link_is_dropped_before_the_client_retries(sentinel: bool) -> None:
    """TCP_USER_TIMEOUT below the read timeout (hotline/local_secrets.py): unacknowledged bytes are
    given up by the kernel before the client's own timeout, so they cannot land after a retry."""
    import socket

    text = SENTINEL if sentinel else ""
    client = redis_client(parse_config(text, "config.yaml", Path("/srv/hotline")), socket_timeout=3)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_keepalive"] is True
    assert kwargs["socket_keepalive_options"][socket.TCP_USER_TIMEOUT] == 2000 < kwargs["socket_timeout"] * 1000
    assert kwargs["socket_keepalive_options"][socket.TCP_KEEPIDLE] == 30
    # and a pooled connection Redis closed is seen before use (tests/unit/test_local_secrets.py)
    assert not client.connection_pool.maint_notifications_enabled()  # type: ignore[no-untyped-call]
    if sentinel:  # the sentinels' own connections too (asked for the primary after a restart)
        assert isinstance(client, SentinelRedis) and client.owned_sentinel is not None
        for node in client.owned_sentinel.sentinels:
            assert not node.connection_pool.maint_notifications_enabled()  # type: ignore[no-untyped-call]
    # no read timeout given: nothing to stay below, redis-py's defaults
    plain = redis_client(parse_config(text, "config.yaml", Path("/srv/hotline")))
    assert "socket_keepalive_options" not in plain.connection_pool.connection_kwargs
