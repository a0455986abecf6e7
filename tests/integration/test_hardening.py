"""Session 7's security gaps, closed on one real platform (Asterisk, Redis, the controller):

- each seat's password works only where its phone is: a SIP softphone seat's is refused over the
  browsers' WSS listener, a browser seat's over UDP, while each still registers on its own side.
  PJSIP chooses the endpoint by user name whatever the transport, so what keeps them apart is
  each endpoint's ACL (``sip.seat_networks``, ``webrtc.browser_networks``): the softphones'
  network is 127.0.0.2 here (all of 127.0.0.0/8 is local), the browsers' 127.0.0.1;
- sockets waiting for their first-message token are capped (``http.max_pending_sockets``): one
  more is closed with 4429 and counted in /metrics, and a seat desk with its token still works;
- the open-ticket keys an earlier version named with the caller's whole number are renamed to
  the keyed digest's name in the background once the controller serves (its own platform's only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
import redis

from calls.caller_index import CallerKeys
from common.private_files import local_secret
from hotline.wiring.calls import CALLER_INDEX_KEY_FILE
from tests.support.platform import SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_port
from tests.support.sip_register import register_over_udp, register_over_websocket
from tickets.keys import open_ticket_key

pytestmark = pytest.mark.integration

PHONES, BROWSERS = "127.0.0.2", "127.0.0.1"
BROWSER_SECRET, SIP_SECRET = "browser-1001-s3cret", "softphone-1002-s3cret"
MAX_PENDING = 3
CALLER = "13812345678"
OLD_KEYS = {f"hotline:tickets:open:kunming:{CALLER}": "KM-20260302-0001", f"hotline:tickets:open:dali:{CALLER}": "DL-1"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformUnderTest]:
    hotline = PlatformUnderTest(
        tmp_path_factory.mktemp("hardening"),
        overrides={
            "seats": [
                {"id": "1001", "name": "张敏", "secret": BROWSER_SECRET, "phone": "browser"},
                {"id": "1002", "name": "李华", "secret": SIP_SECRET},
            ],
            "sip": {"seat_networks": [f"{PHONES}/32"]},
            "webrtc": {"port": free_port(), "browser_networks": [f"{BROWSERS}/32"]},
            "http": {"max_pending_sockets": MAX_PENDING},
        },
    )
    hotline.redis.start()
    client = redis.Redis.from_url(hotline.redis.url)
    for key, value in OLD_KEYS.items():  # what an earlier version left in Redis
        client.set(key, value)
    client.close()
    hotline.asterisk.start()
    try:
        hotline.start_controller()
        yield hotline
    finally:
        hotline.stop_all()


def test_a_seats_password_works_only_on_its_own_transport(platform: PlatformUnderTest) -> None:
    wss = f"wss://{BROWSERS}:{platform.config.webrtc.port}/ws"
    sip_port = platform.config.sip.port

    # the softphone seat's right password over WSS: refused like a wrong one (Asterisk answers an
    # ACL failure with a challenge that no password passes, so nothing tells an attacker why)
    assert asyncio.run(register_over_websocket(wss, "1002", SIP_SECRET)) == 401
    # ... and over UDP from the phones' network it registers as always
    assert register_over_udp(PHONES, "127.0.0.1", sip_port, "1002", SIP_SECRET) == 200
    # the browser seat: its password over UDP refused, over WSS registered
    assert register_over_udp(PHONES, "127.0.0.1", sip_port, "1001", BROWSER_SECRET) == 401
    assert asyncio.run(register_over_websocket(wss, "1001", BROWSER_SECRET)) == 200
    # both refusals were the ACL's, not a wrong password
    log = (platform.root / "asterisk-console.log").read_text(encoding="utf-8", errors="replace")
    refused = [line for line in log.splitlines() if "Not match Endpoint ACL" in line]
    assert any("<sip:1002@" in line and f"'{BROWSERS}:" in line for line in refused)
    assert any("<sip:1001@" in line and f"'{PHONES}:" in line for line in refused)

    contacts = platform.asterisk.cli("pjsip show contacts", check=False).stdout
    mine = [line for line in contacts.splitlines() if "1002/sip:" in line]
    assert len(mine) == 1 and f"1002/sip:1002@{PHONES}:" in mine[0] and "transport=ws" not in mine[0]


def _metric(platform: PlatformUnderTest, name: str) -> float:
    body = platform.http("/metrics", token=None).body
    return float(next(line.split()[1] for line in body.splitlines() if line.startswith(f"{name} ")))


async def _pending_cap(platform: PlatformUnderTest) -> None:
    url = f"ws://127.0.0.1:{platform.config.http.port}/api/v1/seats/1001/events"
    async with aiohttp.ClientSession() as session:
        idle = [await session.ws_connect(url) for _ in range(MAX_PENDING)]
        await asyncio.to_thread(
            wait_for, "the idle sockets", lambda: _metric(platform, "hotline_websockets_pending_auth") == MAX_PENDING
        )
        extra = await session.ws_connect(url)
        closing = await extra.receive(timeout=30)
        assert closing.type is aiohttp.WSMsgType.CLOSE and extra.close_code == 4429
        # the seat's desk with its token in the header never waits: it gets in
        desk = await session.ws_connect(url, headers={"Authorization": f"Bearer {SEAT_TOKEN}"})
        hello = await desk.receive(timeout=30)
        assert hello.type is aiohttp.WSMsgType.TEXT and "hello" in hello.data
        # an idle one sends its token (as the desk page does): it gets in too, its place freed
        await idle[0].send_json({"token": SEAT_TOKEN})
        assert "hello" in (await idle[0].receive(timeout=30)).data
        for socket in (*idle, desk):
            await socket.close()


def test_sockets_waiting_for_their_token_are_capped(platform: PlatformUnderTest) -> None:
    asyncio.run(_pending_cap(platform))
    assert _metric(platform, "hotline_websockets_pending_refused_total") == 1
    wait_for("no socket left waiting", lambda: _metric(platform, "hotline_websockets_pending_auth") == 0 or None)
    assert '"event": "socket.too_many_pending"' in platform.controller_log_text()


def test_old_open_ticket_keys_were_renamed_after_start(platform: PlatformUnderTest) -> None:
    # in the background, once FastAGI serves: never in the restart gap
    def log_once_renamed() -> str | None:
        text = platform.controller_log_text()
        return text if '"event": "tickets.open_keys_renamed"' in text else None

    log_text = wait_for("the open-ticket keys renamed", log_once_renamed, timeout_s=60)
    assert log_text.index('"event": "agi.listening"') < log_text.index('"event": "tickets.open_keys_renamed"')
    keys = CallerKeys(local_secret(platform.config.paths.runtime_dir / CALLER_INDEX_KEY_FILE))
    client = redis.Redis.from_url(platform.redis.url)
    try:
        names = {key.decode() for key in client.scan_iter("hotline:tickets:open*")}
        renamed = open_ticket_key("kunming", keys.digest("kunming", CALLER))
        # this platform's: under the digest, same ticket; another platform's: its controller's to do
        assert names == {renamed, f"hotline:tickets:open:dali:{CALLER}"}
        assert client.get(renamed) == b"KM-20260302-0001"
        assert not any(CALLER in name for name in names if ":kunming:" in name)
    finally:
        client.close()
