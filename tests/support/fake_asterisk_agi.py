"""The Asterisk side of a FastAGI session, replayed from a captured transcript (unit tests)."""

from __future__ import annotations

import asyncio
import contextlib


class ReplayingAsterisk:
    """Connects to an AGI server, sends the environment, answers each command from ``replies``.

    Commands it has no reply for get ``default_reply``; ``received`` lists what it was sent.
    """

    def __init__(self, environment: str, replies: dict[str, str], default_reply: str | None = None) -> None:
        self.environment = environment
        self.replies = replies
        self.default_reply = default_reply
        self.received: list[str] = []

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(self.environment.encode("utf-8"))
        await writer.drain()
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                command = raw.decode("utf-8").rstrip("\n")
                self.received.append(command)
                reply = self.replies.get(command, self.default_reply)
                if reply is None:
                    return  # hang up: close the socket as Asterisk does when the channel is gone
                writer.write(reply.encode("utf-8"))
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
