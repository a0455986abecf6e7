"""The seat's phone in the browser (issue 16), in Debian's Chromium against one real platform
(Asterisk with its WSS listener and WebRTC endpoint, Redis, the controller, a SIPp caller):

- the desk registers as seat 1001 with the settings only its own token gets, rings on the ACD's
  offer with the caller's number, answers; the caller (SIPp, 440 Hz) and the seat (Chromium's
  fake microphone playing a 1500 Hz WAV) are both in the call's recording; the seat's hang-up
  ends the conversation and the caller goes on to the after-seat path (case number, survey);
- a refused password (401) and a blocked microphone each say so on the desk, and a ready seat
  is paused: the ACD offers it no call it cannot answer;
- the phone's websocket dropped during a call: the seat goes not ready, the caller is not lost.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.support.audio import tone_wav
from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.platform import ADMIN_TOKEN, SEAT_TOKEN, PlatformUnderTest
from tests.support.ports import free_port
from tests.support.rtp_phone import band_rms
from tests.support.sipp import ANSWERED, HOTLINE_HANGS_UP, INVITE, SippCall, scenario, stream_audio
from web.auth import token_sha256

pytestmark = pytest.mark.integration

TIMEOUT_MS = 60_000  # a shared machine: Asterisk, SIPp and Chromium at once
SECRET = "browser-1001-s3cret"
SUPERVISOR_TOKEN = "test-supervisor-token"
CALLER_HZ, SEAT_HZ = 440, 1500
MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformUnderTest]:
    platform = PlatformUnderTest(
        tmp_path_factory.mktemp("browser_phone"),
        overrides={
            "seats": [{"id": "1001", "name": "张敏", "secret": SECRET, "phone": "browser"}],
            "webrtc": {"port": free_port()},
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
            page.on("console", lambda message: print("console:", message.text))
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


async def make_ready(page: Page, hotline: PlatformUnderTest) -> None:
    state = (await seat_state(hotline))["state"]
    if state == "logged_out":
        await page.click("[data-act=login]")
    elif state != "ready":
        await page.click("[data-act=ready]")
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


async def test_the_desk_is_the_phone_recorded_with_both_voices(hotline: PlatformUnderTest, tmp_path: Path) -> None:
    seat_voice = tmp_path / "seat-voice.wav"
    command = ["sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(seat_voice), "synth", "20", "sine", str(SEAT_HZ)]
    subprocess.run([*command, "vol", "0.5"], check=True, capture_output=True)
    caller_voice = tone_wav(tmp_path / "caller.wav", seconds=1, frequency_hz=CALLER_HZ)
    fake_mic = ["--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={seat_voice}"]
    async with desk_browser(MEDIA_ARGS + fake_mic) as page:
        await open_desk(page, hotline)
        phone = page.locator("#phone-status")
        await expect(phone).to_contain_text("registered as 1001", timeout=TIMEOUT_MS)
        await make_ready(page, hotline)

        caller, masked = "13912340016", "139****0016"
        call = await asyncio.to_thread(
            SippCall,
            hotline.config.sip.port,
            scenario(INVITE, ANSWERED, stream_audio(caller_voice, loops=-1), HOTLINE_HANGS_UP),
            caller=caller,
            timeout_s=120,
        )
        await expect(page.locator("#phone-caller")).to_contain_text(caller, timeout=TIMEOUT_MS)
        await expect(page.locator("#phone-answer")).to_be_enabled()
        await page.click("#phone-answer")
        await expect(phone).to_contain_text("talking", timeout=TIMEOUT_MS)
        await expect(page.locator("#phone-hangup")).to_be_enabled()
        await expect(page.locator("#status")).to_contain_text("seat 1001: on_call", timeout=TIMEOUT_MS)
        await asyncio.sleep(4)  # some conversation to record
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
