"""Reaching a Redis primary through Redis Sentinel, and making its transactions replicated.

A failover promotes a replica; a write the old primary acknowledged but had not yet sent to it
is lost. So, behind Sentinel, every MULTI/EXEC transaction (the writes that matter are all
transactions: a call record, a ticket, a hand-off, an ASR job's ack) is followed on **its own
connection** by ``WAIT <replicas> <timeout_ms>`` (WAIT counts the replicas that have the
connection's last write: sent on another connection of the pool it would prove nothing).
Fewer replicas than asked is logged and counted, not raised: retrying an idempotent write does
not make it replicated, and the primary's own ``min-replicas-to-write`` is what refuses writes
when no replica is in sync (docs/operations.md). After a WAIT that fell short (a primary left
with no replica, say, after a failover) the next ``HOLD_OFF_S`` seconds of transactions do not
wait at all (counted as unconfirmed), so a lone primary costs one timeout per period, not one
per write: the background writer is a single queue.

redis-py follows a failover by itself: a ``SentinelConnectionPool`` asks the sentinels for the
primary on every new connection, and a demoted primary's ``READONLY`` reply becomes a
``ConnectionError`` (the connection is dropped and the next one asks again). Callers see the
switch as Redis being away for a few seconds, which they already wait out.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio.client import Pipeline, Redis
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import Sentinel

from common.metrics import Metric

log = structlog.get_logger(__name__)

HOLD_OFF_S = 5.0  # after a WAIT fell short, transactions skip WAIT this long


@dataclass
class ReplicationAcks:
    """What the transactions' WAITs asked and got (for logs, tests and docs/reliability.md)."""

    replicas: int
    timeout_ms: int
    waited: int = 0
    short: int = 0  # transactions fewer replicas than ``replicas`` acknowledged in time
    unconfirmed: int = 0  # transactions that skipped WAIT in a hold-off after a short one
    hold_off_until: float = 0.0  # monotonic time

    def holding_off(self) -> bool:
        return time.monotonic() < self.hold_off_until

    def metrics(self) -> list[Metric]:
        """The counts for /metrics (all 0 without ``redis.sentinel``: nothing is waited for)."""
        return [
            Metric(
                "hotline_redis_replica_waits_total",
                "counter",
                "Transactions followed by WAIT for the replicas (redis.sentinel)",
                self.waited,
            ),
            Metric(
                "hotline_redis_replica_shortfalls_total",
                "counter",
                "WAITs that fewer replicas than redis.sentinel.replicas_to_ack acknowledged in time",
                self.short,
            ),
            Metric(
                "hotline_redis_writes_unconfirmed_total",
                "counter",
                "Transactions written without WAIT during a hold-off after a shortfall (not known replicated)",
                self.unconfirmed,
            ),
            Metric(
                "hotline_redis_replica_hold_off",
                "gauge",
                "1 while transactions skip WAIT after a shortfall (no replica confirms writes now)",
                float(self.holding_off()),
            ),
        ]


class ReplicatedPipeline(Pipeline):
    """A pipeline whose MULTI/EXEC is followed by WAIT on the same connection."""

    acks: ReplicationAcks

    async def _execute_transaction(  # type: ignore[no-untyped-def]
        self, connection: Connection, commands: Any, raise_on_error: bool
    ):
        result = await super()._execute_transaction(connection, commands, raise_on_error)
        acks = self.acks
        if acks.replicas <= 0:
            return result
        if acks.holding_off():
            acks.unconfirmed += 1
        else:
            await connection.send_command("WAIT", acks.replicas, acks.timeout_ms)
            got = int(await connection.read_response())
            acks.waited += 1
            if got < acks.replicas:
                acks.short += 1
                acks.hold_off_until = time.monotonic() + HOLD_OFF_S
                log.warning(
                    "redis.write_not_replicated", replicas=got, wanted=acks.replicas, timeout_ms=acks.timeout_ms
                )
        return result


class SentinelRedis(Redis):
    """The primary's client (``Sentinel.master_for``); closing it closes the sentinels' clients too."""

    owned_sentinel: Sentinel | None = None  # (``sentinel`` is a Redis command's method)
    acks: ReplicationAcks = ReplicationAcks(0, 0)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = ReplicatedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.acks = self.acks
        return pipe

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.owned_sentinel is not None:
            await self.owned_sentinel.aclose()


def replication_metrics(client: object) -> list[Metric]:
    """``client``'s WAIT counts (zeros for a client that is not behind Sentinel)."""
    acks = client.acks if isinstance(client, SentinelRedis) else ReplicationAcks(0, 0)
    return acks.metrics()


def parse_node(node: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); ValueError saying what is wrong."""
    host, sep, port = node.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"{node!r} is not host:port (a port from 1 to 65535)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def sentinel_client(
    service_name: str,
    nodes: Sequence[tuple[str, int]],
    *,
    sentinel_password: str | None,
    acks: ReplicationAcks,
    **connection: Any,
) -> SentinelRedis:
    """A client of ``service_name``'s current primary, found through the sentinels at ``nodes``.
    ``connection``: redis-py's options for the data nodes (password, db, timeouts, TLS); the
    sentinels get the same socket options and their own password."""
    # (and the maintenance-notification setting: with it on, a sentinel connection closed by a
    # sentinel's restart would be used as it is — hotline/local_secrets.py)
    sockets = {k: v for k, v in connection.items() if k.startswith("socket_") or k == "maint_notifications_config"}
    sentinel_kwargs = {**sockets, **({"password": sentinel_password} if sentinel_password else {})}
    sentinel = Sentinel(list(nodes), sentinel_kwargs=sentinel_kwargs, **connection)  # type: ignore[no-untyped-call]
    client: SentinelRedis = sentinel.master_for(service_name, redis_class=SentinelRedis)
    client.owned_sentinel = sentinel
    client.acks = acks
    return client
