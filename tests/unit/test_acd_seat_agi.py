"""The seat AGI's round trips (acd/agi.py): the seat read from the channel's name, and what the
seat is bound to set in as few commands as give the same channel variables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from acd.agi import seat_endpoint, set_bound
from telephony.agi_server import AgiServer, AgiSession
from telephony.dialplan_names import CALLER_VARIABLE, DIAL_VARIABLE, RECORDING_VARIABLE
from tests.support.fake_asterisk_agi import ReplayingAsterisk

Steps = Callable[[AgiSession], Awaitable[object]]


def environment(channel: str) -> str:
    return (
        "agi_network: yes\nagi_network_script: seat\nagi_request: agi://127.0.0.1:4573/seat\n"
        f"agi_channel: {channel}\nagi_type: PJSIP\nagi_uniqueid: offer-1\nagi_context: hotline-offer\n\n"
    )


@pytest.fixture
async def session_run() -> AsyncIterator[Callable[[str, Steps, dict[str, str]], Awaitable[tuple[object, list[str]]]]]:
    """Run ``steps`` in a real AGI session against a replaying Asterisk: (their result, the
    commands Asterisk received)."""
    servers: list[AgiServer] = []

    async def run(channel: str, steps: Steps, replies: dict[str, str]) -> tuple[object, list[str]]:
        result: list[object] = []
        done = asyncio.Event()

        async def handler(session: AgiSession) -> None:
            try:
                result.append(await steps(session))
            finally:
                done.set()

        server = AgiServer("127.0.0.1", 0, {"seat": handler})
        await server.start()
        servers.append(server)
        asterisk = ReplayingAsterisk(environment(channel), replies, default_reply="200 result=1\n")
        async with asyncio.timeout(10):
            await asterisk.run(server.port)
            await done.wait()
        return (result[0] if result else None), asterisk.received

    yield run
    for server in servers:
        await server.close(drain_timeout_s=1)


@pytest.mark.parametrize(
    ("channel", "seat"),
    [("PJSIP/2001-0000000a", "2001"), ("PJSIP/desk-2-a-00c0ffee", "desk-2-a")],
)
async def test_the_seat_of_a_pjsip_channel_comes_from_its_name_without_a_round_trip(
    session_run: Callable[[str, Steps, dict[str, str]], Awaitable[tuple[object, list[str]]]], channel: str, seat: str
) -> None:
    found, received = await session_run(channel, seat_endpoint, {})
    assert found == seat
    assert received == []


@pytest.mark.parametrize("channel", ["Local/2001@seats-00000001;1", "PJSIP/2001-0000000a<ZOMBIE>", "PJSIP/2001", ""])
async def test_any_other_channel_name_asks_asterisk_for_the_endpoint(
    session_run: Callable[[str, Steps, dict[str, str]], Awaitable[tuple[object, list[str]]]], channel: str
) -> None:
    replies = {'GET VARIABLE "CHANNEL(endpoint)"': "200 result=1 (2001)\n"}
    found, received = await session_run(channel, seat_endpoint, replies)
    assert found == "2001"
    assert received == ['GET VARIABLE "CHANNEL(endpoint)"']


@pytest.mark.parametrize(
    ("values", "commands"),
    [
        # no recording: the offer context cleared it before the AGI, only the caller is set
        (
            {RECORDING_VARIABLE: "", CALLER_VARIABLE: "PJSIP/trunk-0000001a"},
            ['SET VARIABLE "HOTLINE_CALLER" "PJSIP/trunk-0000001a"'],
        ),
        # both plain: one round trip
        (
            {RECORDING_VARIABLE: "/srv/rec/kunming-1.5.wav", CALLER_VARIABLE: "PJSIP/trunk-0000001a"},
            ['EXEC MSet "HOTLINE_RECORDING=/srv/rec/kunming-1.5.wav,HOTLINE_CALLER=PJSIP/trunk-0000001a"'],
        ),
        # a dial string ('@') is not plain for MSet: one each, in order
        (
            {RECORDING_VARIABLE: "/srv/rec/cb-1.wav", DIAL_VARIABLE: "PJSIP/13800000000@trunk"},
            [
                'SET VARIABLE "HOTLINE_RECORDING" "/srv/rec/cb-1.wav"',
                'SET VARIABLE "HOTLINE_DIAL" "PJSIP/13800000000@trunk"',
            ],
        ),
        (
            {RECORDING_VARIABLE: "", DIAL_VARIABLE: "PJSIP/13800000000@trunk"},
            ['SET VARIABLE "HOTLINE_DIAL" "PJSIP/13800000000@trunk"'],
        ),
    ],
)
async def test_what_the_seat_is_bound_to_is_set_in_as_few_round_trips_as_give_the_same_variables(
    session_run: Callable[[str, Steps, dict[str, str]], Awaitable[tuple[object, list[str]]]],
    values: dict[str, str],
    commands: list[str],
) -> None:
    _, received = await session_run("PJSIP/2001-0000000a", lambda session: set_bound(session, values), {})
    assert received == commands
