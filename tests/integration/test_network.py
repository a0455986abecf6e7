"""One province, several prefectures: three real Asterisks and controllers (province, 昆明,
大理), each on its own address (127.0.0.2-4, as on separate hosts: a platform knows the others
only by their trunks' host:port), linked by SIP trunks, sharing one Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from hotline.redis_process import RedisProcess
from tests.support.audio import tone_wav
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.ports import free_port, free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    HOTLINE_HANGS_UP,
    INVITE,
    SippCall,
    SippServer,
    answering_peer,
    invite,
    scenario,
    stream_audio,
)

pytestmark = pytest.mark.integration


@dataclass
class Network:
    province: PlatformUnderTest
    kunming: PlatformUnderTest
    dali: PlatformUnderTest
    kunming_seat_port: int
    province_seat_port: int


# each platform's SIP address, as if on its own host (seats and SIPp callers stay on 127.0.0.1)
ADDRESSES = {"province": "127.0.0.2", "kunming": "127.0.0.3", "dali": "127.0.0.4", "nobody": "127.0.0.5"}


def trunk(port: int, platform: str, area_code: str | None = None) -> dict[str, Any]:
    link: dict[str, Any] = {"host": ADDRESSES[platform], "port": port, "platform": platform}
    if area_code:
        link["area_code"] = area_code
    return link


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("network")
    redis = RedisProcess(root / "redis", free_port())
    sip = {name: free_tcp_and_udp_port() for name in ("province", "kunming", "dali", "nobody")}
    kunming_seat, province_seat = free_tcp_and_udp_port(), free_tcp_and_udp_port()

    def platform(name: str, area_code: str, trunks: dict[str, Any], seats: list[dict[str, str]]) -> PlatformUnderTest:
        return PlatformUnderTest(
            root / name,
            overrides={
                "platform": {"id": name, "name": name, "area_code": area_code, "province": name == "province"},
                "sip": {
                    "bind_host": ADDRESSES[name],
                    "port": sip[name],
                    "trunks": trunks,
                    # the carrier (SIPp callers on 127.0.0.1) and the other platforms
                    "trunk_peers": ["127.0.0.1/32"] + [f"{a}/32" for p, a in ADDRESSES.items() if p != name],
                },
                "seats": seats,
                "acd": {"auto_login": [s["id"] for s in seats], "wrapup_s": 0},
                # a seat's blind transfer rings 10 s, not 30: every platform here answers at once
                # (its IVR), and the one to province_down (nobody there) rings it out
                "transfers": {"ring_s": 10},
            },
            dialplan=f"net_{name}",
            shared_redis=redis,
        )

    province = platform(
        "province",
        "0871",
        {"kunming": trunk(sip["kunming"], "kunming", "0871"), "dali": trunk(sip["dali"], "dali", "0872")},
        [{"id": "2001", "contact": f"sip:2001@127.0.0.1:{province_seat}"}],
    )
    kunming = platform(
        "kunming",
        "0871",
        {
            "province": trunk(sip["province"], "province"),
            # never qualified (qualify_s 0): the transfer is tried and fails, the ticket path
            # (a link known down is refused at once: tests/integration/test_separate_hosts.py)
            "province_down": {**trunk(sip["nobody"], "province"), "host": ADDRESSES["nobody"], "qualify_s": 0},
        },
        [{"id": "1001", "contact": f"sip:1001@127.0.0.1:{kunming_seat}"}],
    )
    dali = platform("dali", "0872", {"province": trunk(sip["province"], "province")}, [])
    redis.start()
    started: list[PlatformUnderTest] = []
    try:
        for each in (province, kunming, dali):
            each.start_all()
            started.append(each)
        # a link is known up once a qualify probe is answered: a platform started before its
        # peer saw it down, until the next probe
        for each in (province, kunming, dali):
            wait_for(f"{each.platform_id}'s links up", partial(links_up, each), timeout_s=30)
        yield Network(province, kunming, dali, kunming_seat, province_seat)
    finally:
        for each in started:
            each.stop_all()
        redis.stop()


def links_up(platform: PlatformUnderTest) -> bool:
    """Whether every platform ``platform`` has a trunk to answers its qualify probes."""
    entries = platform.http("/api/v1/platforms").body["platforms"]
    links = {p["platform"]: p.get("link") for p in entries}
    wanted = {t.platform for t in platform.config.sip.trunks.values() if t.platform}
    return wanted <= set(links) and all(links[p] == "up" for p in wanted)


def call_in(platform: PlatformUnderTest, scenario_xml: str, **options: Any) -> SippCall:
    """A caller on the carrier trunk of ``platform``."""
    return SippCall(platform.config.sip.port, scenario_xml, host=platform.config.sip.bind_host, **options)


def ended(
    platform: PlatformUnderTest, caller: str, where: Callable[[dict[str, Any]], bool] = lambda c: True
) -> dict[str, Any]:
    masked = caller[:3] + "****" + caller[-4:]
    return platform.wait_call(
        lambda c: c["caller"] == masked and c["state"] == "ended" and where(c), f"{caller} on {platform.platform_id}"
    )


def province_seat_answers(network: Network) -> SippServer:
    return SippServer(scenario(answering_peer(talk_ms=1000, hang_up=True)), port=network.province_seat_port)


def routed_leg(record: dict[str, Any]) -> bool:
    return str(record["transfer_to"]).startswith("route:")


def test_a_caller_of_another_area_is_answered_by_their_own_prefecture(network: Network) -> None:
    """0872 12345 dialled into the province's trunk: 大理's IVR answers (属地接听); with no seat on
    duty there its queue overflows to a transfer back to the province, carrying the case."""
    province_seat = province_seat_answers(network)
    result = call_in(
        network.province, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), number="087212345", caller="13877770001"
    ).wait()
    assert result.ok, result.errors
    assert province_seat.wait().ok
    at_dali = ended(network.dali, "13877770001")
    assert at_dali["called"] == "087212345"
    assert at_dali["ivr_path"] == ["welcome", "seat", "to_province"]
    assert at_dali["tags"]["queue_status"] == "joinempty"  # the overflow
    assert (at_dali["outcome"], at_dali["transfer_to"]) == ("transferred", "province:12345")
    routed = ended(network.province, "13877770001", routed_leg)
    assert (routed["outcome"], routed["transfer_to"]) == ("transferred", "route:dali")
    overflowed = ended(network.province, "13877770001", lambda c: not routed_leg(c))
    assert overflowed["tags"]["handoff"] == at_dali["tags"]["handoff"]
    assert overflowed["tags"]["handoff_from"] == f"dali:{at_dali['call_id']}"
    assert (overflowed["seat"], overflowed["outcome"]) == ("2001", "answered")


def test_plain_12345_with_the_area_header_is_routed_too(network: Network) -> None:
    """A carrier that sends every call as 12345 says the area in a header: 0872 → 大理."""
    province_seat = province_seat_answers(network)
    headed = scenario(invite("X-Hotline-Area: 0872"), ANSWERED, HOTLINE_HANGS_UP)
    assert call_in(network.province, headed, number="12345", caller="13877770006").wait().ok
    assert province_seat.wait().ok
    assert ended(network.dali, "13877770006")["called"] == "087212345"
    assert ended(network.province, "13877770006", routed_leg)["transfer_to"] == "route:dali"
    # a header that is no area code (only its digits count) is answered where the call arrived
    province_seat = province_seat_answers(network)
    junk = scenario(invite("X-Hotline-Area: ${EVIL}"), ANSWERED, HOTLINE_HANGS_UP)
    assert call_in(network.dali, junk, number="12345", caller="13877770007").wait().ok
    assert province_seat.wait().ok
    at_dali = ended(network.dali, "13877770007")
    assert at_dali["ivr_path"][0] == "welcome"  # 大理's own IVR, not routed anywhere by the header
    assert at_dali["called"] == "12345"


def current_call(platform: PlatformUnderTest, seat_id: str) -> dict[str, Any] | None:
    seats = platform.http("/api/v1/seats").body["seats"]
    found: dict[str, Any] | None = next(s for s in seats if s["seat"] == seat_id)["current"]
    return found


def test_a_seat_transfers_its_caller_to_the_province_with_the_case(network: Network) -> None:
    kunming, province = network.kunming, network.province
    kunming_seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=network.kunming_seat_port)
    province_seat = SippServer(scenario(answering_peer(talk_ms=3000, hang_up=True)), port=network.province_seat_port)
    caller = call_in(kunming, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13877770002")
    talking = kunming.wait_call(
        lambda c: c["caller"] == "138****0002" and c["seat"] == "1001" and c["state"] != "ended", "the caller with 1001"
    )
    transfer = kunming.http(
        f"/api/v1/calls/{talking['call_id']}/transfer", method="POST", body={"to": "province", "note": "跨市事项"}
    )
    assert transfer.status == 202, transfer.body
    token = transfer.body["handoff"]["token"]

    # the provincial seat sees the case while its phone rings (or at the latest as it talks)
    seen = wait_for("the case at the provincial seat", lambda: current_call(province, "2001"), timeout_s=30)
    assert seen["handoff"]["token"] == token
    assert seen["handoff"]["note"] == "跨市事项"
    assert seen["handoff"]["from_platform"] == "kunming"
    assert seen["handoff"]["caller"] == "138****0002"

    assert caller.wait().ok
    assert kunming_seat.wait().ok
    assert province_seat.wait().ok
    at_kunming = ended(kunming, "13877770002")
    at_province = ended(province, "13877770002")
    assert at_kunming["outcome"] == "transferred"
    assert at_kunming["transfer_to"] == "province:12345"
    assert at_kunming["tags"]["handoff"] == token
    assert at_province["tags"]["handoff"] == token
    assert at_province["tags"]["handoff_from"] == f"kunming:{at_kunming['call_id']}"
    assert at_province["seat"] == "2001"
    assert at_province["outcome"] == "answered"
    assert at_province["ivr_path"][0] == "priority_seat"  # straight to a seat, no menu again
    record = kunming.http(f"/api/v1/handoffs/{token}").body
    assert record["picked_up_platform"] == "province"
    assert record["picked_up_call_id"] == at_province["call_id"]


def test_a_seat_consults_the_province_then_hands_the_caller_over(network: Network) -> None:
    """Attended: the 昆明 seat talks to the provincial seat first (who sees the case), then leaves."""
    kunming, province = network.kunming, network.province
    kunming_seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=network.kunming_seat_port)
    province_seat = SippServer(scenario(answering_peer(talk_ms=8000, hang_up=True)), port=network.province_seat_port)
    caller = call_in(kunming, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13877770005")
    talking = kunming.wait_call(
        lambda c: c["caller"] == "138****0005" and c["seat"] == "1001" and c["state"] != "ended", "the caller with 1001"
    )
    path = f"/api/v1/calls/{talking['call_id']}/transfer"
    started = kunming.http(path, method="POST", body={"to": "province", "mode": "attended", "note": "先沟通再转"})
    assert started.status == 202, started.body
    token = started.body["handoff"]["token"]
    # the provincial seat answers the consultation and sees the case (the citizen's number, the note)
    seen = wait_for("the case at the provincial seat", lambda: current_call(province, "2001"), timeout_s=30)
    assert seen["handoff"]["token"] == token
    assert seen["handoff"]["note"] == "先沟通再转"
    wait_for(
        "the provincial seat talking to the 昆明 seat",
        lambda: (current_call(province, "2001") or {}).get("phase") == "talking",
        timeout_s=20,
    )
    done = kunming.http(f"{path}/complete", method="POST")
    assert done.status == 202, done.body

    assert kunming_seat.wait().ok
    assert province_seat.wait().ok
    assert caller.wait().ok  # the caller talked with the province until its seat hung up
    at_kunming = ended(kunming, "13877770005")
    assert at_kunming["outcome"] == "transferred"
    assert at_kunming["tags"]["transfer_mode"] == "attended"
    assert at_kunming["tags"]["transfer_status"] == "completed"
    at_province = ended(province, "13877770005")  # the new leg shows the citizen's number
    assert at_province["tags"]["handoff"] == token
    assert at_province["tags"]["handoff_from"] == f"kunming:{at_kunming['call_id']}"
    assert at_province["seat"] == "2001"


def test_province_down_keeps_the_caller_and_the_case_in_a_ticket(network: Network, tmp_path: Path) -> None:
    kunming = network.kunming
    kunming_seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=network.kunming_seat_port)
    speech = tone_wav(tmp_path / "speech.wav", seconds=2)
    caller = call_in(
        kunming,
        scenario(INVITE, ANSWERED, stream_audio(speech, loops=-1), HOTLINE_HANGS_UP),
        caller="13877770003",
        timeout_s=90,
    )
    talking = kunming.wait_call(
        lambda c: c["caller"] == "138****0003" and c["seat"] == "1001" and c["state"] != "ended", "the caller with 1001"
    )
    transfer = kunming.http(
        f"/api/v1/calls/{talking['call_id']}/transfer", method="POST", body={"to": "province_down", "note": "省级部门"}
    )
    assert transfer.status == 202, transfer.body
    token = transfer.body["handoff"]["token"]
    assert caller.wait().ok  # never dropped: the message was taken, then the goodbye
    assert kunming_seat.wait().ok
    record = ended(kunming, "13877770003")
    assert record["outcome"] == "voicemail"
    assert record["tags"]["transfer_status"] in ("chanunavail", "congestion", "noanswer")
    assert record["ivr_path"][-2:] == ["vm", "bye"]

    def ticket() -> dict[str, Any] | None:
        tickets = kunming.http("/api/v1/tickets").body["tickets"]
        return next((t for t in tickets if t["call_id"] == record["call_id"]), None)

    found = wait_for("the ticket with the case", ticket, timeout_s=30)
    assert found["tags"]["handoff"] == token
    assert found["tags"]["transfer_by"] == "1001"


def test_the_province_view_and_a_transfer_refused_while_its_seats_are_busy(network: Network) -> None:
    kunming, province = network.kunming, network.province

    def province_ready_seats() -> int | None:
        platforms = {p["platform"]: p for p in kunming.http("/api/v1/platforms").body["platforms"]}
        assert {"province", "kunming", "dali"} <= set(platforms)
        entry = platforms["province"]
        return int(entry["seats"].get("ready", 0)) if entry["reporting"] else None

    assert wait_for("the province reporting a ready seat", province_ready_seats) == 1
    assert province.http("/api/v1/seats/2001/pause", method="POST").status == 200
    wait_for("the province reporting no ready seat", lambda: province_ready_seats() == 0, timeout_s=20)

    kunming_seat = SippServer(scenario(answering_peer(talk_ms=4000, hang_up=True)), port=network.kunming_seat_port)
    caller = call_in(kunming, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13877770004")
    talking = kunming.wait_call(
        lambda c: c["caller"] == "138****0004" and c["seat"] == "1001" and c["state"] != "ended", "the caller with 1001"
    )
    refused = kunming.http(f"/api/v1/calls/{talking['call_id']}/transfer", method="POST", body={"to": "province"})
    assert refused.status == 409
    assert "no free seat" in refused.body["error"]
    # 昆明 here has no carrier trunk: the directory's 110 is refused at once, saying why
    no_trunk = kunming.http(f"/api/v1/calls/{talking['call_id']}/transfer", method="POST", body={"to": "police"})
    assert no_trunk.status == 409
    assert "trunk 'carrier'" in no_trunk.body["error"]
    police = next(d for d in kunming.http("/api/v1/destinations").body["destinations"] if d["to"] == "police")
    assert (police["kind"], police["available"]) == ("emergency", False)
    assert caller.wait().ok  # the seat finished the call itself
    assert kunming_seat.wait().ok
    assert ended(kunming, "13877770004")["outcome"] == "answered"
    assert province.http("/api/v1/seats/2001/ready", method="POST").status == 200
