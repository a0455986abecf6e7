"""AMI actions sent in one turn of the event loop go out in one socket write
(telephony/ami_protocol.py), in order; the real client still gets every reply (FakeAmi)."""

from __future__ import annotations

import asyncio
from typing import Any

from telephony.ami import AmiClient
from telephony.ami_protocol import HotlineAmiProtocol
from tests.support.fake_ami import ami_settings, serving


class RecordingTransport(asyncio.Transport):
    """What the protocol writes, one entry per write call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


async def test_actions_of_one_turn_are_one_write_in_order_and_later_ones_another() -> None:
    protocol = HotlineAmiProtocol(lambda _event: None, lambda _exc: None)
    transport = RecordingTransport()
    protocol.connection_made(transport)
    ids = [protocol.send_action({"Action": "Setvar", "Variable": name, "Value": "0"})[0] for name in "ABC"]
    assert transport.writes == []  # not yet: at the end of this turn
    await asyncio.sleep(0)
    assert len(transport.writes) == 1
    text = transport.writes[0].decode()
    assert [line for line in text.split("\r\n") if line.startswith("Variable:")] == [
        "Variable: A",
        "Variable: B",
        "Variable: C",
    ]
    assert all(f"ActionID: {action_id}" in text for action_id in ids)
    protocol.send_action({"Action": "Ping"})
    await asyncio.sleep(0)
    assert len(transport.writes) == 2 and "Action: Ping" in transport.writes[1].decode()


async def test_nothing_is_written_after_the_connection_was_closed() -> None:
    protocol = HotlineAmiProtocol(lambda _event: None, lambda _exc: None)
    transport = RecordingTransport()
    protocol.connection_made(transport)
    _, future = protocol.send_action({"Action": "Ping"})
    protocol.close()
    await asyncio.sleep(0)
    assert transport.writes == [] and future.done()


async def test_actions_sent_together_each_get_their_own_reply() -> None:
    async with serving() as ami:
        client = AmiClient(ami_settings(ami.port))
        client.start()
        try:
            await client.wait_connected(5)
            replies = await asyncio.gather(*(client.send_action({"Action": "Ping"}) for _ in range(5)))
            assert [r.response.get("response") for r in replies] == ["Success"] * 5
            assert ami.names().count("ping") >= 5
        finally:
            await client.close()
