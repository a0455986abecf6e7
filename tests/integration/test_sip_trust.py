"""Who may call in, on a real Asterisk: the trunk only from its peers' addresses, a seat only
from its own contact (or with its password); and a carrier's area header never refuses a caller.

Every spoofing probe is a SIPp bound to 127.0.0.2: a local address (all of 127.0.0.0/8 is) that
is not in ``sip.trunk_peers`` (127.0.0.1/32), i.e. "someone else on the network".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.support.platform import PlatformUnderTest
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    CHALLENGED,
    HOTLINE_HANGS_UP,
    INVITE,
    REJECTED_404,
    invite,
    run_sipp,
    scenario,
)

pytestmark = pytest.mark.integration

ELSEWHERE = "127.0.0.2"
SEAT = "1001"


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformUnderTest, int]]:
    """A platform whose seat 1001 is a phone at a fixed contact on loopback (the trunk's own
    address), with no password: known by that contact's address and port alone. It also has an
    outbound trunk (``carrier``) and a link to another platform (``province``)."""
    seat_port = free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path_factory.mktemp("trust"),
        overrides={
            "seats": [{"id": SEAT, "name": SEAT, "contact": f"sip:{SEAT}@127.0.0.1:{seat_port}"}],
            "sip": {
                "trunks": {
                    "carrier": {"host": "127.0.0.1", "port": free_tcp_and_udp_port()},
                    "province": {"host": "127.0.0.1", "port": free_tcp_and_udp_port(), "platform": "province"},
                }
            },
        },
    )
    platform.start_all()
    try:
        yield platform, seat_port
    finally:
        platform.stop_all()


def _agi_sessions(platform: PlatformUnderTest) -> int:
    body = platform.http("/metrics", token=None).body
    line = next(line for line in body.splitlines() if line.startswith("hotline_agi_sessions_total "))
    return int(float(line.split()[1]))


def _record_keys(platform: PlatformUnderTest) -> set[Any]:
    client = redis.Redis.from_url(platform.redis.url)
    try:
        return set(client.scan_iter("hotline:call:*"))
    finally:
        client.close()


def _seat_state(platform: PlatformUnderTest) -> str:
    seats = platform.http("/api/v1/seats").body["seats"]
    state: str = next(s for s in seats if s["seat"] == SEAT)["state"]
    return state


def _channels(platform: PlatformUnderTest) -> str:
    return platform.asterisk.cli("core show channels count").stdout


@pytest.mark.parametrize(("name", "number"), [("trunk", "12345"), ("trunk", "99999"), ("carrier", "12345"),
                                            ("province", "087112345")])  # fmt: skip
def test_a_trunks_name_from_another_address_is_refused_and_reaches_nothing(
    trusted: tuple[PlatformUnderTest, int], name: str, number: str
) -> None:
    platform, _ = trusted
    records, sessions = _record_keys(platform), _agi_sessions(platform)
    result = run_sipp(platform.config.sip.port, scenario(INVITE, CHALLENGED), number=number, caller=name,
                      local_ip=ELSEWHERE)  # fmt: skip
    assert result.ok, result.errors  # 401: no endpoint is theirs (was: 200 into the IVR, or 404)
    # nothing happened: no call record, no FastAGI session, no channel left
    assert _record_keys(platform) == records
    assert _agi_sessions(platform) == sessions
    assert "0 active calls" in _channels(platform)


def test_the_carrier_on_its_peer_address_still_calls_in(trusted: tuple[PlatformUnderTest, int]) -> None:
    platform, _ = trusted
    result = run_sipp(platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13955550001")
    assert result.ok, result.errors
    platform.wait_call(lambda c: c["caller"] == "139****0001" and c["outcome"] == "ivr_completed", "the call")


def test_a_fixed_contact_seat_is_only_itself_from_its_contact(trusted: tuple[PlatformUnderTest, int]) -> None:
    platform, seat_port = trusted
    sip_port = platform.config.sip.port
    code_call = scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP)
    # the phone itself, from its contact address and port: logged in
    assert run_sipp(sip_port, code_call, number="*21", caller=SEAT, local_port=seat_port).ok
    assert _seat_state(platform) == "ready"
    sessions = _agi_sessions(platform)
    # someone else using its name: from another address (401), or from another port of the
    # trunk's own address (that is the carrier: its context knows no feature codes, 404)
    for code in ("*22", "*2305", "*24"):
        spoofed = run_sipp(sip_port, scenario(INVITE, CHALLENGED), number=code, caller=SEAT, local_ip=ELSEWHERE)
        assert spoofed.ok, (code, spoofed.errors)
        assert _seat_state(platform) == "ready", code
        other_port = run_sipp(sip_port, scenario(INVITE, REJECTED_404), number=code, caller=SEAT)
        assert other_port.ok, (code, other_port.errors)
        assert _seat_state(platform) == "ready", code
    assert _agi_sessions(platform) == sessions  # no feature-code AGI ever ran for them
    assert run_sipp(sip_port, code_call, number="*22", caller=SEAT, local_port=seat_port).ok
    assert _seat_state(platform) == "logged_out"


@pytest.mark.parametrize(
    ("area", "caller"), [("9", "13966660001"), ("86872", "13966660002"), ("+86 871", "13966660003")]
)
def test_an_area_header_that_names_no_area_is_answered_here(
    trusted: tuple[PlatformUnderTest, int], area: str, caller: str
) -> None:
    platform, _ = trusted
    call = scenario(invite(f"X-Hotline-Area: {area}"), ANSWERED, HOTLINE_HANGS_UP)
    result = run_sipp(platform.config.sip.port, call, caller=caller)
    assert result.ok, result.errors  # answered (was: SIP 404)
    masked = caller[:3] + "****" + caller[-4:]
    record = platform.wait_call(lambda c: c["caller"] == masked and c["state"] == "ended", "the call record")
    assert record["outcome"] == "ivr_completed"
    assert record["ivr_path"] == ["welcome", "bye"]
