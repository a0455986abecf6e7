"""FastAGI parsing against transcripts captured from a real Asterisk 22 (tests/golden/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.agi_protocol import (
    AgiProtocolError,
    ReplyKind,
    parse_environment,
    parse_reply,
    quote_argument,
    reply_is_complete,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def golden(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"agi_{name}.json").read_text(encoding="utf-8"))
    return data


def reply_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line and line != "HANGUP"]


def test_environment_from_real_asterisk() -> None:
    env = parse_environment(golden("normal")["environment"].rstrip("\n").split("\n"))
    assert env.script == "ivr"
    assert env.get("uniqueid").startswith("kunming-")
    assert env.get("callerid") == "13800000000"
    assert env.get("calleridname") == "张三丰"
    assert env.get("dnid") == "12345"
    assert env.get("rdnis") == ""  # Asterisk says "unknown"
    assert env.get("accountcode") == ""


@pytest.mark.parametrize(
    ("command", "kind", "result", "data"),
    [
        ("ANSWER", ReplyKind.OK, "0", ""),
        ('GET VARIABLE "HOTLINE_PLATFORM"', ReplyKind.OK, "1", "kunming"),
        ('GET VARIABLE "NO_SUCH_VARIABLE"', ReplyKind.OK, "0", ""),
        ('GET VARIABLE "HOTLINE_TEST"', ReplyKind.OK, "1", "值 with space"),
        ('STREAM FILE "/nonexistent/prompt" ""', ReplyKind.OK, "-1", ""),
        ("NO SUCH COMMAND", ReplyKind.INVALID_COMMAND, "", ""),
        ("STREAM FILE", ReplyKind.USAGE, "", ""),
        ("CHANNEL STATUS", ReplyKind.OK, "6", ""),
    ],
)
def test_replies_from_real_asterisk(command: str, kind: ReplyKind, result: str, data: str) -> None:
    exchange = next(e for e in golden("normal")["exchanges"] if e["command"] == command)
    lines = reply_lines(exchange["reply"])
    assert reply_is_complete(lines)
    reply = parse_reply(lines)
    assert reply.kind is kind
    assert reply.result == result
    assert reply.data == data


def test_stream_file_reply_carries_endpos() -> None:
    exchange = next(e for e in golden("normal")["exchanges"] if e["command"].startswith('STREAM FILE "beep"'))
    reply = parse_reply(reply_lines(exchange["reply"]))
    assert reply.result_int == 0
    assert int(reply.extra_value("endpos")) > 0


def test_usage_block_is_incomplete_until_its_last_line() -> None:
    exchange = next(e for e in golden("normal")["exchanges"] if e["command"] == "STREAM FILE")
    lines = reply_lines(exchange["reply"])
    assert len(lines) > 2
    assert not reply_is_complete(lines[:-1])
    assert reply_is_complete(lines)
    assert "Proper usage follows" in parse_reply(lines).text


def test_hangup_notice_and_dead_channel_from_real_asterisk() -> None:
    exchanges = {e["command"]: e["reply"] for e in golden("caller_hangup")["exchanges"]}
    assert exchanges["CHANNEL STATUS"].startswith("HANGUP\n")
    assert parse_reply(["HANGUP"]).kind is ReplyKind.HANGUP
    assert parse_reply(reply_lines(exchanges["CHANNEL STATUS"])).kind is ReplyKind.DEAD_CHANNEL
    stream = next(reply for command, reply in exchanges.items() if command.startswith("STREAM FILE"))
    assert parse_reply(reply_lines(stream)).result_int == -1


@pytest.mark.parametrize("line", ["200", "200 result", "garbage", "999 what", "20 result=0"])
def test_malformed_replies_are_protocol_errors(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        parse_reply([line])


def test_environment_must_be_agi() -> None:
    with pytest.raises(AgiProtocolError):
        parse_environment(["GET / HTTP/1.1"])
    with pytest.raises(AgiProtocolError):
        parse_environment(["agi_channel: PJSIP/x"])


def test_script_arguments_from_the_url() -> None:
    env = parse_environment(["agi_network_script: ivr?platform=dali&mode=closed", "agi_arg_1: extra"])
    assert env.script == "ivr"
    assert env.arguments == {"platform": "dali", "mode": "closed", "arg1": "extra"}


def test_quoting() -> None:
    assert quote_argument('say "hi"') == '"say \\"hi\\""'
    with pytest.raises(ValueError, match="line breaks"):
        quote_argument("two\nlines")


@given(st.lists(st.text(max_size=200), min_size=1, max_size=5))
def test_any_reply_text_parses_or_is_a_protocol_error(lines: list[str]) -> None:
    try:
        reply = parse_reply(lines)
    except AgiProtocolError:
        return
    assert isinstance(reply.kind, ReplyKind)


@given(st.lists(st.text(max_size=120), max_size=10))
def test_any_environment_parses_or_is_a_protocol_error(lines: list[str]) -> None:
    try:
        env = parse_environment(lines)
    except AgiProtocolError:
        return
    assert isinstance(env.script, str)
