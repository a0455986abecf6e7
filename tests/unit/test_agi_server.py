"""Our FastAGI server and session, driven by transcripts captured from a real Asterisk."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from telephony.agi_protocol import AgiProtocolError
from telephony.agi_server import MAX_COMMAND_BYTES, AgiCommandError, AgiHangup, AgiServer, AgiSession
from tests.support.fake_asterisk_agi import ReplayingAsterisk
from tests.support.waiting import wait_until

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
Handler = Callable[[AgiSession], Awaitable[None]]


def transcript(name: str) -> tuple[str, dict[str, str]]:
    data: dict[str, Any] = json.loads((GOLDEN / f"agi_{name}.json").read_text(encoding="utf-8"))
    return data["environment"], {e["command"]: e["reply"] for e in data["exchanges"]}


class Recorder:
    """A handler that runs ``steps`` and keeps what happened."""

    def __init__(self, steps: Callable[[AgiSession, list[Any]], Awaitable[None]]) -> None:
        self.steps = steps
        self.seen: list[Any] = []
        self.done = asyncio.Event()

    async def __call__(self, session: AgiSession) -> None:
        try:
            await self.steps(session, self.seen)
        finally:
            self.done.set()


@pytest.fixture
async def server_factory() -> AsyncIterator[Callable[..., Awaitable[AgiServer]]]:
    servers: list[AgiServer] = []

    async def make(handler: Handler, **kwargs: Any) -> AgiServer:
        server = AgiServer("127.0.0.1", 0, {"ivr": handler}, **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close(drain_timeout_s=1)


async def test_normal_session_replayed_from_real_asterisk(server_factory: Callable[..., Awaitable[AgiServer]]) -> None:
    async def steps(session: AgiSession, seen: list[Any]) -> None:
        await session.answer()
        seen.append(await session.get_variable("HOTLINE_PLATFORM"))
        seen.append(await session.get_variable("NO_SUCH_VARIABLE"))
        await session.set_variable("HOTLINE_TEST", "值 with space")
        seen.append(await session.get_variable("HOTLINE_TEST"))
        with pytest.raises(AgiCommandError, match="failed"):
            await session.stream_file("/nonexistent/prompt")  # -1 on a live channel: an error, not a hang-up
        with pytest.raises(AgiCommandError, match="Invalid or unknown command"):
            await session.command("NO", "SUCH", "COMMAND")
        with pytest.raises(AgiCommandError, match="Proper usage"):
            await session.command("STREAM", "FILE")
        seen.append(await session.stream_file("beep", "0123456789*#"))
        await session.set_variable("HOTLINE_IVR_DONE", "1")

    handler = Recorder(steps)
    server = await server_factory(handler)
    environment, replies = transcript("normal")
    asterisk = ReplayingAsterisk(environment, replies)
    async with asyncio.timeout(10):
        await asterisk.run(server.port)
        await handler.done.wait()
    assert handler.seen == ["kunming", None, "值 with space", ""]
    assert asterisk.received[-1] == 'SET VARIABLE "HOTLINE_IVR_DONE" "1"'
    assert server.stats.sessions_failed == 0


async def test_caller_hangup_mid_prompt_replayed_from_real_asterisk(
    server_factory: Callable[..., Awaitable[AgiServer]],
) -> None:
    async def steps(session: AgiSession, seen: list[Any]) -> None:
        await session.answer()
        try:
            await session.stream_file("demo-congrats")
        except AgiHangup:
            seen.append("hangup")
            raise

    handler = Recorder(steps)
    server = await server_factory(handler)
    environment, replies = transcript("caller_hangup")
    async with asyncio.timeout(10):
        await ReplayingAsterisk(environment, replies).run(server.port)
        await handler.done.wait()
    assert handler.seen == ["hangup"]
    assert server.stats.sessions_total == 1
    assert server.stats.sessions_failed == 0  # a hang-up is a normal end


async def test_malformed_reply_fails_the_session_not_the_server(
    server_factory: Callable[..., Awaitable[AgiServer]],
) -> None:
    async def steps(session: AgiSession, seen: list[Any]) -> None:
        try:
            await session.answer()
        except AgiProtocolError:
            seen.append("protocol error")
            raise

    handler = Recorder(steps)
    server = await server_factory(handler)
    environment, replies = transcript("normal")
    async with asyncio.timeout(10):
        await ReplayingAsterisk(environment, {"ANSWER": "this is not AGI\n"}).run(server.port)
        await handler.done.wait()
    assert handler.seen == ["protocol error"]
    assert server.stats.sessions_failed == 1

    # the server goes on serving the next call
    handler.done.clear()
    handler.steps = lambda session, seen: session.answer()
    async with asyncio.timeout(10):
        await ReplayingAsterisk(environment, replies).run(server.port)
        await handler.done.wait()
    assert server.stats.sessions_total == 2
    assert server.stats.sessions_failed == 1


async def test_client_closing_mid_header_does_not_stall_the_loop(
    server_factory: Callable[..., Awaitable[AgiServer]],
) -> None:
    """panoramisk 1.4 spun forever here (100 % CPU, the whole process frozen)."""
    server = await server_factory(Recorder(lambda session, seen: session.answer()))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\nagi_netw")
        await writer.drain()
        writer.close()
    await wait_until(lambda: server.stats.bad_requests == 20, timeout_s=10)
    seen_ticks = ticks
    await wait_until(lambda: ticks > seen_ticks + 10)  # the event loop still runs other tasks
    ticking.cancel()
    assert server.stats.sessions_total == 0


async def test_silent_client_is_dropped_after_the_header_timeout(
    server_factory: Callable[..., Awaitable[AgiServer]],
) -> None:
    server = await server_factory(Recorder(lambda session, seen: session.answer()), header_timeout_s=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\n")
    async with asyncio.timeout(10):
        assert await reader.read() == b""  # the server closed it
    assert server.stats.bad_requests == 1
    writer.close()


async def test_unanswered_command_times_out(server_factory: Callable[..., Awaitable[AgiServer]]) -> None:
    async def steps(session: AgiSession, seen: list[Any]) -> None:
        with pytest.raises(AgiCommandError, match="no reply"):
            await session.answer()
        seen.append("timed out")

    handler = Recorder(steps)
    server = await server_factory(handler, command_timeout_s=0.2)
    environment, _ = transcript("normal")
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(environment.encode())
    async with asyncio.timeout(10):
        await handler.done.wait()
    assert handler.seen == ["timed out"]
    writer.close()


async def test_unknown_script_is_refused(server_factory: Callable[..., Awaitable[AgiServer]]) -> None:
    server = await server_factory(Recorder(lambda session, seen: session.answer()))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\nagi_network_script: nothing-here\n\n")
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    assert server.stats.bad_requests == 1
    writer.close()


async def test_close_drains_then_cancels(server_factory: Callable[..., Awaitable[AgiServer]]) -> None:
    finished: list[str] = []

    async def slow(session: AgiSession) -> None:
        try:
            await asyncio.sleep(float(session.env.arguments["sleep"]))
            finished.append(session.env.arguments["sleep"])
        except asyncio.CancelledError:
            finished.append("cancelled")
            raise

    server = await server_factory(slow)
    writers = []
    for sleep in ("0.1", "30"):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(f"agi_network: yes\nagi_network_script: ivr?sleep={sleep}\n\n".encode())
        writers.append(writer)
    await wait_until(lambda: server.stats.sessions_active == 2, timeout_s=10)
    async with asyncio.timeout(10):
        await server.close(drain_timeout_s=0.5)
    assert sorted(finished) == ["0.1", "cancelled"]
    assert not server.serving
    for writer in writers:
        writer.close()


KEY = "per-install-key_0123456789abcdef"


def keyed(environment: str, key: str) -> str:
    """A captured environment as the rendered dialplan sends it: the key first in the path."""
    keyed = re.sub(r"agi_network_script: ivr\n", f"agi_network_script: {key}/ivr\n", environment)
    return re.sub(r"(agi_request: agi://[^/]+)/ivr\n", rf"\1/{key}/ivr\n", keyed)


@pytest.mark.parametrize(
    "environment",
    [
        "agi_network: yes\nagi_network_script: ivr\nagi_callerid: 13800000000\n\n",  # no key at all
        f"agi_network: yes\nagi_network_script: {KEY[:-1]}X/ivr\nagi_callerid: 13800000000\n\n",  # a wrong one
        f"agi_network: yes\nagi_network_script: ivr/{KEY}\n\n",  # in the wrong place
        f"agi_network: yes\nagi_request: agi://127.0.0.1/ivr?key={KEY}\n\n",
        "agi_network: yes\nagi_network_script: /ivr\n\n",
    ],
)
async def test_a_session_without_the_key_is_closed_before_any_route_runs(
    server_factory: Callable[..., Awaitable[AgiServer]], environment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any local process could otherwise play Asterisk: forge call records, log seats in."""
    handler = Recorder(lambda session, seen: session.answer())
    server = await server_factory(handler, secret=KEY)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(environment.encode())
    async with asyncio.timeout(10):
        assert await reader.read() == b""  # closed, not a word sent back
    writer.close()
    assert not handler.done.is_set()
    assert server.stats.unauthenticated == 1
    assert server.stats.sessions_total == 0
    assert KEY[:12] not in capsys.readouterr().out  # logged without what it sent


async def test_a_session_with_the_key_is_served_and_never_sees_it(
    server_factory: Callable[..., Awaitable[AgiServer]],
) -> None:
    async def steps(session: AgiSession, seen: list[Any]) -> None:
        seen.append((session.env.script, dict(session.env.variables)))
        await session.answer()

    handler = Recorder(steps)
    server = await server_factory(handler, secret=KEY)
    environment, replies = transcript("normal")
    async with asyncio.timeout(10):
        await ReplayingAsterisk(keyed(environment, KEY), replies).run(server.port)
        await handler.done.wait()
    script, variables = handler.seen[0]
    assert script == "ivr"
    assert KEY not in str(variables)
    assert variables["agi_network_script"] == "ivr"
    assert variables["agi_request"].endswith(":48389/ivr")
    assert server.stats.unauthenticated == 0
    assert server.stats.sessions_total == 1


async def test_step_time_is_observed_from_each_reply_to_the_next_command(
    server_factory: Callable[..., Awaitable[AgiServer]],
) -> None:
    """hotline_agi_step_seconds: one observation per command that follows a reply (not the first
    command, not the session's end), and it covers what the handler did in between."""
    steps_seen: list[float] = []
    gaps_seen: list[float] = []

    async def steps(session: AgiSession, seen: list[Any]) -> None:
        await session.answer()
        await asyncio.sleep(0.05)  # the controller's own work between two commands
        seen.append(await session.get_variable("HOTLINE_PLATFORM"))
        await session.set_variable("HOTLINE_IVR_DONE", "1")

    handler = Recorder(steps)
    server = await server_factory(handler, on_gap=gaps_seen.append, on_step=steps_seen.append)
    environment, replies = transcript("normal")
    async with asyncio.timeout(10):
        await ReplayingAsterisk(environment, replies).run(server.port)
        await handler.done.wait()
        await wait_until(lambda: len(gaps_seen) == 4)
    assert handler.seen == ["kunming"]
    assert len(steps_seen) == 2  # GET VARIABLE and SET VARIABLE each followed a reply; ANSWER did not
    assert steps_seen[0] >= 0.05
    assert len(gaps_seen) == 4  # start → ANSWER, the two steps, the last reply → the session's end


async def _every_command_answered(
    server_factory: Callable[..., Awaitable[AgiServer]], steps: Callable[[AgiSession, list[Any]], Awaitable[None]]
) -> list[str]:
    """Runs ``steps`` (which append "done" at their end) against an Asterisk that answers every
    command "200 result=1"; the commands it received."""
    handler = Recorder(steps)
    server = await server_factory(handler)
    asterisk = ReplayingAsterisk(transcript("normal")[0], {}, default_reply="200 result=1\n")
    async with asyncio.timeout(10):
        await asterisk.run(server.port)
        await handler.done.wait()
    assert handler.seen == ["done"]
    return asterisk.received


async def test_several_plain_variables_go_in_one_mset_any_other_each_whole_in_its_own_set_variable(
    server_factory: Callable[..., Awaitable[AgiServer]],
) -> None:
    """MSet splits on ',' and '=' and strips quotes: a lot with any value it cannot carry goes one
    quoted SET VARIABLE each; one variable is one SET VARIABLE; a line break or NUL anywhere in a
    lot is refused before anything of it is sent."""

    async def steps(session: AgiSession, seen: list[Any]) -> None:
        await session.set_variables(
            {"HOTLINE_MAX_WAIT": "300", "HOTLINE_OVERFLOW": "busy_voicemail", "HOTLINE_HOLD": "1"}
        )
        await session.set_variables({"HOTLINE_CALLER": "PJSIP/t-1", "HOTLINE_RECORDING": '/rec/"a",B=1 张.wav'})
        await session.set_variables({"A=B": "1", "HOTLINE_EMPTY": ""})
        await session.set_variables({"HOTLINE_ONE": "1"})
        for bad in ({"A": "ok", "B": "x\nAGI: HANGUP"}, {"A": "ok", "B\nC": "1"}, {"A": "x\0y"}):
            with pytest.raises(ValueError, match="line breaks or NUL"):
                await session.set_variables(bad)
        seen.append("done")

    received = await _every_command_answered(server_factory, steps)
    assert received == [
        'EXEC MSet "HOTLINE_MAX_WAIT=300,HOTLINE_OVERFLOW=busy_voicemail,HOTLINE_HOLD=1"',
        'SET VARIABLE "HOTLINE_CALLER" "PJSIP/t-1"',
        'SET VARIABLE "HOTLINE_RECORDING" "/rec/\\"a\\",B=1 张.wav"',
        'SET VARIABLE "A=B" "1"',
        'SET VARIABLE "HOTLINE_EMPTY" ""',
        'SET VARIABLE "HOTLINE_ONE" "1"',
    ]  # nothing of a refused lot, not even its good "A"


async def test_a_command_longer_than_asterisks_line_buffer_or_with_a_line_break_is_never_sent(
    server_factory: Callable[..., Awaitable[AgiServer]],
) -> None:
    """res_agi reads a command into 2048 bytes: the rest of a longer line would be run as a
    command of its own (say, a HANGUP or an EXEC hidden at byte 2048 of a long value). The
    session refuses such a line, and a raw line break, before writing anything."""

    async def steps(session: AgiSession, seen: list[Any]) -> None:
        longest = "/rec/" + "a" * (MAX_COMMAND_BYTES - len('SET VARIABLE "R" "/rec/"'))
        await session.set_variable("R", longest)  # exactly the longest line Asterisk takes whole
        with pytest.raises(ValueError, match="one line of at most 2046 bytes"):
            await session.set_variable("R", longest + "a")
        with pytest.raises(ValueError, match="one line of at most 2046 bytes"):
            await session.set_variable("R", "/rec/" + "张" * 700)  # 2,100 bytes in UTF-8, 700 characters
        with pytest.raises(ValueError, match="one line"):
            await session.command("STREAM", "FILE", "x\rEXEC", '""')  # raw words, past the quoting
        seen.append("done")

    received = await _every_command_answered(server_factory, steps)
    assert len(received) == 1 and len(received[0].encode()) == MAX_COMMAND_BYTES


async def test_a_hangup_notice_after_the_reply_saves_the_channel_status_round_trip(
    server_factory: Callable[..., Awaitable[AgiServer]],
) -> None:
    """Real Asterisk writes HANGUP right after the -1 reply of a prompt the caller hung up on:
    that line tells the hang-up, no CHANNEL STATUS is sent. Without it (a live channel whose
    command failed) Asterisk is still asked, and the failure is an error, not a hang-up."""

    async def steps(session: AgiSession, seen: list[Any]) -> None:
        await session.answer()
        try:
            await session.stream_file("demo-congrats")
        except AgiHangup:
            seen.append("hangup")
            raise

    handler = Recorder(steps)
    server = await server_factory(handler)
    environment, replies = transcript("caller_hangup")
    stream = next(command for command in replies if command.startswith("STREAM FILE"))
    replies = {"ANSWER": replies["ANSWER"], stream: replies[stream] + "HANGUP\n"}  # CHANNEL STATUS: no reply
    asterisk = ReplayingAsterisk(environment, replies)
    async with asyncio.timeout(10):
        await asterisk.run(server.port)
        await handler.done.wait()
    assert handler.seen == ["hangup"]
    assert "CHANNEL STATUS" not in asterisk.received
    assert server.stats.sessions_failed == 0

    async def live(session: AgiSession, seen: list[Any]) -> None:
        with pytest.raises(AgiCommandError, match="failed"):
            await session.stream_file("/nonexistent/prompt")
        seen.append("error")

    handler = Recorder(live)
    server = await server_factory(handler)
    environment, replies = transcript("normal")
    asterisk = ReplayingAsterisk(environment, replies)
    async with asyncio.timeout(10):
        await asterisk.run(server.port)
        await handler.done.wait()
    assert handler.seen == ["error"]
    assert asterisk.received[-1] == "CHANNEL STATUS"


async def test_the_command_timeout_is_per_command_with_one_timer_a_session(
    server_factory: Callable[..., Awaitable[AgiServer]],
) -> None:
    """One timer per session (not one per command) keeps asyncio.timeout's rules: each command has
    the whole timeout (commands together may take longer), an unanswered one fails with "no
    reply" and the session goes on, a cancel from outside stays a cancel, and the timer goes with
    the session."""
    sessions: list[AgiSession] = []

    async def steps(session: AgiSession, seen: list[Any]) -> None:
        sessions.append(session)
        for _ in range(4):  # 4 × 0.5 s: longer than one timeout, each well inside it
            seen.append((await session.command("SLOW")).result_int)
        with pytest.raises(AgiCommandError, match=r"no reply to NEVER within 1\.5 s"):
            await session.command("NEVER")
        seen.append((await session.command("QUICK")).result_int)
        waiting = asyncio.create_task(session.command("NEVER"))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        seen.append("cancelled")

    handler = Recorder(steps)
    server = await server_factory(handler, command_timeout_s=1.5)
    environment, _ = transcript("normal")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(environment.encode())

    async def asterisk() -> None:
        while line := await reader.readline():
            if line.startswith(b"SLOW"):
                await asyncio.sleep(0.5)
            if not line.startswith(b"NEVER"):
                writer.write(b"200 result=1\n")

    replying = asyncio.create_task(asterisk())
    async with asyncio.timeout(30):
        await handler.done.wait()
        await wait_until(lambda: server.stats.sessions_active == 0)
    assert handler.seen == [1, 1, 1, 1, 1, "cancelled"]
    assert server.stats.sessions_failed == 0
    assert sessions[0]._timer is None  # closed with the session
    writer.close()
    replying.cancel()
