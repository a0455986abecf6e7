"""The commands Redis runs while a test does something (MONITOR), by name, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis


async def commands_during(url: str, client: aioredis.Redis, action: Callable[[], Awaitable[object]]) -> list[str]:
    """The command names Redis at ``url`` runs while ``action`` is awaited, ending with the
    ``ECHO`` sent on ``client`` after it (the mark that the action's commands are all seen)."""
    watcher = aioredis.Redis.from_url(url)
    seen: list[str] = []
    try:
        async with watcher.monitor() as monitor:

            async def listen() -> None:
                async for entry in monitor.listen():
                    seen.append(str(entry["command"]).split()[0].upper())
                    if seen[-1] == "ECHO":
                        return

            listening = asyncio.create_task(listen())
            await asyncio.sleep(0.1)
            await action()
            await client.echo("done")
            await asyncio.wait_for(listening, 5)
    finally:
        await watcher.aclose()
    return seen
