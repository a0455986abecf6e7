"""The browser phone (webphone/, issue 16) without a browser: what Asterisk is given for a
browser seat, the config's refusals, who gets a seat's phone settings, and the lost-phone rules."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from acd.seat import Seat, SeatState
from calls.model import CallRecord
from hotline.api_pages import add_page_routes
from hotline.asterisk_files import render_asterisk_config, seat_phone_book, write_asterisk_config
from hotline.config import ConfigError, parse_config
from ivr.after_seat import requeue_node
from ivr.dialplan.loader import parse_dialplan
from telephony.ami_types import AmiMessage, AmiResponse
from telephony.asterisk_conf import AsteriskLayout
from web.api_common import AUDIT_KEY, SERVING_KEY, Serving
from web.auth import ApiToken, TokenRegistry, token_sha256
from webphone.routes import add_routes
from webphone.watch import LOST_REASON, SEAT_LOST_TAG, PhoneWatch, lost_seat

BROWSER = "seats: [{id: '1001', secret: browser-s3cret-1001, phone: browser}, {id: '1002', secret: sip-s3cret-10020}]"
LAYOUT = AsteriskLayout(Path("/opt/ast"), Path("/srv/etc"), Path("/srv/var/asterisk"))


def render(text: str) -> dict[str, str]:
    return render_asterisk_config(parse_config(text, "config.yaml", Path("/srv/hotline")), LAYOUT)


def test_a_browser_seat_gets_a_webrtc_endpoint_beside_sip_seats() -> None:
    files = render(BROWSER + "\nwebrtc: {port: 8443, bind_host: 0.0.0.0}")
    pjsip = files["pjsip.conf"]
    browser = pjsip.split("\n[1001]\ntype = endpoint\n")[1].split("\n\n")[0]
    assert "transport = transport-wss" in browser and "webrtc = yes" in browser
    assert "direct_media = no" in browser and "allow = ulaw,alaw" in browser  # recorded, not transcoded
    sip = pjsip.split("\n[1002]\ntype = endpoint\n")[1].split("\n\n")[0]
    assert "transport = transport-udp" in sip and "webrtc" not in sip
    assert "[transport-wss]\ntype = transport\nprotocol = wss\n" in pjsip
    http = files["http.conf"]
    assert "enabled = no" in http  # no plain HTTP: only the TLS listener
    assert "tlsenable = yes\ntlsbindaddr = 0.0.0.0:8443\n" in http
    assert "tlscertfile = /srv/hotline/var/webrtc/cert.pem" in http
    modules = files["modules.conf"]
    assert "noload => res_http_websocket.so" not in modules
    assert "noload => res_pjsip_transport_websocket.so" not in modules
    assert "\nread = call,agent,user,system\n" in files["manager.conf"]  # ContactStatus: read only
    for event in ("ContactStatus", "DeviceStateChange"):  # let through the AMI eventfilter
        assert f"\neventfilter(action(include),name({event})) =\n" in files["manager.conf"]


def test_without_browser_seats_nothing_of_it_is_rendered() -> None:
    files = render("seats: [{id: '1002', secret: sip-s3cret-10020}]")
    assert files["http.conf"] == "[general]\nenabled = no\n"
    assert "transport-wss" not in files["pjsip.conf"]
    assert "noload => res_http_websocket.so" in files["modules.conf"]
    assert "\nread = call,agent,user\n" in files["manager.conf"]
    assert "name(ContactStatus)" not in files["manager.conf"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seats: [{id: '1001', contact: 'sip:1001@127.0.0.1:5070', phone: browser}]", "browser phone"),
        ("seats: [{id: '1001', secret: browser-s3cret-1001, phone: softphone}]", "phone"),
        ("webrtc: {cert_file: /etc/hotline/wss.pem}", "both cert_file and key_file"),
        ("webrtc: {ice_servers: ['http://evil']}", "ice_servers"),
        ("webrtc: {bind_host: 'a;b'}", "bind_host"),
    ],
)
def test_bad_browser_phone_settings_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "config.yaml", Path("/srv/hotline"))


def test_asterisk_behind_nat_gives_browsers_outside_local_net_its_public_address() -> None:
    nat = "webrtc: {external_media_address: 203.0.113.7, external_signaling_address: 203.0.113.8, "
    nat += "local_net: [10.30.0.0/16, 192.168.1.0/24]}"
    pjsip = render(BROWSER + "\n" + nat)["pjsip.conf"]
    wss = pjsip.split("[transport-wss]\n")[1].split("\n\n")[0]
    assert wss.splitlines() == [
        "type = transport",
        "protocol = wss",
        "bind = 0.0.0.0",
        "local_net = 10.30.0.0/16",
        "local_net = 192.168.1.0/24",
        "external_media_address = 203.0.113.7",
        "external_signaling_address = 203.0.113.8",
    ]
    udp = pjsip.split("[transport-udp]\n")[1].split("\n\n")[0]
    assert "external" not in udp and "local_net" not in udp  # the SIP seats' and trunks' transport as before
    plain = render(BROWSER)["pjsip.conf"].split("[transport-wss]\n")[1].split("\n\n")[0]
    assert "external" not in plain and "local_net" not in plain


@pytest.mark.parametrize(
    ("nat", "message"),
    [
        ("{external_media_address: 203.0.113.7}", r"webrtc[\s\S]*local_net: give the networks"),
        ("{local_net: [10.0.0.0/8]}", r"local_net is only used with external_media_address"),
        ("{external_media_address: 'pbx.example', local_net: [10.0.0.0/8]}", r"external_media_address"),
        ("{external_media_address: '1.2.3.4\\nbind = 0.0.0.0', local_net: [10.0.0.0/8]}", r"external_media_address"),
        ("{external_signaling_address: 1.2.3.999, local_net: [10.0.0.0/8]}", r"external_signaling_address"),
        ("{external_media_address: 1.2.3.4, local_net: ['10.0.0.0/8\\nx = y']}", r"local_net"),
        ("{external_media_address: 1.2.3.4, local_net: [10.0.0.0/33]}", r"local_net"),
    ],
)
def test_bad_nat_settings_are_refused_naming_the_key(nat: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(BROWSER + "\nwebrtc: " + nat, "config.yaml", Path("/srv/hotline"))


def test_a_certificate_path_that_cannot_go_into_http_conf_is_refused() -> None:
    with pytest.raises(ValueError, match=r"http\.conf"):
        render(BROWSER + "\nwebrtc: {cert_file: '/etc/a\\nb.pem', key_file: /etc/k.pem}")


def test_the_demo_certificate_is_made_once_and_its_key_is_private(tmp_path: Path) -> None:
    config = parse_config(BROWSER + "\npaths: {runtime_dir: var}", "config.yaml", tmp_path)
    write_asterisk_config(config, tmp_path / "etc")
    cert, key = tmp_path / "var/webrtc/cert.pem", tmp_path / "var/webrtc/key.pem"
    assert "BEGIN CERTIFICATE" in cert.read_text() and "PRIVATE KEY" in key.read_text()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    before = key.read_bytes()
    write_asterisk_config(config, tmp_path / "etc")
    assert key.read_bytes() == before  # kept: browsers that trusted it still do


def test_a_production_key_readable_by_every_user_or_a_missing_pair_is_refused(tmp_path: Path) -> None:
    cert, key = tmp_path / "wss.crt", tmp_path / "wss.key"
    text = BROWSER + f"\npaths: {{runtime_dir: var}}\nwebrtc: {{cert_file: {cert}, key_file: {key}}}"
    config = parse_config(text, "config.yaml", tmp_path)
    with pytest.raises(ConfigError, match=r"webrtc\.cert_file: .*wss\.crt is not a file"):
        write_asterisk_config(config, tmp_path / "etc")
    assert not (tmp_path / "etc").exists()  # nothing half-written
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=r"webrtc\.key_file: .*readable by every user"):
        write_asterisk_config(config, tmp_path / "etc")
    key.chmod(0o640)
    write_asterisk_config(config, tmp_path / "etc")
    assert f"tlsprivatekey = {key}" in (tmp_path / "etc/http.conf").read_text()
    assert not (tmp_path / "var/webrtc").exists()  # no demo pair beside a configured one


TOKENS = TokenRegistry(
    [
        ApiToken(name="seat", role="seat", sha256=token_sha256("seat-token"), seat="1001"),
        ApiToken(name="seat2", role="seat", sha256=token_sha256("seat2-token"), seat="1002"),
        ApiToken(name="sup", role="supervisor", sha256=token_sha256("sup-token")),
        ApiToken(name="root", role="admin", sha256=token_sha256("admin-token")),
        ApiToken(name="dali-seat", role="seat", sha256=token_sha256("dali-token"), seat="1001", platform="dali"),
        ApiToken(name="prov-seat", role="seat", sha256=token_sha256("prov-token"), seat="1001", platform="province"),
    ]
)


class Audit:
    def __init__(self) -> None:
        self.entries: list[Any] = []

    async def audit(self, entry: Any) -> None:
        self.entries.append(entry)


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient[Any, Any], Audit]]:
    from hotline.api import make_auth_middleware
    from web.api_common import UNAUTHENTICATED_KEY, Unauthenticated

    app = web.Application(middlewares=[make_auth_middleware(TOKENS)])
    app[SERVING_KEY] = Serving("kunming", False)
    app[UNAUTHENTICATED_KEY] = Unauthenticated()
    audit = Audit()
    app[AUDIT_KEY] = audit
    config = parse_config(BROWSER + "\nwebrtc: {port: 8443}", "config.yaml", Path("/srv/hotline"))
    add_routes(app, seat_phone_book(config))
    add_page_routes(app)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    yield test_client, audit
    await test_client.close()


async def get(client: TestClient[Any, Any], path: str, token: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    return response.status, await response.json()


async def test_only_the_seats_own_token_of_this_platform_gets_its_secret(
    client: tuple[TestClient[Any, Any], Audit],
) -> None:
    http, audit = client
    status, body = await get(http, "/api/v1/seats/1001/phone", "seat-token")
    assert status == 200 and body["password"] == "browser-s3cret-1001"
    assert body["websocket_url"].startswith("wss://127.0.0.1:8443/ws") and body["sip_uri"] == "sip:1001@127.0.0.1"
    for token in ("seat2-token", "sup-token", "admin-token", "dali-token", "prov-token"):
        status, body = await get(http, "/api/v1/seats/1001/phone", token)
        assert status == 403 and "s3cret" not in str(body), token
    status, body = await get(http, "/api/v1/seats/1002/phone", "seat2-token")  # a SIP softphone seat
    assert (status, body) == (200, {"seat": "1002", "phone": "sip"})
    status, _ = await get(http, "/api/v1/seats/1001%0a/phone", "seat-token")
    assert status == 403
    results = [(e.who, e.result) for e in audit.entries]
    assert ("seat", "allowed") in results and ("sup", "denied") in results and ("root", "denied") in results


async def test_the_seat_desk_may_open_a_websocket_to_the_phones_listener_only(
    client: tuple[TestClient[Any, Any], Audit],
) -> None:
    http, _ = client

    async def connect_src(host: str) -> str:
        page = await http.get("/seat", headers={"Host": host})
        assert page.status == 200
        policy = page.headers["Content-Security-Policy"]
        assert policy.startswith("default-src 'self'; script-src 'self'; style-src 'self'; ")
        return policy.split("; connect-src ")[1]

    # the page's host (webrtc.public_host unset), on the WSS port; never any wss: host
    assert await connect_src("desk.kunming.example:8080") == "'self' wss://desk.kunming.example:8443"
    assert await connect_src("[::1]:8080") == "'self' wss://[::1]:8443"
    # a Host that is no plain host name cannot write into the policy
    assert await connect_src("x;script-src*") == "'self' wss://127.0.0.1:8443"
    status, body = await get(http, "/api/v1/seats/1001/phone", "seat-token")
    assert status == 200 and body["websocket_url"] == "wss://127.0.0.1:8443/ws"


async def test_without_browser_phones_the_seat_desk_opens_no_other_websocket() -> None:
    app = web.Application()
    config = parse_config(
        "seats: [{id: '1002', secret: sip-s3cret-10020}]\nwebrtc: {public_host: phones.example}",
        "config.yaml",
        Path("/srv/hotline"),
    )
    add_routes(app, seat_phone_book(config))
    add_page_routes(app)
    async with TestClient(TestServer(app)) as http:
        page = await http.get("/seat")
        assert page.headers["Content-Security-Policy"] == "default-src 'self'; script-src 'self'; style-src 'self'"
    config = parse_config(BROWSER + "\nwebrtc: {public_host: phones.example}", "config.yaml", Path("/srv/hotline"))
    app = web.Application()
    add_routes(app, seat_phone_book(config))
    add_page_routes(app)
    async with TestClient(TestServer(app)) as http:
        page = await http.get("/seat", headers={"Host": "desk.example"})
        assert page.headers["Content-Security-Policy"].endswith("; connect-src 'self' wss://phones.example:8089")


def test_a_phone_is_lost_when_its_contact_goes_or_its_device_is_unavailable() -> None:
    browser = frozenset({"1001"})
    assert (
        lost_seat(AmiMessage({"event": "ContactStatus", "contactstatus": "Removed", "aor": "1001"}), browser) == "1001"
    )
    assert lost_seat(AmiMessage({"event": "ContactStatus", "contactstatus": "Created", "aor": "1001"}), browser) is None
    assert lost_seat(AmiMessage({"event": "ContactStatus", "contactstatus": "Removed", "aor": "1002"}), browser) is None
    unavailable = {"event": "DeviceStateChange", "device": "PJSIP/1001", "state": "UNAVAILABLE"}
    assert lost_seat(AmiMessage(unavailable), browser) == "1001"
    assert lost_seat(AmiMessage({**unavailable, "state": "INUSE"}), browser) is None
    assert lost_seat(AmiMessage({**unavailable, "device": "SIP/1001"}), browser) is None


PLAN = """
platform: kunming
name: 昆明市12345
area_code: "0871"
prompts: {welcome: 您好。, bye: 再见。}
start: welcome
nodes:
  welcome: {kind: play, prompts: [welcome], next: seat}
  seat: {kind: queue, queue: general, max_wait_s: 60, next: bye}
  bye: {kind: hangup, prompt: bye}
"""


def test_a_caller_whose_seat_lost_its_phone_goes_back_to_the_last_queue() -> None:
    plan = parse_dialplan(PLAN, "kunming.yaml", lambda _name: True)
    record = CallRecord(call_id="c1", platform="kunming", started_at=datetime.now(UTC), ivr_path=("welcome", "seat"))
    assert requeue_node(record, plan) is None  # the seat hung up: the after-seat path
    lost = record.model_copy(update={"tags": {SEAT_LOST_TAG: "1001"}})
    assert requeue_node(lost, plan) == "seat"
    assert requeue_node(lost.model_copy(update={"ivr_path": ("welcome",)}), plan) is None
    assert requeue_node(None, plan) is None


class FakeAmi:
    """Asterisk's side of the watch: the seat's contacts now (PJSIP_AOR) and the actions sent."""

    def __init__(self, contacts: str, status: str = "Reachable") -> None:
        self.contacts = contacts
        self.status = status  # every contact's PJSIP_CONTACT(...,status)
        self.handlers: dict[str, Callable[[AmiMessage], Awaitable[None]]] = {}
        self.actions: list[Mapping[str, str | list[str]]] = []

    def on_event(self, name: str, handler: Callable[[AmiMessage], Awaitable[None]]) -> None:
        self.handlers[name] = handler

    async def send_action(self, fields: Mapping[str, str | list[str]], timeout_s: float | None = None) -> AmiResponse:
        self.actions.append(fields)
        if fields["Action"] == "Getvar" and fields["Variable"] == "PJSIP_AOR(1001,contact)":
            return AmiResponse(AmiMessage({"response": "Success", "value": self.contacts}))
        if fields["Action"] == "Getvar" and str(fields["Variable"]).startswith("PJSIP_CONTACT(1001;@"):
            return AmiResponse(AmiMessage({"response": "Success", "value": self.status}))
        return AmiResponse(AmiMessage({"response": "Success"}))


class FakeSeats:
    def __init__(self, state: SeatState) -> None:
        self.seat = Seat("1001", state)
        self.paused: list[str] = []

    def get(self, seat_id: str) -> Seat:
        return self.seat

    async def pause(self, seat_id: str, reason: str) -> Seat:
        self.paused.append(reason)
        return self.seat


class FakeTracker:
    def __init__(self) -> None:
        self.amended: list[tuple[str, Any]] = []

    async def amend(self, call_id: str, changes: Any) -> None:
        self.amended.append((call_id, changes))


@pytest.mark.parametrize("event", ["ContactStatus", "DeviceStateChange"])
async def test_a_seat_registered_again_elsewhere_keeps_its_call_and_stays_ready(event: str) -> None:
    # a second tab (or device) registers as 1001: Asterisk adds its contact, then removes the
    # first tab's (remove_existing) — a ContactStatus Removed while the seat still has a phone
    removed = (
        {"event": "ContactStatus", "contactstatus": "Removed", "aor": "1001"}
        if event == "ContactStatus"
        else {"event": "DeviceStateChange", "device": "PJSIP/1001", "state": "UNAVAILABLE"}
    )
    record = CallRecord(call_id="c1", platform="kunming", started_at=datetime.now(UTC), seat="1001")
    ami, seats, tracker = FakeAmi("1001;@45ffa74f32ea4bbfd37b7be8340b63ea"), FakeSeats(SeatState.ON_CALL), FakeTracker()
    PhoneWatch(ami, seats, tracker, ["1001"], lambda: [record])
    await ami.handlers[event](AmiMessage(removed))
    assert seats.paused == [] and tracker.amended == []
    assert [a["Action"] for a in ami.actions] == ["Getvar", "Getvar"]  # no Hangup of the seat's leg
    ami.contacts = ""  # no contact left: the phone is gone
    await ami.handlers[event](AmiMessage(removed))
    assert seats.paused == [LOST_REASON] and tracker.amended == [("c1", {"tags": {SEAT_LOST_TAG: "1001"}})]
    assert [a["Action"] for a in ami.actions] == ["Getvar", "Getvar", "Getvar", "Hangup"]


async def test_a_page_gone_without_closing_its_socket_is_lost_when_its_contact_stops_answering() -> None:
    # the contact stays (no websocket close), but the AOR's qualify finds it Unreachable
    unreachable = AmiMessage({"event": "ContactStatus", "contactstatus": "Unreachable", "aor": "1001"})
    record = CallRecord(call_id="c1", platform="kunming", started_at=datetime.now(UTC), seat="1001")
    contact = "1001;@45ffa74f32ea4bbfd37b7be8340b63ea"
    ami, seats, tracker = FakeAmi(contact, status="Unreachable"), FakeSeats(SeatState.ON_CALL), FakeTracker()
    PhoneWatch(ami, seats, tracker, ["1001"], lambda: [record])
    await ami.handlers["ContactStatus"](unreachable)
    assert [a.get("Variable") for a in ami.actions[:2]] == [
        "PJSIP_AOR(1001,contact)",
        f"PJSIP_CONTACT({contact},status)",
    ]
    assert seats.paused == [LOST_REASON] and tracker.amended == [("c1", {"tags": {SEAT_LOST_TAG: "1001"}})]
    assert ami.actions[-1]["Action"] == "Hangup"
    # a seat with a contact that answers (another tab, or the probe went through after all): not lost
    ami, seats, tracker = (
        FakeAmi(f"{contact},1001;@0a0b", status="Reachable"),
        FakeSeats(SeatState.ON_CALL),
        FakeTracker(),
    )
    PhoneWatch(ami, seats, tracker, ["1001"], lambda: [record])
    await ami.handlers["ContactStatus"](unreachable)
    assert seats.paused == [] and [a["Action"] for a in ami.actions] == ["Getvar", "Getvar"]
    # a contact id that is not Asterisk's shape is never put into an AMI action: left alone
    ami, seats, tracker = FakeAmi("1001;@x),EVIL(", status="Unreachable"), FakeSeats(SeatState.ON_CALL), FakeTracker()
    PhoneWatch(ami, seats, tracker, ["1001"], lambda: [record])
    await ami.handlers["ContactStatus"](unreachable)
    assert seats.paused == [] and len(ami.actions) == 1


def test_a_browser_seats_aor_is_qualified_so_a_silent_page_is_noticed() -> None:
    pjsip = render(BROWSER)["pjsip.conf"]
    browser_aor = pjsip.split("\n[1001]\ntype = aor\n")[1].split("\n\n")[0]
    assert "qualify_frequency = 5\nqualify_timeout = 2.5" in browser_aor
    sip_aor = pjsip.split("\n[1002]\ntype = aor\n")[1].split("\n\n")[0]
    assert "qualify" not in sip_aor  # SIP softphones as before
    off = render(BROWSER + "\nwebrtc: {qualify_s: 0}")["pjsip.conf"]
    assert "qualify" not in off.split("\n[1001]\ntype = aor\n")[1].split("\n\n")[0]
