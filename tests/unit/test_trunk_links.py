"""Links to other platforms: qualified by Asterisk (SIP OPTIONS), read as the trunk's device
state, and a seat's transfer over a link known down refused at once (nothing sent to Asterisk,
no hand-off written)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from calls.handoff import RedisHandoffs
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from hotline.asterisk_files import layout_for, render_asterisk_config
from hotline.config import ConfigError, parse_config
from ivr.consult import Consultations
from ivr.dialplan.registry import DialplanRegistry
from ivr.transfer import SeatTransfers, TransferRefused
from telephony.ami_types import AmiResponse, AmiTimeout
from telephony.links import LinkState, TrunkLinks, link_state
from tests.support.fake_ami_link import FakeAmiLink, message

REPO = Path(__file__).resolve().parents[2]
CALL = "kunming-1.1"
NOW = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)

TRUNKS = """
platform: {id: kunming, area_code: "0871"}
sip:
  trunks:
    province: {host: 198.18.0.2, platform: province}
    dali: {host: 198.18.0.4, platform: dali, area_code: "0872", qualify_s: 0}
    carrier: {host: 198.18.0.9}
    slow: {host: 198.18.0.10, qualify_s: 60}
"""


def pjsip_and_extensions(text: str) -> tuple[str, str]:
    config = parse_config(text, "config.yaml", Path("/srv/hotline"))
    files = render_asterisk_config(config, layout_for(config, Path("/tmp/etc")))
    return files["pjsip.conf"], files["extensions.conf"]


def aor(pjsip: str, name: str) -> str:
    start = pjsip.index(f"[{name}]\ntype = aor\n")
    end = pjsip.find("\n[", start + 1)
    return pjsip[start : end if end >= 0 else None]


def test_links_to_platforms_are_qualified_by_default_other_trunks_only_when_asked() -> None:
    pjsip, extensions = pjsip_and_extensions(TRUNKS)
    # every 2 s, an unanswered probe given 1 s (pjsip retransmits the OPTIONS at 0.5 s within it)
    assert "qualify_frequency = 2\nqualify_timeout = 1\n" in aor(pjsip, "province")
    assert "qualify" not in aor(pjsip, "dali")  # 0: never
    assert "qualify" not in aor(pjsip, "carrier")  # a carrier may not answer OPTIONS
    assert "qualify_frequency = 60\n" in aor(pjsip, "slow")
    # area routing answers here at once when the link is known down, before any Dial
    route = extensions[extensions.index("[hotline-route]") :]
    check = route.index('GotoIf($["${DEVICE_STATE(PJSIP/${HOTLINE_ROUTE})}" = "UNAVAILABLE"]?here)')
    assert check < route.index("Dial(PJSIP/${EXTEN}@${HOTLINE_ROUTE},15)")
    assert " same => n(here),Goto(hotline-entry,s,1)" in route


def endpoint(pjsip: str, name: str) -> str:
    start = pjsip.index(f"[{name}]\ntype = endpoint\n")
    return pjsip[start : pjsip.index("\n[", start + 1)]


def test_calls_over_links_to_platforms_end_when_the_far_side_falls_silent() -> None:
    pjsip, _ = pjsip_and_extensions(TRUNKS + "    short: {host: 198.18.0.11, platform: short, rtp_timeout_s: 8}\n")
    # a platform's link: hung up after 30 s without RTP; keepalives every 5 s keep silence alive
    for name in ("province", "dali"):
        assert "rtp_timeout = 30\nrtp_keepalive = 5\n" in endpoint(pjsip, name)
    assert "rtp_timeout = 8\nrtp_keepalive = 2\n" in endpoint(pjsip, "short")
    # a carrier may send nothing while its caller is silent: never watched unless asked
    for name in ("carrier", "slow"):
        assert "rtp_timeout" not in endpoint(pjsip, name)
        assert "rtp_keepalive" not in endpoint(pjsip, name)


def test_calls_from_a_watched_link_come_in_on_its_own_endpoint_only_if_its_address_is_a_peer() -> None:
    text = TRUNKS.replace("sip:\n", 'sip:\n  trunk_peers: ["127.0.0.1/32", "198.18.0.0/29"]\n')
    text += "    far: {host: 198.18.0.12, platform: far}\n    local: {host: 127.0.0.1, port: 5070, platform: local}\n"
    pjsip, _ = pjsip_and_extensions(text)
    incoming = endpoint(pjsip, "link-province")
    assert "context = from-trunk\n" in incoming and "rtp_timeout = 30\nrtp_keepalive = 5\n" in incoming
    assert "[link-province]\ntype = identify\nendpoint = link-province\nmatch = 198.18.0.2:5060\n" in pjsip
    assert "match = 127.0.0.1:5070\n" in pjsip  # several platforms on one address: told apart by port
    # not in sip.trunk_peers: refused as before (no identify of its own), and carriers never get one
    for name in ("far", "carrier", "slow"):
        assert f"[link-{name}]" not in pjsip
    # the trunk's identify (every peer) stays, after the links' in name order
    assert "[trunk]\ntype = identify\n" in pjsip


@pytest.mark.parametrize("bad", ["-1", "1", "3", "3601", "'30; rtp'", "4.5"])
def test_rtp_timeout_leaves_room_for_keepalives(bad: str) -> None:
    with pytest.raises(ConfigError, match="rtp_timeout_s"):
        parse_config(f"sip: {{trunks: {{province: {{host: 198.18.0.2, rtp_timeout_s: {bad}}}}}}}", "c.yaml", Path("/s"))


@pytest.mark.parametrize("bad", ["-1", "3601", "'10; qualify'", "1.5"])
def test_qualify_is_whole_seconds_in_range(bad: str) -> None:
    with pytest.raises(ConfigError, match="qualify_s"):
        parse_config(f"sip: {{trunks: {{province: {{host: 198.18.0.2, qualify_s: {bad}}}}}}}", "c.yaml", Path("/s"))


def test_device_states_map_to_link_states() -> None:
    assert link_state("UNAVAILABLE") is LinkState.DOWN
    assert link_state("NOT_INUSE") is LinkState.UP
    assert link_state("INUSE") is LinkState.UP
    assert link_state("UNKNOWN") is LinkState.UNKNOWN
    assert link_state("INVALID") is LinkState.UNKNOWN
    assert link_state("") is LinkState.UNKNOWN


class DeviceStates(FakeAmiLink):
    def __init__(self, states: Mapping[str, str]) -> None:
        super().__init__()
        self.states = dict(states)

    async def send_action(self, fields: Mapping[str, str | list[str]], timeout_s: float | None = None) -> AmiResponse:
        if fields.get("Action") == "Getvar":
            self.actions.append({k: str(v) for k, v in fields.items()})
            if "getvar" in self.failing:
                raise AmiTimeout("no reply")
            variable = str(fields["Variable"])
            trunk = variable.removeprefix("DEVICE_STATE(PJSIP/").removesuffix(")")
            return AmiResponse(message(Response="Success", Variable=variable, Value=self.states.get(trunk, "INVALID")))
        return await super().send_action(fields, timeout_s)


async def test_trunk_links_ask_asterisk_for_the_device_state() -> None:
    ami = DeviceStates({"province": "UNAVAILABLE", "dali": "NOT_INUSE"})
    links = TrunkLinks(ami)
    assert await links.state("province") is LinkState.DOWN
    assert await links.state("dali") is LinkState.UP
    assert ami.sent("Getvar")[0]["Variable"] == "DEVICE_STATE(PJSIP/province)"
    ami.failing.add("getvar")
    assert await links.state("province") is LinkState.UNKNOWN  # Asterisk silent: try, and handle failure
    with pytest.raises(ValueError, match="not a trunk name"):
        await links.state("province)}${SHELL(id")


class AnySeatFree:
    async def has_free_seat(self, platform: str) -> bool | None:
        return True


async def seat_transfers(
    client: aioredis.Redis, ami: FakeAmiLink, platform_trunks: Mapping[str, str] | None = None
) -> tuple[SeatTransfers, CallTracker]:
    async def prepare(_plan: object) -> None:
        return None

    dialplans = DialplanRegistry(REPO / "dialplans" / "kunming.yaml", REPO / "prompts", "kunming", prepare)
    await dialplans.load_initial()
    tracker = CallTracker(RedisCallStore(client, timedelta(days=1), "kunming"), "kunming", lambda: NOW)
    await tracker.channel_created(CALL, "PJSIP/trunk-00000001", "13800000000", "", "12345")
    await tracker.amend(CALL, {"seat": "1001", "seat_answered_at": NOW})
    handoffs = RedisHandoffs(client)
    transfers = SeatTransfers(
        platform="kunming",
        tracker=tracker,
        dialplans=dialplans,
        ami=ami,
        handoffs=handoffs,
        # the directory's 95598 goes out on `carrier`; here that trunk stands for a link to a platform
        platform_trunks={"carrier": "province"} if platform_trunks is None else platform_trunks,
        trunks=frozenset({"carrier"}),
        availability=AnySeatFree(),
        consultations=Consultations(ami=ami, tracker=tracker, handoffs=handoffs),
        clock=lambda: NOW,
        links=TrunkLinks(ami),
    )
    return transfers, tracker


async def test_a_transfer_over_a_link_known_down_is_refused_before_anything_is_sent(client: aioredis.Redis) -> None:
    ami = DeviceStates({"carrier": "UNAVAILABLE"})
    transfers, tracker = await seat_transfers(client, ami)
    with pytest.raises(TransferRefused, match="link to province is down; the caller stays with you"):
        await transfers.transfer(CALL, "power", "1001", "note")
    assert ami.sent("Redirect") == [] and ami.sent("Setvar") == []
    assert [key async for key in client.scan_iter("hotline:handoff:*")] == []  # no case left to expire
    record = tracker.get_live(CALL)
    assert record is not None and record.seat == "1001" and not record.transfer_to
    assert await transfers.link_state("carrier") is LinkState.DOWN
    # back up (or unknown: no qualify answer yet): the transfer goes ahead
    ami.states["carrier"] = "NOT_INUSE"
    started = await transfers.transfer(CALL, "power", "1001", "note")
    assert started.handoff is not None and len(ami.sent("Redirect")) == 1


async def test_each_platform_s_link_is_up_when_any_trunk_there_answers(client: aioredis.Redis) -> None:
    ami = DeviceStates({"province": "NOT_INUSE", "province_down": "UNAVAILABLE", "dali": "UNAVAILABLE"})
    trunks = {"province_down": "province", "province": "province", "dali": "dali", "qujing": "qujing"}
    transfers, _ = await seat_transfers(client, ami, trunks)
    links = await transfers.platform_links()
    assert links == {"province": LinkState.UP, "dali": LinkState.DOWN, "qujing": LinkState.UNKNOWN}
    ami.states["province"] = "UNAVAILABLE"
    assert (await transfers.platform_links())["province"] is LinkState.DOWN


class SlowDeviceStates(DeviceStates):
    """An Asterisk slow to answer: how many Getvars are out at once."""

    def __init__(self, states: Mapping[str, str]) -> None:
        super().__init__(states)
        self.in_flight = self.most_in_flight = 0

    async def send_action(self, fields: Mapping[str, str | list[str]], timeout_s: float | None = None) -> AmiResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        self.in_flight -= 1
        return await super().send_action(fields, timeout_s)


async def test_the_links_are_asked_at_once_not_one_after_another(client: aioredis.Redis) -> None:
    # the console polls /api/v1/platforms: with Asterisk slow, 16 links one after another would
    # take 16 action timeouts per poll
    ami = SlowDeviceStates({"province": "NOT_INUSE", "dali": "UNAVAILABLE"})
    trunks = {"province": "province", "dali": "dali", "qujing": "qujing"}
    transfers, _ = await seat_transfers(client, ami, trunks)
    links = await transfers.platform_links()
    assert links == {"province": LinkState.UP, "dali": LinkState.DOWN, "qujing": LinkState.UNKNOWN}
    assert ami.most_in_flight == 3
