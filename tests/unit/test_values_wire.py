"""Values on the wire and on command lines: AGI replies keep a ')' in their data, AGI arguments
and AMI fields never carry a line break, and a prompt's text is never an espeak-ng option."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.prompts import build_prompts
from telephony.agi_protocol import parse_reply, quote_argument
from telephony.agi_server import AgiServer, AgiSession
from telephony.ami import AmiClient, AmiSettings
from telephony.ami_types import AmiError, AmiInvalidAction, set_variable
from tests.support.fake_ami import FakeAmi
from tests.support.fake_asterisk_agi import ReplayingAsterisk

ENVIRONMENT = "agi_network: yes\nagi_network_script: ivr\nagi_channel: PJSIP/trunk-00000001\n\n"


def test_an_agi_reply_keeps_a_parenthesis_inside_its_data() -> None:
    """GET VARIABLE answers ``200 result=1 (<value>)`` and does not escape a ')' in the value."""
    reply = parse_reply(["200 result=1 (some text with ) inside) endpos=1234"])
    assert reply.data == "some text with ) inside"
    assert reply.extra_value("endpos") == "1234"
    assert parse_reply(["200 result=1 (x) endpos=5)"]).data == "x) endpos=5"
    assert parse_reply(["200 result=1 (timeout) endpos=1234"]).data == "timeout"


@settings(deadline=None, max_examples=500)
@given(
    value=st.text().filter(lambda v: "\n" not in v and "\r" not in v),
    endpos=st.one_of(st.none(), st.integers(0, 10**9)),
)
def test_any_value_comes_back_whole_from_an_agi_reply(value: str, endpos: int | None) -> None:
    line = f"200 result=1 ({value})" + (f" endpos={endpos}" if endpos is not None else "")
    reply = parse_reply([line])
    assert reply.data == value
    assert reply.extra_value("endpos") == ("" if endpos is None else str(endpos))


async def test_get_variable_returns_a_value_with_a_parenthesis() -> None:
    seen: list[str | None] = []
    done = asyncio.Event()

    async def handler(session: AgiSession) -> None:
        seen.append(await session.get_variable("HOTLINE_TEST"))
        done.set()

    server = AgiServer("127.0.0.1", 0, {"ivr": handler})
    await server.start()
    try:
        asterisk = ReplayingAsterisk(ENVIRONMENT, {'GET VARIABLE "HOTLINE_TEST"': "200 result=1 (a) b (c))\n"})
        async with asyncio.timeout(10):
            await asterisk.run(server.port)
            await done.wait()
    finally:
        await server.close(drain_timeout_s=1)
    assert seen == ["a) b (c)"]


@pytest.mark.parametrize("value", ["two\nlines", "cr\rhere", "nul\0byte"])
def test_an_agi_argument_never_carries_a_line_break(value: str) -> None:
    with pytest.raises(ValueError, match="line breaks"):
        quote_argument(value)


def test_an_agi_argument_keeps_quotes_and_backslashes() -> None:
    assert quote_argument('a "b" \\c') == '"a \\"b\\" \\\\c"'


@pytest.fixture
async def ami() -> AsyncIterator[tuple[FakeAmi, AmiClient]]:
    server = FakeAmi()
    await server.start()
    client = AmiClient(AmiSettings(host="127.0.0.1", port=server.port, username="hotline", secret="secret-secret"))
    client.start()
    await client.wait_connected(5)
    yield server, client
    await client.close()
    await server.stop()


@pytest.mark.parametrize(
    "fields",
    [
        {"Action": "Setvar", "Channel": "PJSIP/1001-1", "Variable": "X", "Value": "1\r\nAction: Originate"},
        {"Action": "Setvar", "Channel": "PJSIP/1001-1", "Variable": "X\nAction: Hangup", "Value": "1"},
        {"Action": "Originate", "Channel": "PJSIP/1001", "Variable": ["A=1", "B=2\r\n\r\nAction: Command"]},
        {"Action": "Setvar", "Channel\r\nAction": "x", "Variable": "X", "Value": "1"},
    ],
)
async def test_ami_refuses_a_field_with_a_line_break(
    ami: tuple[FakeAmi, AmiClient], fields: dict[str, str | list[str]]
) -> None:
    """A channel variable with a line break would add AMI headers, or a whole action."""
    server, client = ami
    with pytest.raises(AmiInvalidAction):
        await client.send_action(fields)
    reply = await client.send_action({"Action": "Ping"})  # nothing was written: the link is fine
    assert reply.response.get("ping") == "Pong"
    assert server.names() == ["login", "ping"]


async def test_a_refused_ami_field_is_an_ami_error(ami: tuple[FakeAmi, AmiClient]) -> None:
    """Callers that handle Asterisk refusing an action handle this one too."""
    _, client = ami
    with pytest.raises(AmiError, match="line break"):
        await set_variable(client, "PJSIP/1001-1", "HOTLINE_TRANSFER_DIAL", "PJSIP/110@carrier\nAction: Hangup")


def test_a_prompt_text_is_never_an_espeak_option(tmp_path: Path) -> None:
    """'-f<file>' was read by espeak-ng as "speak this file": the prompt said the file."""
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    missing = tmp_path / "no-such-file"
    assert build_prompts({"missing": f"-f{missing}"}, recorded, tmp_path / "a") == ["missing"]

    secret = tmp_path / "secret.txt"
    secret.write_text("机密内容，不应被读出。", encoding="utf-8")
    build_prompts({"p": f"-f{secret}"}, recorded, tmp_path / "option")
    build_prompts({"p": secret.read_text(encoding="utf-8")}, recorded, tmp_path / "file")
    assert (tmp_path / "option" / "p.wav").read_bytes() != (tmp_path / "file" / "p.wav").read_bytes()
    info = subprocess.run(
        ["soxi", "-D", str(tmp_path / "option" / "p.wav")], capture_output=True, text=True, check=True
    )
    assert float(info.stdout) > 0.5  # the text itself was spoken
