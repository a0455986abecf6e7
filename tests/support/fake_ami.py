"""A scriptable AMI server for unit tests of our adapter (not a stand-in for Asterisk's logic)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from telephony.ami import AmiSettings

EOL = "\r\n"


def encode(fields: dict[str, str]) -> bytes:
    return ("".join(f"{k}: {v}{EOL}" for k, v in fields.items()) + EOL).encode("utf-8")


def ami_settings(port: int, reconnect_initial_s: float = 0.05, reconnect_max_s: float = 0.2) -> AmiSettings:
    """Our client's settings for a FakeAmi on ``port``: short timeouts, pings and back-off."""
    return AmiSettings(
        host="127.0.0.1",
        port=port,
        username="hotline",
        secret="secret-secret",
        action_timeout_s=1.0,
        ping_interval_s=0.2,
        ping_timeout_s=0.3,
        reconnect_initial_s=reconnect_initial_s,
        reconnect_max_s=reconnect_max_s,
    )


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[FakeAmi]:
    """A FakeAmi listening on a free port for the block, stopped (its connections dropped) after it."""
    server = FakeAmi()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class FakeAmi:
    """Speaks enough AMI for the adapter: greeting, Login, Ping, lists; records every action.

    ``answer`` maps an action name to whether it is answered; unanswered actions are held.
    """

    answer: dict[str, bool] = field(default_factory=lambda: {"login": True, "ping": True, "logoff": True})
    actions: list[dict[str, str]] = field(default_factory=list)
    replies: dict[str, dict[str, str]] = field(default_factory=dict)  # action name → reply headers
    logins: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.drop_connections()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def drop_connections(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    def names(self) -> list[str]:
        return [a.get("action", "").lower() for a in self.actions]

    async def send_raw(self, *chunks: bytes, gap_s: float = 0.05) -> None:
        """Write chunks to the newest connection, pausing between them so they arrive as separate reads."""
        writer = self.writers[-1]
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(gap_s)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                fields: dict[str, str] = {}
                for line in block.decode("utf-8").split(EOL):
                    key, sep, value = line.partition(": ")
                    if sep:
                        fields[key.lower()] = value
                self.actions.append(fields)
                await self._reply(writer, fields)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _reply(self, writer: asyncio.StreamWriter, fields: dict[str, str]) -> None:
        name = fields.get("action", "").lower()
        action_id = fields.get("actionid", "")
        if not self.answer.get(name, True):
            return
        if name in self.replies:
            writer.write(encode({**self.replies[name], "ActionID": action_id}))
        elif name == "login":
            self.logins += 1
            writer.write(encode({"Response": "Success", "ActionID": action_id, "Message": "Authentication accepted"}))
            writer.write(encode({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"}))
        elif name == "ping":
            writer.write(encode({"Response": "Success", "ActionID": action_id, "Ping": "Pong"}))
        elif name == "coreshowchannels":
            writer.write(
                encode(
                    {
                        "Response": "Success",
                        "ActionID": action_id,
                        "EventList": "start",
                        "Message": "Channels will follow",
                    }
                )
            )
            writer.write(
                encode(
                    {
                        "Event": "CoreShowChannelsComplete",
                        "ActionID": action_id,
                        "EventList": "Complete",
                        "ListItems": "0",
                    }
                )
            )
        else:
            writer.write(encode({"Response": "Success", "ActionID": action_id, "Message": "ok"}))
        await writer.drain()
