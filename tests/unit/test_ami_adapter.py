"""Our AMI adapter over panoramisk: each panoramisk 1.4 trap has a regression test here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from telephony.ami import AmiClient, next_backoff
from telephony.ami_types import AmiConnectionLost, AmiMessage, AmiNotConnected, AmiTimeout
from tests.support.fake_ami import FakeAmi, ami_settings, encode, serving
from tests.support.ports import free_port
from tests.support.waiting import wait_until


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    async with serving() as server:
        yield server


@pytest.fixture
async def client(ami: FakeAmi) -> AsyncIterator[AmiClient]:
    ami_client = AmiClient(ami_settings(ami.port))
    ami_client.start()
    await ami_client.wait_connected(5)
    yield ami_client
    await ami_client.close()


async def test_chinese_name_split_across_tcp_reads_arrives_whole(ami: FakeAmi, client: AmiClient) -> None:
    received: list[AmiMessage] = []

    async def on_new_channel(event: AmiMessage) -> None:
        received.append(event)

    client.on_event("Newchannel", on_new_channel)
    raw = encode({"Event": "Newchannel", "Channel": "PJSIP/trunk-1", "CallerIDName": "张三丰", "Uniqueid": "k-1.1"})
    cut = raw.index("张".encode()) + 1  # split inside the first character's three bytes
    await ami.send_raw(raw[:cut], raw[cut:])
    await wait_until(lambda: received)
    assert received[0].get("calleridname") == "张三丰"
    assert received[0].get("channel") == "PJSIP/trunk-1"


async def test_unanswered_originate_is_not_resent_after_reconnect(ami: FakeAmi, client: AmiClient) -> None:
    ami.answer["originate"] = False
    pending = asyncio.create_task(
        client.send_action({"Action": "Originate", "Channel": "PJSIP/seat1", "Async": "true"})
    )
    await wait_until(lambda: "originate" in ami.names())
    await ami.drop_connections()
    with pytest.raises(AmiConnectionLost):
        await pending
    await wait_until(lambda: ami.logins == 2)
    await client.wait_connected(5)
    await client.send_action({"Action": "Ping"})
    assert ami.names().count("originate") == 1


async def test_every_action_has_a_timeout(ami: FakeAmi, client: AmiClient) -> None:
    ami.answer["status"] = False
    with pytest.raises(AmiTimeout, match="Status"):
        await client.send_action({"Action": "Status"}, timeout_s=0.2)
    # the connection stays usable, and a late reply would be dropped, not mismatched
    reply = await client.send_action({"Action": "Ping"})
    assert reply.response.get("ping") == "Pong"


async def test_half_open_connection_is_detected_and_replaced(ami: FakeAmi, client: AmiClient) -> None:
    assert client.connections == 1
    ami.answer["ping"] = False  # the peer is silent but the TCP connection stays open
    await wait_until(lambda: ami.logins == 2)
    ami.answer["ping"] = True
    await client.wait_connected(5)
    assert client.connections == 2


async def test_dead_link_fails_at_once_instead_of_hanging() -> None:
    client = AmiClient(ami_settings(free_port()))
    client.start()
    try:
        with pytest.raises(AmiNotConnected):
            await client.send_action({"Action": "Ping"})
    finally:
        await client.close()


async def test_resync_runs_after_every_login(ami: FakeAmi, client: AmiClient) -> None:
    resyncs: list[int] = []

    async def resync() -> None:
        reply = await client.send_action({"Action": "CoreShowChannels"})
        assert [e.name for e in reply.events] == ["CoreShowChannelsComplete"]
        resyncs.append(client.connections)

    client.on_connected(resync)
    await ami.drop_connections()
    await wait_until(lambda: resyncs == [2])


async def test_events_reach_handlers_in_order(ami: FakeAmi, client: AmiClient) -> None:
    seen: list[str] = []

    async def handler(event: AmiMessage) -> None:
        await asyncio.sleep(0.001 * (5 - int(event.get("n"))))  # slower handlers first: order must hold
        seen.append(event.get("n"))

    client.on_event("UserEvent", handler)
    await ami.send_raw(b"".join(encode({"Event": "UserEvent", "n": str(n)}) for n in range(5)))
    await wait_until(lambda: len(seen) == 5)
    assert seen == ["0", "1", "2", "3", "4"]


async def test_events_nobody_listens_for_are_not_parsed_but_replies_always_are(ami: FakeAmi, client: AmiClient) -> None:
    """Without Asterisk's eventfilter, unwanted events are dropped from their first line; an
    event with an ActionID (a list's item, an async Originate's response) is always parsed."""
    seen: list[str] = []

    async def handler(event: AmiMessage) -> None:
        seen.append(f"{event.name} {event.get('n')}")

    client.on_event("Hangup", handler)
    client.on_event("OriginateResponse", handler)
    protocol = client._protocol  # the connection's own counter
    assert protocol is not None
    skipped = protocol.events_skipped  # the fake's own events at login (FullyBooted)
    await ami.send_raw(
        b"".join(
            [
                encode({"Event": "Newexten", "n": "1"}),
                encode({"Event": "VarSet", "n": "2", "Value": "Event: Hangup"}),
                encode({"Event": "Hangup", "n": "3"}),
                encode({"Event": "OriginateResponse", "ActionID": "x-1", "n": "4"}),
                encode({"Event": "hangup", "n": "5"}),  # names are matched case-blind, as handlers are
            ]
        )
    )
    await wait_until(lambda: len(seen) == 3)
    assert seen == ["Hangup 3", "OriginateResponse 4", "hangup 5"]
    assert protocol.events_skipped - skipped == 2


def test_backoff_grows_and_is_capped() -> None:
    s = ami_settings(1, reconnect_initial_s=0.1, reconnect_max_s=1.0)
    steps = [0.0]
    for _ in range(6):
        steps.append(next_backoff(steps[-1], s))
    assert steps[1:] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


async def test_queue_add_reply_is_not_taken_for_a_list(ami: FakeAmi, client: AmiClient) -> None:
    """panoramisk 1.4 waited forever for more after 'Added interface to queue'."""
    ami.replies["queueadd"] = {"Response": "Success", "Message": "Added interface to queue"}
    reply = await client.send_action({"Action": "QueueAdd", "Queue": "hotline-general", "Interface": "PJSIP/1001"})
    assert reply.response.get("message") == "Added interface to queue"
    assert reply.events == ()


async def test_a_stuck_handler_never_stops_the_reading_and_the_backlog_is_bounded(ami: FakeAmi) -> None:
    """A handler that hangs (as one awaiting a hung Redis did) must not let the event backlog grow
    without bound, nor stop us reading AMI (Asterisk drops a manager session it cannot write to):
    newer events are dropped and counted, and the state is resynced from Asterisk afterwards."""
    client = AmiClient(replace(ami_settings(ami.port), event_backlog_max=5))
    resyncs: list[int] = []
    handled: list[str] = []
    release = asyncio.Event()
    stuck: list[str] = []

    async def stuck_handler(event: AmiMessage) -> None:
        stuck.append(event.get("n"))
        await release.wait()
        handled.append(event.get("n"))

    async def resync() -> None:
        resyncs.append(client.connections)

    client.on_event("Newchannel", stuck_handler)
    client.on_connected(resync)
    client.start()
    try:
        await client.wait_connected(5)
        await wait_until(lambda: resyncs == [1])
        events = [encode({"Event": "Newchannel", "n": str(n)}) for n in range(50)]
        events.insert(10, encode({"Event": "VarSet", "Variable": "X"}))  # nobody handles it: not kept
        await ami.send_raw(events[0])
        await wait_until(lambda: stuck == ["0"])
        await ami.send_raw(b"".join(events[1:]))
        await wait_until(lambda: client.events_dropped == 44)  # one in the handler, five waiting
        assert client.events_backlog == 5
        await client.send_action({"Action": "Ping"})  # still read: replies arrive while the handler hangs
        assert client.connected
        assert resyncs == [1]  # not while the handlers are behind

        release.set()
        await wait_until(lambda: len(handled) == 6 and resyncs == [1, 1])
        assert handled == ["0", "1", "2", "3", "4", "5"]
        assert client.events_backlog == 0
        assert client.events_backlog_peak == 5
        assert client.overflow_resyncs == 1
        assert client.connections == 1  # never dropped by either side
    finally:
        await client.close()
