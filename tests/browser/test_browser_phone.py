"""The seat's phone in the browser (issue 16), in Debian's Chromium against one real platform
(Asterisk with its WSS listener and WebRTC endpoint, Redis, the controller, a SIPp caller):

- the desk registers as seat 1001 with the settings only its own token gets, rings on the ACD's
  offer with the caller's number, answers; the caller (SIPp, 440 Hz) and the seat (Chromium's
  fake microphone playing a 1500 Hz WAV) are both in the call's recording; the seat's hang-up
  ends the conversation and the caller goes on to the after-seat path (case number, survey);
- a refused password (401) and a blocked microphone each say so on the desk, and a ready seat
  is paused: the ACD offers it no call it cannot answer;
- the phone's websocket dropped during a call: the seat goes not ready, the caller is not lost;
- the seat consults 95598 (a SIPp peer on the carrier trunk) from the desk and goes back to its
  caller, then hands the caller on blind: the peer hears the caller's voice and not the seat's,
  the browser's leg is hung up, the record says transferred;
- the page vanishes mid-call without closing its websocket (the network black-holed): Asterisk's
  qualify finds the browser Unreachable, the seat goes not ready and the caller back to the queue,
  where a SIP seat takes them.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, WebSocketRoute, async_playwright, expect

from tests.support.audio import tone_wav
from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.platform import ADMIN_TOKEN, SEAT_TOKEN, PlatformUnderTest
from tests.support.ports import free_port, free_tcp_and_udp_port
from tests.support.rtp_phone import RtpPhone, band_rms
from tests.support.sipp import (
    ANSWERED,
    HOTLINE_HANGS_UP,
    INVITE,
    SippCall,
    SippServer,
    answering_peer,
    scenario,
    stream_audio,
)
from web.auth import token_sha256

pytestmark = pytest.mark.integration

TIMEOUT_MS = 60_000  # a shared machine: Asterisk, SIPp and Chromium at once
SECRET = "browser-1001-s3cret"
SUPERVISOR_TOKEN = "test-supervisor-token"
CALLER_HZ, SEAT_HZ = 440, 1500
MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def sip_seat_port() -> int:
    """Seat 1002's SIP softphone (SIPp): a classic seat beside the browser one."""
    return free_tcp_and_udp_port()


@pytest.fixture(scope="module")
def carrier_port() -> int:
    """The carrier trunk, where 95598 (the directory's `power`) answers: a SIPp peer."""
    return free_tcp_and_udp_port()


@pytest.fixture(scope="module")
def hotline(
    tmp_path_factory: pytest.TempPathFactory, sip_seat_port: int, carrier_port: int
) -> Iterator[PlatformUnderTest]:
    platform = PlatformUnderTest(
        tmp_path_factory.mktemp("browser_phone"),
        overrides={
            "seats": [
                {"id": "1001", "name": "张敏", "secret": SECRET, "phone": "browser"},
                {"id": "1002", "name": "李华", "contact": f"sip:1002@127.0.0.1:{sip_seat_port}"},
            ],
            "webrtc": {"port": free_port()},
            "sip": {"trunks": {"carrier": {"host": "127.0.0.1", "port": carrier_port}}},
            "acd": {"wrapup_s": 0, "ring_timeout_s": 20, "max_missed_offers": 2},
            "http": {
                "tokens": [
                    {"name": "test-admin", "role": "admin", "sha256": token_sha256(ADMIN_TOKEN)},
                    {"name": "test-seat", "role": "seat", "sha256": token_sha256(SEAT_TOKEN), "seat": "1001"},
                    {"name": "chief", "role": "supervisor", "sha256": token_sha256(SUPERVISOR_TOKEN)},
                ]
            },
        },
        dialplan="after_seat",
    )
    platform.install_dialplan("after_seat", lambda text: text.replace("timeout_s: 20", "timeout_s: 3"))
    platform.start_all()
    try:
        yield platform
    finally:
        platform.stop_all()


@asynccontextmanager
async def desk_browser(args: list[str]) -> AsyncIterator[Page]:
    """A seat desk page in a Chromium of its own (the demo certificate is self-signed)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS + args)
        try:
            context = await browser.new_context(ignore_https_errors=True, locale="zh-CN")
            page = await context.new_page()
            yield page
        finally:
            await browser.close()


async def open_desk(page: Page, hotline: PlatformUnderTest) -> None:
    await page.goto(f"http://127.0.0.1:{hotline.config.http.port}/seat")
    await page.fill("#token", SEAT_TOKEN)
    await page.press("#token", "Enter")
    await expect(page.locator("#status")).to_contain_text("seat 1001:", timeout=TIMEOUT_MS)


async def seat_state(hotline: PlatformUnderTest) -> dict[str, Any]:
    seats = (await asyncio.to_thread(hotline.http, "/api/v1/seats")).body["seats"]
    return next(s for s in seats if s["seat"] == "1001")


async def press_ready(page: Page, hotline: PlatformUnderTest) -> None:
    state = (await seat_state(hotline))["state"]
    if state == "logged_out":
        await page.click("[data-act=login]")
    elif state != "ready":
        await page.click("[data-act=ready]")


async def make_ready(page: Page, hotline: PlatformUnderTest) -> None:
    await press_ready(page, hotline)
    await expect(page.locator("#status")).to_contain_text("seat 1001: ready", timeout=TIMEOUT_MS)


def test_only_the_seats_own_token_gets_its_phone_settings(hotline: PlatformUnderTest) -> None:
    mine = hotline.http("/api/v1/seats/1001/phone", SEAT_TOKEN)
    assert mine.status == 200
    assert mine.body["phone"] == "browser" and mine.body["password"] == SECRET
    assert mine.body["websocket_url"] == f"wss://127.0.0.1:{hotline.config.webrtc.port}/ws"
    for token in (ADMIN_TOKEN, SUPERVISOR_TOKEN):  # they may act as any seat elsewhere: not here
        refused = hotline.http("/api/v1/seats/1001/phone", token)
        assert refused.status == 403 and SECRET not in json.dumps(refused.body)
    assert hotline.http("/api/v1/seats/1001/phone", None).status == 401
    assert SECRET not in hotline.controller_log_text()
    key = Path(hotline.config.paths.runtime_dir) / "webrtc" / "key.pem"
    assert key.stat().st_mode & 0o077 == 0  # the demo key is the service's alone


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """Chromium's fake microphone (the seat says 1500 Hz) and the caller's 440 Hz for SIPp."""
    folder = tmp_path_factory.mktemp("voices")
    seat_voice = folder / "seat-voice.wav"
    command = ["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(seat_voice), "synth", "20", "sine", str(SEAT_HZ)]
    subprocess.run([*command, "vol", "0.5"], check=True, capture_output=True)
    caller_voice = tone_wav(folder / "caller.wav", seconds=1, frequency_hz=CALLER_HZ)
    fake_mic = ["--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={seat_voice}"]
    return MEDIA_ARGS + fake_mic, caller_voice


def place_call(hotline: PlatformUnderTest, caller: str, voice: Path) -> SippCall:
    parts = scenario(INVITE, ANSWERED, stream_audio(voice, loops=-1), HOTLINE_HANGS_UP)
    return SippCall(hotline.config.sip.port, parts, caller=caller, timeout_s=180)


async def test_the_desk_is_the_phone_recorded_with_both_voices(
    hotline: PlatformUnderTest, voices: tuple[list[str], Path]
) -> None:
    args, caller_voice = voices
    async with desk_browser(args) as page:
        await open_desk(page, hotline)
        phone = page.locator("#phone-status")
        await expect(phone).to_contain_text("registered as 1001", timeout=TIMEOUT_MS)
        await make_ready(page, hotline)

        caller, masked = "13912340016", "139****0016"
        call = await asyncio.to_thread(place_call, hotline, caller, caller_voice)
        await expect(page.locator("#phone-caller")).to_contain_text(caller, timeout=TIMEOUT_MS)
        await expect(page.locator("#phone-answer")).to_be_enabled()
        await page.click("#phone-answer")
        await expect(phone).to_contain_text("talking", timeout=TIMEOUT_MS)
        await expect(page.locator("#phone-hangup")).to_be_enabled()
        await expect(page.locator("#status")).to_contain_text("seat 1001: on_call", timeout=TIMEOUT_MS)
        await asyncio.sleep(4)  # some conversation to record
        # hold and resume: re-INVITEs Asterisk answers (JsSIP reports hold only once they are taken)
        await page.click("#phone-hold")
        await expect(page.locator("#phone-hold")).to_contain_text("resume", timeout=TIMEOUT_MS)
        await page.click("#phone-hold")
        await expect(page.locator("#phone-hold")).to_contain_text("hold", timeout=TIMEOUT_MS)
        await page.click("#phone-mute")
        await expect(page.locator("#phone-mute")).to_contain_text("unmute")
        await page.click("#phone-mute")
        await page.click("#phone-keys button[data-key='5']")  # RFC 4733 to the caller
        await page.click("#phone-hangup")
        await expect(phone).to_contain_text("call ended", timeout=TIMEOUT_MS)

        assert await asyncio.to_thread(lambda: call.wait().ok)  # the hotline released the caller at the end
        ended = await asyncio.to_thread(
            hotline.wait_call, lambda c: c["caller"] == masked and c["state"] == "ended", "the record"
        )
        assert ended["outcome"] == "answered" and ended["seat"] == "1001"
        assert ended["ivr_path"][-3:] == ["case", "survey", "bye"]  # the seat hung up: the after-seat path
        assert ended["tags"]["after_seat"] == "case"
        stored = hotline.stored_call(ended["call_id"])
        wav = hotline.config.paths.spool_dir / stored["call_recording"]
        assert band_rms(wav, CALLER_HZ - 40, CALLER_HZ + 40) > 0.02, "the caller is not in the recording"
        assert band_rms(wav, SEAT_HZ - 50, SEAT_HZ + 50) > 0.02, "the browser seat is not in the recording"


async def test_the_browser_seat_consults_then_hands_its_caller_on_blind(
    hotline: PlatformUnderTest, voices: tuple[list[str], Path], carrier_port: int, tmp_path: Path
) -> None:
    args, caller_voice = voices
    async with desk_browser(args) as page:
        await open_desk(page, hotline)
        phone = page.locator("#phone-status")
        await expect(phone).to_contain_text("registered as 1001", timeout=TIMEOUT_MS)
        await make_ready(page, hotline)
        caller, masked = "13912340018", "139****0018"
        call = await asyncio.to_thread(place_call, hotline, caller, caller_voice)
        await expect(page.locator("#phone-answer")).to_be_enabled(timeout=TIMEOUT_MS)
        await page.click("#phone-answer")
        await expect(phone).to_contain_text("talking", timeout=TIMEOUT_MS)
        await expect(page.locator("#status")).to_contain_text("seat 1001: on_call", timeout=TIMEOUT_MS)
        power = page.locator("#destinations div", has_text="95598")

        # a consultation from the browser seat's phone, then back to the caller
        consulted = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=carrier_port)
        try:
            await power.locator("button", has_text="attended").click()
            await expect(page.locator("#consult")).to_contain_text("power: talking (attended)", timeout=TIMEOUT_MS)
            await page.click("[data-consult=cancel]")
            await expect(page.locator("#consult")).to_have_text("无 none", timeout=TIMEOUT_MS)
            assert await asyncio.to_thread(lambda: consulted.wait().ok)  # 95598 hung up, the caller kept
        finally:
            consulted.stop()
        await expect(phone).to_contain_text("talking")  # the browser seat is with its caller again

        # a blind transfer: 95598 gets the caller, the browser's leg is hung up
        ear = RtpPhone(None)  # 95598's media: what its user hears
        peer = SippServer(ear.sdp_port(scenario(answering_peer(talk_ms=5000, hang_up=True))), port=carrier_port)
        try:
            since = time.monotonic()
            await power.locator("button", has_text="blind").click()
            await expect(phone).to_contain_text("call ended", timeout=TIMEOUT_MS)
            assert await asyncio.to_thread(lambda: peer.wait().ok)  # answered, 5 s of talk, hung up by 95598
            assert await asyncio.to_thread(lambda: call.wait().ok)  # the caller was released at the end
            heard = await asyncio.to_thread(ear.heard_since, since, tmp_path / "power-heard.wav")
        finally:
            peer.stop()
            ear.close()
        assert band_rms(heard, CALLER_HZ - 40, CALLER_HZ + 40) > 0.02, "95598 did not hear the caller"
        # the seat's 1500 Hz no louder than the noise floor of u-law beside it (a band where nobody speaks)
        seat_band, floor = band_rms(heard, SEAT_HZ - 50, SEAT_HZ + 50), band_rms(heard, 1150, 1250)
        assert seat_band < 3 * floor + 0.002, f"95598 heard the browser seat ({seat_band} vs {floor})"
        ended = await asyncio.to_thread(
            hotline.wait_call, lambda c: c["caller"] == masked and c["state"] == "ended", "the record"
        )
        assert (ended["outcome"], ended["seat"], ended["transfer_to"]) == ("transferred", "1001", "power:95598")
        assert ended["tags"]["transfer_mode"] == "blind" and "after_seat" not in ended["tags"]


async def test_a_dropped_websocket_mid_call_pauses_the_seat_and_requeues_the_caller(
    hotline: PlatformUnderTest, voices: tuple[list[str], Path], sip_seat_port: int
) -> None:
    args, caller_voice = voices
    async with desk_browser(args) as page:
        await open_desk(page, hotline)
        phone = page.locator("#phone-status")
        await expect(phone).to_contain_text("registered as 1001", timeout=TIMEOUT_MS)
        await make_ready(page, hotline)
        caller, masked = "13912340017", "139****0017"
        call = await asyncio.to_thread(place_call, hotline, caller, caller_voice)
        await expect(page.locator("#phone-answer")).to_be_enabled(timeout=TIMEOUT_MS)
        await page.click("#phone-answer")
        await expect(page.locator("#status")).to_contain_text("seat 1001: on_call", timeout=TIMEOUT_MS)
        # a colleague with a SIP softphone is ready meanwhile
        other = SippServer(scenario(answering_peer(talk_ms=2000, hang_up=True)), port=sip_seat_port)
        try:
            assert (
                await asyncio.to_thread(hotline.http, "/api/v1/seats/1002/login", ADMIN_TOKEN, "POST")
            ).status == 200

            await page.evaluate("window.seatPhone.dropWebsocket()")  # the network under the desk fails
            await expect(phone).to_contain_text("websocket) lost", timeout=TIMEOUT_MS)
            await expect(page.locator("#status")).to_contain_text("seat 1001: not_ready", timeout=TIMEOUT_MS)
            assert (await seat_state(hotline))["reason"] == "phone lost"
            # the caller is not lost: back in the queue, the colleague's phone takes them
            assert await asyncio.to_thread(lambda: other.wait().ok)
            assert await asyncio.to_thread(lambda: call.wait().ok)
        finally:
            other.stop()
            await asyncio.to_thread(hotline.http, "/api/v1/seats/1002/logout", ADMIN_TOKEN, "POST")
        ended = await asyncio.to_thread(
            hotline.wait_call, lambda c: c["caller"] == masked and c["state"] == "ended", "the record"
        )
        assert ended["outcome"] == "answered" and ended["seat"] == "1002"
        assert ended["ivr_path"].count("seat") == 2  # queued, lost the browser seat's phone, queued again
        # the desk's phone registers again by itself; the seat stays paused until it says ready
        await expect(phone).to_contain_text("registered as 1001", timeout=TIMEOUT_MS)
        assert (await seat_state(hotline))["state"] == "not_ready"


async def test_a_page_gone_without_closing_its_socket_sends_its_caller_back_to_the_queue(
    hotline: PlatformUnderTest, voices: tuple[list[str], Path], sip_seat_port: int
) -> None:
    """The PC freezes or its network is cut: no websocket close reaches Asterisk (the contact
    stays, the fake microphone's media even keeps flowing); only the AOR's qualify notices."""
    args, caller_voice = voices
    cut = False

    def black_hole(ws: WebSocketRoute) -> None:  # the page's SIP websocket, relayed until the cut
        server = ws.connect_to_server()
        ws.on_message(lambda message: None if cut else server.send(message))
        server.on_message(lambda message: None if cut else ws.send(message))

    async with desk_browser(args) as page:
        await page.route_web_socket(re.compile(r"^wss://.*/ws$"), black_hole)
        await open_desk(page, hotline)
        phone = page.locator("#phone-status")
        await expect(phone).to_contain_text("registered as 1001", timeout=TIMEOUT_MS)
        await make_ready(page, hotline)
        caller, masked = "13912340019", "139****0019"
        call = await asyncio.to_thread(place_call, hotline, caller, caller_voice)
        await expect(page.locator("#phone-answer")).to_be_enabled(timeout=TIMEOUT_MS)
        await page.click("#phone-answer")
        await expect(page.locator("#status")).to_contain_text("seat 1001: on_call", timeout=TIMEOUT_MS)
        other = SippServer(scenario(answering_peer(talk_ms=2000, hang_up=True)), port=sip_seat_port)
        try:
            assert (
                await asyncio.to_thread(hotline.http, "/api/v1/seats/1002/login", ADMIN_TOKEN, "POST")
            ).status == 200
            lost_talking = '"state": "on_call", "event": "webphone.lost"'  # found lost mid-call
            lost_before = hotline.controller_log_text().count(lost_talking)
            cut = True  # from now on nothing passes either way, and nobody closes the socket
            await expect(page.locator("#status")).to_contain_text("seat 1001: not_ready", timeout=TIMEOUT_MS)
            assert (await seat_state(hotline))["reason"] == "phone lost"
            assert await asyncio.to_thread(lambda: other.wait().ok)  # the SIP seat took the caller
            assert await asyncio.to_thread(lambda: call.wait().ok)
        finally:
            other.stop()
            await asyncio.to_thread(hotline.http, "/api/v1/seats/1002/logout", ADMIN_TOKEN, "POST")
        ended = await asyncio.to_thread(
            hotline.wait_call, lambda c: c["caller"] == masked and c["state"] == "ended", "the record"
        )
        assert ended["outcome"] == "answered" and ended["seat"] == "1002"
        assert ended["ivr_path"].count("seat") == 2  # queued, the browser seat vanished, queued again
        assert hotline.controller_log_text().count(lost_talking) == lost_before + 1


async def test_a_refused_password_says_so_and_the_seat_is_not_offered_calls(
    hotline: PlatformUnderTest, voices: tuple[list[str], Path]
) -> None:
    args, _ = voices

    async def wrong_secret(route: Route) -> None:
        response = await route.fetch()
        settings = await response.json()
        await route.fulfill(response=response, json={**settings, "password": "not-the-seats-secret"})

    async with desk_browser(args) as page:
        await page.route("**/api/v1/seats/1001/phone", wrong_secret)  # as if config.yaml's secret were wrong
        await open_desk(page, hotline)
        await press_ready(page, hotline)  # the desk pauses the seat again: its phone cannot answer
        phone = page.locator("#phone-status")
        await expect(phone).to_contain_text("registration refused (401)", timeout=TIMEOUT_MS)
        await expect(phone).to_contain_text("wrong SIP password")
        await expect(page.locator("#status")).to_contain_text("seat 1001: not_ready", timeout=TIMEOUT_MS)


async def test_a_blocked_microphone_says_so_and_the_seat_is_not_offered_calls(hotline: PlatformUnderTest) -> None:
    async with desk_browser(MEDIA_ARGS) as page:  # no fake permission prompt: the microphone is refused
        await open_desk(page, hotline)
        await press_ready(page, hotline)  # the desk pauses the seat again: its phone cannot answer
        phone = page.locator("#phone-status")
        await expect(phone).to_contain_text("microphone blocked", timeout=TIMEOUT_MS)
        await expect(page.locator("#status")).to_contain_text("seat 1001: not_ready", timeout=TIMEOUT_MS)
        assert await page.evaluate("window.seatPhone.registered") is False
