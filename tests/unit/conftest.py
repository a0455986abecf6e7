"""Shared unit-test fixtures: a real Redis per test module and a flushed client per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from hotline.redis_process import RedisProcess
from tests.support.ports import free_port


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One Redis per test module (module scope keeps modules isolated from each other)."""
    server = RedisProcess(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def client(redis_server: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    """A client on the module's Redis, flushed before the test."""
    connection = aioredis.Redis.from_url(redis_server.url)
    await connection.flushdb()
    yield connection
    await connection.aclose()
