"""Each seat's credentials work only where its phone is (a real Asterisk, no controller needed):
a SIP softphone seat's password is refused over the browsers' WSS listener, a browser seat's over
UDP, while each still registers on its own side. PJSIP chooses the endpoint by user name whatever
the transport, so what keeps them apart is each endpoint's ACL (``sip.seat_networks``,
``webrtc.browser_networks``): the softphones' network is 127.0.0.2 here (all of 127.0.0.0/8 is
local), the browsers' 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.platform import PlatformUnderTest
from tests.support.ports import free_port
from tests.support.sip_register import register_over_udp, register_over_websocket

pytestmark = pytest.mark.integration

PHONES, BROWSERS = "127.0.0.2", "127.0.0.1"
BROWSER_SECRET, SIP_SECRET = "browser-1001-s3cret", "softphone-1002-s3cret"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformUnderTest]:
    hotline = PlatformUnderTest(
        tmp_path_factory.mktemp("seat_transports"),
        overrides={
            "seats": [
                {"id": "1001", "name": "张敏", "secret": BROWSER_SECRET, "phone": "browser"},
                {"id": "1002", "name": "李华", "secret": SIP_SECRET},
            ],
            "sip": {"seat_networks": [f"{PHONES}/32"]},
            "webrtc": {"port": free_port(), "browser_networks": [f"{BROWSERS}/32"]},
        },
    )
    hotline.asterisk.start()
    try:
        yield hotline
    finally:
        hotline.asterisk.stop()


def _contacts(platform: PlatformUnderTest) -> str:
    return platform.asterisk.cli("pjsip show contacts", check=False).stdout


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

    contacts = _contacts(platform)
    mine = [line for line in contacts.splitlines() if "1002/sip:" in line]
    assert len(mine) == 1 and f"1002/sip:1002@{PHONES}:" in mine[0] and "transport=ws" not in mine[0]
