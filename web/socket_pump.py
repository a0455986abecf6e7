"""Push a queue of JSON events down a websocket until the browser goes: the one loop behind every
push socket (the seat desk's events, the wallboard). The browser's messages are read and ignored,
so that close frames and pongs are seen and a closed tab ends the loop at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

Event = dict[str, Any]


async def pump(
    socket: web.WebSocketResponse,
    queue: asyncio.Queue[Event],
    shape: Callable[[Event], Event] | None = None,
) -> None:
    """Send each event of ``queue`` (through ``shape``, when given) until ``socket`` closes or
    the browser disconnects; returns then, never raises for a vanished peer."""

    async def read() -> None:
        async for _message in socket:
            pass

    reader = asyncio.create_task(read())
    try:
        while not socket.closed:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            event = getter.result()
            await socket.send_json(shape(event) if shape is not None else event)
    except ConnectionResetError:
        pass
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
