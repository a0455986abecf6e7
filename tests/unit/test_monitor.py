"""Listen / whisper / barge (monitor/): the ChanSpy Originate, mode keys, ends, and the HTTP API
with roles, platforms, refusals and the audit trail (a fake AMI link, the real routes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hotline.api import build_api
from hotline.config import ConfigError, parse_config
from monitor.model import Mode, chanspy_options
from monitor.service import MonitorRefused, MonitorService, MonitorSettings, SeatCall
from tests.support.fake_ami_link import FakeAmiLink
from tests.unit.test_api import Backend
from web.auth import ApiToken, TokenRegistry, token_sha256

SEAT_CHANNEL = "PJSIP/1001-0000001a"
PHONE_CHANNEL = "PJSIP/1090-0000001f"
TOKENS = TokenRegistry(
    [
        ApiToken(name="seat", role="seat", sha256=token_sha256("seat-token"), seat="1001"),
        ApiToken(name="prov", role="supervisor", sha256=token_sha256("prov-token"), platform="province"),
        ApiToken(name="dali-sup", role="supervisor", sha256=token_sha256("dali-token"), platform="dali"),
        ApiToken(name="sup", role="supervisor", sha256=token_sha256("sup-token")),
    ]
)


class SeatCalls:
    def __init__(self) -> None:
        self.calls = {"kunming-1.1": SeatCall("kunming-1.1", "1001", SEAT_CHANNEL)}
        self.busy: set[str] = set()

    def seat_call(self, call_id: str) -> SeatCall | None:
        return self.calls.get(call_id)

    def phone_busy(self, seat_id: str) -> bool:
        return seat_id in self.busy


class Audit:
    def __init__(self) -> None:
        self.entries: list[Any] = []

    async def audit(self, entry: Any) -> None:
        self.entries.append(entry)


def service(ami: FakeAmiLink, seat_calls: SeatCalls | None = None, audit: Audit | None = None) -> MonitorService:
    settings = MonitorSettings(frozenset({"1090", "1091", "1001"}), 20.0, "kunming")
    return MonitorService(ami, seat_calls or SeatCalls(), settings, audit or Audit())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_chanspy_options_per_mode() -> None:
    assert chanspy_options(Mode.LISTEN) == "qdES"
    assert chanspy_options(Mode.WHISPER) == "qdESw"
    assert chanspy_options(Mode.BARGE) == "qdESB"


async def test_start_rings_the_phone_into_chanspy_on_the_seats_own_channel() -> None:
    ami, audit = FakeAmiLink(), Audit()
    monitors = service(ami, audit=audit)
    monitor = await monitors.start("kunming-1.1", Mode.WHISPER, "1090", "sup")
    (originate,) = ami.sent("Originate")
    assert originate["Channel"] == "PJSIP/1090"
    assert originate["Application"] == "ChanSpy"
    assert originate["Data"] == f"{SEAT_CHANNEL},qdESw"
    assert originate["ChannelId"] == monitor.id and originate["Timeout"] == "20000"
    assert monitor.state == "ringing" and monitor.seat == "1001"

    await ami.emit("Newchannel", Uniqueid=monitor.id, Channel=PHONE_CHANNEL)
    await ami.emit("OriginateResponse", Uniqueid=monitor.id, Response="Success", Channel=PHONE_CHANNEL)
    assert monitors.get(monitor.id).state == "active"  # type: ignore[union-attr]

    switched, old = await monitors.switch(monitor.id, Mode.BARGE)
    assert old is Mode.WHISPER and switched.mode is Mode.BARGE and switched.modes == ("whisper", "barge")
    (dtmf,) = ami.sent("PlayDTMF")
    assert dtmf == {"Action": "PlayDTMF", "Channel": PHONE_CHANNEL, "Digit": "6", "Duration": "120", "Receive": "yes"}
    await monitors.switch(monitor.id, Mode.LISTEN)
    assert ami.sent("PlayDTMF")[-1]["Digit"] == "4"

    await ami.emit("Hangup", Uniqueid="kunming-1.1-seat", Channel=SEAT_CHANNEL)  # the seat's call ends
    assert monitors.active() == []
    (ended,) = monitors.ended()
    assert ended.end_reason == "the seat's call ended" and ended.modes == ("whisper", "barge", "listen")
    (entry,) = audit.entries
    assert entry.call_id == "kunming-1.1" and entry.who == "sup" and entry.result == "ended"
    assert "modes=whisper>barge>listen" in entry.action and "duration_s=" in entry.action


async def test_refusals_and_a_phone_that_does_not_answer() -> None:
    ami, calls = FakeAmiLink(), SeatCalls()
    monitors = service(ami, calls)
    cases = [
        ("kunming-9.9", "1090", 409),  # not a seat's call in progress
        ("kunming-1.1", "1002", 422),  # not a supervisor's phone
        ("kunming-1.1", "PJSIP/1090&PJSIP/1091", 422),  # a dial string is no phone
        ("kunming-1.1", "1001", 422),  # the seat itself
    ]
    for call_id, phone, status in cases:
        with pytest.raises(MonitorRefused) as refused:
            await monitors.start(call_id, Mode.LISTEN, phone, "sup")
        assert refused.value.status == status, (call_id, phone)
    calls.busy.add("1091")
    with pytest.raises(MonitorRefused) as refused:
        await monitors.start("kunming-1.1", Mode.LISTEN, "1091", "sup")
    assert refused.value.status == 409
    assert ami.sent("Originate") == []

    monitor = await monitors.start("kunming-1.1", Mode.LISTEN, "1090", "sup")
    with pytest.raises(MonitorRefused) as refused:  # one monitor per phone
        await monitors.start("kunming-1.1", Mode.LISTEN, "1090", "sup")
    assert refused.value.status == 409
    with pytest.raises(MonitorRefused) as refused:  # not answered yet
        await monitors.switch(monitor.id, Mode.BARGE)
    assert refused.value.status == 409
    await ami.emit("OriginateResponse", Uniqueid=monitor.id, Response="Failure", Reason="3")
    assert monitors.active() == [] and monitors.ended()[0].end_reason == "not answered (reason 3)"


async def test_a_channel_name_that_is_not_a_seats_is_never_sent() -> None:
    ami, calls = FakeAmiLink(), SeatCalls()
    calls.calls["kunming-2.2"] = SeatCall("kunming-2.2", "1001", "PJSIP/1001-0000001a,qB")
    with pytest.raises(MonitorRefused) as refused:
        await service(ami, calls).start("kunming-2.2", Mode.LISTEN, "1090", "sup")
    assert refused.value.status == 503 and ami.sent("Originate") == []


@pytest.fixture
async def api() -> AsyncIterator[tuple[TestClient[Any, Any], FakeAmiLink, Backend]]:
    backend, ami = Backend(), FakeAmiLink()
    monitors = service(ami, audit=backend)  # type: ignore[arg-type]
    client = TestClient(TestServer(build_api(backend, TOKENS, monitors=monitors)))
    await client.start_server()
    yield client, ami, backend
    await client.close()


async def test_api_roles_platforms_and_audit(api: tuple[TestClient[Any, Any], FakeAmiLink, Backend]) -> None:
    client, ami, backend = api
    url = "/api/v1/calls/kunming-1.1/monitor"
    body = {"mode": "listen", "phone": "1090"}
    assert (await client.post(url, json=body)).status == 401
    assert (await client.post(url, json=body, headers=bearer("seat-token"))).status == 403
    assert (await client.post(url, json=body, headers=bearer("dali-token"))).status == 403  # another platform's
    assert (await client.post(url, json=body, headers=bearer("prov-token"))).status == 403  # sees, may not change
    assert (await client.get("/api/v1/monitors", headers=bearer("seat-token"))).status == 403
    for bad, field in (({"mode": "spy", "phone": "1090"}, "mode"), ({"mode": "listen"}, "phone")):
        answer = await client.post(url, json=bad, headers=bearer("sup-token"))
        assert answer.status == 400 and (await answer.json())["field"] == field
    assert (await client.post(url, data="[", headers=bearer("sup-token"))).status == 400
    assert ami.sent("Originate") == []

    started = await client.post(url, json=body, headers=bearer("sup-token"))
    assert started.status == 201
    monitor = await started.json()
    assert monitor["mode"] == "listen" and monitor["seat"] == "1001" and monitor["who"] == "sup"
    listed = await (await client.get("/api/v1/monitors", headers=bearer("prov-token"))).json()
    assert [m["id"] for m in listed["monitors"]] == [monitor["id"]] and listed["phones"] == ["1001", "1090", "1091"]

    await ami.emit("OriginateResponse", Uniqueid=monitor["id"], Response="Success", Channel=PHONE_CHANNEL)
    mode_url = f"/api/v1/monitors/{monitor['id']}/mode"
    switched = await client.post(mode_url, json={"mode": "whisper"}, headers=bearer("sup-token"))
    assert switched.status == 200 and (await switched.json())["mode"] == "whisper"
    assert (await client.post("/api/v1/monitors/monitor-nope/mode", json={"mode": "barge"},
                              headers=bearer("sup-token"))).status == 404  # fmt: skip
    stopped = await client.post(f"/api/v1/monitors/{monitor['id']}/stop", headers=bearer("sup-token"))
    assert stopped.status == 200 and (await stopped.json())["state"] == "ended"
    assert ami.sent("Hangup")[-1]["Channel"] == PHONE_CHANNEL
    assert (await client.get("/api/v1/monitors", headers=bearer("sup-token"))).status == 200

    trail = [(e.who, e.action.split(" ")[0], e.result, e.call_id) for e in backend.audited]
    assert ("sup", "monitor.start", "allowed", "kunming-1.1") in trail
    assert ("sup", "monitor.mode", "allowed", "kunming-1.1") in trail
    assert ("sup", "monitor.end", "ended", "kunming-1.1") in trail
    assert ("sup", "monitor.stop", "allowed", "kunming-1.1") in trail
    mode_entry = next(e for e in backend.audited if e.action.startswith("monitor.mode"))
    assert "listen>whisper" in mode_entry.action


def test_config_phones_must_be_configured_seats(tmp_path: Any) -> None:
    seats = (
        "seats:\n  - {id: '1001', contact: 'sip:1001@127.0.0.1:5070'}\n"
        "  - {id: '1090', contact: 'sip:1090@127.0.0.1:5071'}\n"
    )
    config = parse_config(seats + "monitor:\n  phones: ['1090']\n", "config.yaml", tmp_path)
    assert config.monitor.phones == ("1090",)
    for bad, words in (
        ("monitor:\n  phones: ['1095']\n", "monitor.phones names seats that are not configured: 1095"),
        ("monitor:\n  phones: ['PJSIP/1090']\n", "seat id is 3-6 digits"),
        ("monitor:\n  phone: ['1090']\n", "phone"),
    ):
        with pytest.raises(ConfigError) as error:
            parse_config(seats + bad, "config.yaml", tmp_path)
        assert words in str(error.value) and "config.yaml" in str(error.value)
