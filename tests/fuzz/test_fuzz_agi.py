"""Fuzz the FastAGI side: the environment block and reply parser (telephony/agi_protocol.py) and
our server with its session commands over a real socket (telephony/agi_server.py).

Whatever Asterisk (or anything that connects) sends, the parser returns a value or raises
AgiProtocolError; a session command returns or raises AgiHangup / AgiCommandError /
AgiProtocolError; the server closes every session and keeps serving."""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.agi_protocol import AgiProtocolError, ReplyKind, parse_environment, parse_reply, reply_is_complete
from telephony.agi_server import AgiCommandError, AgiHangup, AgiServer, AgiSession
from tests.fuzz.harness import example, fuzz_target, run_async

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_ENV: str = json.loads((GOLDEN / "agi_normal.json").read_text(encoding="utf-8"))["environment"]
GOLDEN_LINES = GOLDEN_ENV.rstrip("\n").split("\n")
GOLDEN_KEYS = [line.partition(":")[0] for line in GOLDEN_LINES]

# text of one line: anything but the line break that ends it
line_text = st.text(st.characters(exclude_characters="\n", exclude_categories=["Cs"]), max_size=60)
numbers = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, -1, -2, 35, 48, 1114111, 1114112, 2**63]))
hosts = st.one_of(st.sampled_from(["127.0.0.1", "[::1]", "[::1", "localhost:4573", "h:99999", "", "[", "]"]), line_text)
requests = st.builds(
    lambda host, path, query: f"agi://{host}/{path}" + (f"?{query}" if query is not None else ""),
    hosts,
    st.one_of(st.sampled_from(["ivr", "acd/answered", "/ivr/", "ivr?x"]), line_text),
    st.one_of(st.none(), st.sampled_from(["a=1&b=%E5%BC%A0", "=&&=", "%", "a=%ZZ"]), line_text),
)
env_lines = st.one_of(
    st.sampled_from(GOLDEN_LINES),
    st.builds(lambda k, v: f"{k}: {v}", st.sampled_from([*GOLDEN_KEYS, "agi_arg_1", "agi_arg_2"]), line_text),
    st.builds(lambda r: f"agi_request: {r}", requests),
    st.builds(lambda s: f"agi_network_script: {s}", line_text),
    line_text,
)


@fuzz_target("agi.environment")
@given(st.lists(env_lines, max_size=40))
def test_environment_parses_or_is_refused(lines: list[str]) -> None:
    with example("agi.environment"):
        try:
            env = parse_environment(lines)
        except AgiProtocolError:
            return
        assert isinstance(env.script, str)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.arguments.items())
        assert env.get("callerid") == env.get("callerid")  # lookups never raise


# "200 result=…" with data in parentheses (without ")": another defect, and another fix) and key=value pairs
well_formed_200 = st.builds(
    lambda result, data, pairs: (
        f"200 result={result}" + (f" ({data})" if data is not None else "") + "".join(f" {k}={v}" for k, v in pairs)
    ),
    numbers,
    st.one_of(st.none(), st.text(st.characters(exclude_characters="\n)", exclude_categories=["Cs"]), max_size=30)),
    st.lists(
        st.tuples(st.sampled_from(["endpos", "x", "timeout"]), st.one_of(numbers.map(str), line_text)), max_size=3
    ),
)
reply_lines = st.one_of(
    st.sampled_from(
        [
            "200 result=0",
            "200 result=1 (timeout) endpos=1234",
            "200 result=-1",
            "200 result=",
            "200",
            "510 Invalid or unknown command",
            "511 Command Not Permitted on a dead channel or intercept routine",
            "520-Invalid command syntax.  Proper usage follows:",
            "520 End of proper usage.",
            "HANGUP",
        ]
    ),
    well_formed_200,
    line_text,
)


@fuzz_target("agi.reply")
@given(st.lists(reply_lines, max_size=6), numbers, st.text(st.characters(exclude_characters="\n)"), max_size=30))
def test_replies_parse_or_are_refused(lines: list[str], result: int, data: str) -> None:
    with example("agi.reply"):
        reply_is_complete(lines)
        try:
            reply = parse_reply(lines)
        except AgiProtocolError:
            pass
        else:
            assert isinstance(reply.result_int, int)
            reply.extra_value("endpos")
        # a well-formed reply keeps its result and data
        parsed = parse_reply([f"200 result={result} ({data}) endpos=7"])
        assert (parsed.kind, parsed.result_int, parsed.data, parsed.extra_value("endpos")) == (
            ReplyKind.OK,
            result,
            data,
            "7",
        )


Step = Callable[[AgiSession], Awaitable[object]]
STEPS: dict[str, Step] = {
    "answer": lambda s: s.answer(),
    "stream_file": lambda s: s.stream_file("/prompts/welcome", "0123456789*#"),
    "get_data": lambda s: s.get_data("/prompts/menu", 3.0, 4),
    "record_file": lambda s: s.record_file("/spool/message", 60, 3),
    "exec_app": lambda s: s.exec_app("Queue", "general,,,,30"),
    "set_variable": lambda s: s.set_variable("HOTLINE_CASE", "值 with space"),
    "get_variable": lambda s: s.get_variable("HOTLINE_PLATFORM"),
    "channel_alive": lambda s: s.channel_alive(),
    "hangup": lambda s: s.hangup(),
}


class ScriptedHandler:
    """Runs the steps the current example names; keeps every exception that is not one of the
    session's own (those are how a session ends or a command fails)."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.unexpected: list[str] = []
        self.runs = 0

    async def __call__(self, session: AgiSession) -> None:
        self.runs += 1
        for step in self.steps:
            try:
                await STEPS[step](session)
            except (AgiHangup, AgiCommandError, AgiProtocolError):
                if session.hung_up:
                    return
            except Exception:
                self.unexpected.append(f"{step}: {traceback.format_exc()}")
                return


@pytest.fixture(scope="module")
def agi_server(fuzz_loop: asyncio.AbstractEventLoop) -> Iterator[tuple[AgiServer, ScriptedHandler]]:
    handler = ScriptedHandler()
    server = AgiServer("127.0.0.1", 0, {"ivr": handler}, header_timeout_s=5.0, command_timeout_s=5.0)
    fuzz_loop.run_until_complete(server.start())
    yield server, handler
    fuzz_loop.run_until_complete(server.close(drain_timeout_s=1.0))


async def _session(port: int, sent: bytes) -> bytes:
    """Connect, send everything, close our side, and read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(sent)
        await writer.drain()
        writer.write_eof()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def _line_bytes(lines: list[str], crlf: bool) -> bytes:
    return "".join(line + ("\r\n" if crlf else "\n") for line in lines).encode("utf-8", errors="surrogatepass")


headers = st.one_of(
    st.just(GOLDEN_ENV.encode()),
    st.lists(env_lines, max_size=30).map(
        lambda lines: ("\n".join(["agi_network_script: ivr", *lines]) + "\n\n").encode()
    ),
    st.binary(max_size=200),
)


@fuzz_target("agi.server")
@given(
    header=headers,
    steps=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=8),
    replies=st.lists(reply_lines, max_size=12),
    crlf=st.booleans(),
    tail=st.binary(max_size=64),
)
def test_the_server_ends_every_session_and_keeps_serving(
    fuzz_loop: asyncio.AbstractEventLoop,
    agi_server: tuple[AgiServer, ScriptedHandler],
    header: bytes,
    steps: list[str],
    replies: list[str],
    crlf: bool,
    tail: bytes,
) -> None:
    server, handler = agi_server
    handler.steps = steps
    handler.unexpected.clear()
    runs = handler.runs
    with example("agi.server"):
        run_async(fuzz_loop, _session(server.port, header + _line_bytes(replies, crlf) + tail))
        assert handler.unexpected == []
        if header == GOLDEN_ENV.encode():
            assert handler.runs == runs + 1  # a real session ran the steps
        assert server.serving
