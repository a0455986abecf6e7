"""The commands Redis runs while a test does something (MONITOR), in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis


async def command_words_during(
    url: str, client: aioredis.Redis, action: Callable[[], Awaitable[object]]
) -> list[list[str]]:
    """The words of each command Redis at ``url`` runs while ``action`` is awaited (scripts'
    commands too), the name upper-cased, ending with the ``ECHO`` sent on ``client`` after it
    (the mark that the action's commands are all seen)."""
    watcher = aioredis.Redis.from_url(url)
    seen: list[list[str]] = []
    try:
        async with watcher.monitor() as monitor:

            async def listen() -> None:
                async for entry in monitor.listen():
                    words = str(entry["command"]).split()
                    seen.append([words[0].upper(), *words[1:]])
                    if seen[-1][0] == "ECHO":
                        return

            listening = asyncio.create_task(listen())
            await asyncio.sleep(0.1)
            await action()
            await client.echo("done")
            await asyncio.wait_for(listening, 5)
    finally:
        await watcher.aclose()
    return seen


async def commands_during(url: str, client: aioredis.Redis, action: Callable[[], Awaitable[object]]) -> list[str]:
    """The command names of ``command_words_during``."""
    return [words[0] for words in await command_words_during(url, client, action)]
