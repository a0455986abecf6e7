"""Every dialplan node kind on a real call (Asterisk + SIPp callers, seats and peers, DTMF as
RFC 4733 and as SIP INFO), proven by the call record."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.audio import duration_s, rms_amplitude, speech_then_silence_wav, tone_wav
from tests.support.platform import ADMIN_TOKEN, SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    HOTLINE_HANGS_UP,
    INVITE,
    RINGING_PEER,
    SippCall,
    SippServer,
    answering_peer,
    dtmf,
    dtmf_info,
    pause,
    run_sipp,
    scenario,
    stays_until_released,
    stream_audio,
)

pytestmark = pytest.mark.integration

MONDAY_MORNING = "2026-03-09T10:00:00+08:00"
EVERY_NODE = (Path(__file__).resolve().parents[1] / "dialplans" / "every_node.yaml").read_text(encoding="utf-8")


class Nodes:
    """The shared platform of this module, with its seat and peer ports."""

    def __init__(self, platform: PlatformUnderTest, seat_port: int, carrier_port: int, silent_seat_port: int) -> None:
        self.platform = platform
        self.seat_port = seat_port
        self.carrier_port = carrier_port
        self.silent_seat_port = silent_seat_port

    @property
    def sip_port(self) -> int:
        return self.platform.config.sip.port

    def prompt_ms(self, name: str) -> int:
        return int(duration_s(self.platform.config.paths.runtime_dir / "prompts" / "ivr" / f"{name}.wav") * 1000)

    def call(self, caller: str, *parts: str, timeout_s: float = 60) -> dict[str, Any]:
        result = run_sipp(self.sip_port, scenario(INVITE, ANSWERED, *parts), caller=caller, timeout_s=timeout_s)
        assert result.ok, result.errors
        masked = caller[:3] + "****" + caller[-4:]
        return self.platform.wait_call(
            lambda c: c["caller"] == masked and c["state"] == "ended", f"the record of {caller}"
        )

    def in_menu_ms(self) -> int:
        """From answer to the middle of the menu's listening window."""
        return self.prompt_ms("welcome") + self.prompt_ms("menu") + 500


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    seat_port, carrier_port, silent_port = free_tcp_and_udp_port(), free_tcp_and_udp_port(), free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path_factory.mktemp("nodes"),
        overrides={
            "seats": [
                {"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{seat_port}"},
                {"id": "1002", "name": "1002", "contact": f"sip:1002@127.0.0.1:{silent_port}"},
            ],
            "acd": {"max_missed_offers": 1, "wrapup_s": 0, "ring_timeout_s": 5},
            "sip": {"trunks": {"carrier": {"host": "127.0.0.1", "port": carrier_port}}},
        },
        dialplan="every_node",
        environment={"HOTLINE_TEST_NOW": MONDAY_MORNING},
    )
    platform.start_all()
    try:
        # the seat logs itself in with its own token (seat 1002 stays logged out)
        assert platform.http("/api/v1/seats/1001/login", token=SEAT_TOKEN, method="POST").status == 200
        yield Nodes(platform, seat_port, carrier_port, silent_port)
    finally:
        platform.stop_all()


@pytest.fixture(autouse=True)
def no_channel_left(nodes: Nodes) -> Iterator[None]:
    """After every test of the shared platform: Asterisk holds no channel (nothing leaked)."""
    yield
    nodes.platform.assert_no_channels_left()


def test_menu_key_set_tags_and_queue_to_a_seat(nodes: Nodes) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=2000, hang_up=True)), port=nodes.seat_port)
    call = nodes.call("13900000001", pause(nodes.in_menu_ms()), dtmf("1"), HOTLINE_HANGS_UP)
    assert seat.wait().ok
    assert call["ivr_path"] == ["entry", "welcome", "menu", "complaint", "seat"]
    assert call["digits"] == ["menu=1"]
    assert call["tags"]["category"] == "complaint"
    assert call["tags"]["language"] == "yi"
    assert call["tags"]["service"] == "open"
    assert call["tags"]["day_type"] == "workday"
    assert call["queue"] == "general"
    assert call["seat"] == "1001"
    assert call["outcome"] == "answered"


def test_survey_with_rfc4733_keys(nodes: Nodes) -> None:
    call = nodes.call(
        "13900000002",
        pause(nodes.in_menu_ms()),
        dtmf("2"),
        pause(nodes.prompt_ms("survey")),
        dtmf("4", press=1),
        HOTLINE_HANGS_UP,
    )
    assert call["ivr_path"][-2:] == ["survey", "bye"]
    assert call["digits"] == ["menu=2", "survey=4"]
    assert call["survey_score"] == 4
    assert call["outcome"] == "ivr_completed"


def test_survey_with_sip_info_keys(nodes: Nodes) -> None:
    call = nodes.call(
        "13900000003",
        pause(nodes.in_menu_ms()),
        dtmf_info("2", cseq=10),
        pause(nodes.prompt_ms("survey")),
        dtmf_info("5", cseq=11),
        HOTLINE_HANGS_UP,
    )
    assert call["digits"] == ["menu=2", "survey=5"]
    assert call["survey_score"] == 5


def test_transfer_to_110_on_the_carrier_trunk(nodes: Nodes) -> None:
    police = SippServer(scenario(answering_peer(talk_ms=1500, hang_up=True)), port=nodes.carrier_port)
    call = nodes.call("13900000004", pause(nodes.in_menu_ms()), dtmf("3"), HOTLINE_HANGS_UP)
    assert police.wait().ok
    assert call["ivr_path"][-1] == "police"
    assert call["transfer_to"] == "police:110"
    assert call["outcome"] == "transferred"


def test_transfer_that_fails_goes_on_to_voicemail(nodes: Nodes, tmp_path: Path) -> None:
    talk = speech_then_silence_wav(tmp_path / "talk.wav", speech_s=1, silence_s=4)
    call = nodes.call(
        "13900000005", pause(nodes.in_menu_ms()), dtmf("3"), stream_audio(talk, loops=-1), HOTLINE_HANGS_UP
    )  # nobody listens on the carrier port
    assert call["ivr_path"][-3:] == ["police", "vm", "bye"]
    assert call["tags"]["transfer_status"] in ("chanunavail", "congestion", "noanswer")
    assert call["outcome"] == "voicemail"


def test_voicemail_keeps_the_message(nodes: Nodes, tmp_path: Path) -> None:
    speech = tone_wav(tmp_path / "speech.wav", seconds=3)
    call = nodes.call(
        "13900000006",
        pause(nodes.in_menu_ms()),
        dtmf("4"),
        pause(nodes.prompt_ms("leave") + 700),
        stream_audio(speech),
        pause(3200),
        dtmf("#", press=1),
        HOTLINE_HANGS_UP,
    )
    assert call["ivr_path"][-2:] == ["vm", "bye"]
    assert call["outcome"] == "voicemail"
    assert call["has_recording"]
    recording = nodes.platform.stored_call(call["call_id"])["recording"]
    assert recording == f"voicemail/{call['call_id']}.wav"
    wav = nodes.platform.config.paths.spool_dir / recording
    assert duration_s(wav) > 2.0
    assert rms_amplitude(wav) > 0.05


def test_no_input_retries_then_takes_the_default(nodes: Nodes, tmp_path: Path) -> None:
    # a caller who says a word now and then: the message ends on the silence after one
    talk = speech_then_silence_wav(tmp_path / "talk.wav", speech_s=1, silence_s=4)
    call = nodes.call("13900000007", stream_audio(talk, loops=-1), HOTLINE_HANGS_UP, timeout_s=90)
    assert call["digits"] == ["menu=timeout", "menu=timeout"]
    assert call["ivr_path"][-3:] == ["menu", "vm", "bye"]


def test_invalid_key_then_zero_reaches_a_human(nodes: Nodes) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=1000, hang_up=True)), port=nodes.seat_port)
    invalid_then_retry = nodes.prompt_ms("invalid") + nodes.prompt_ms("menu") + 300
    call = nodes.call(
        "13900000008",
        pause(nodes.in_menu_ms()),
        dtmf("9"),
        pause(invalid_then_retry),
        dtmf("0", press=1),
        HOTLINE_HANGS_UP,
    )
    assert seat.wait().ok
    assert call["digits"] == ["menu=9", "menu=0"]
    assert call["ivr_path"][-1] == "seat"
    assert call["outcome"] == "answered"


def test_caller_hanging_up_in_the_menu(nodes: Nodes) -> None:
    # Answer() waits up to 0.5 s for the caller's first RTP: leave room before the menu starts
    call = nodes.call("13900000009", pause(nodes.prompt_ms("welcome") + 1200), CALLER_HANGS_UP)
    assert call["ivr_path"][-1] == "menu"
    assert call["outcome"] == "abandoned"
    assert "hotline_agi_sessions_failed_total 0" in nodes.platform.http("/metrics", token=None).body


CALENDAR_CASES = [  # (the controller's time, the IVR's second node, the day type)
    ("2026-02-14T10:00:00+08:00", "welcome", "workday"),  # a 调休 Saturday works
    ("2026-03-07T10:00:00+08:00", "closed", "restday"),  # an ordinary Saturday: restday hours are empty
    ("2026-10-01T10:00:00+08:00", "holiday_welcome", "holiday"),  # National Day, within holiday hours
    ("2026-10-01T18:00:00+08:00", "closed", "holiday"),  # National Day, after holiday hours
    ("2026-06-10T10:00:00+08:00", "holiday_welcome", "holiday"),  # the platform's local holiday
    ("2026-03-09T21:30:00+08:00", "closed", "workday"),  # a Monday night
]


def test_service_hours_by_the_platform_calendar(nodes: Nodes) -> None:
    """Every case on one controller restart each (the module's Monday-morning clock is put back
    once, at the end); every case is checked, and all mismatches are reported together."""
    platform = nodes.platform
    seen: dict[str, tuple[list[str], str]] = {}
    try:
        for now, _path, _day_type in CALENDAR_CASES:
            platform.stop_controller()
            platform.start_controller(environment={"HOTLINE_TEST_NOW": now})
            caller = "1390000" + now[8:10] + now[11:13]  # day and hour: the masked last four differ per case
            call = nodes.call(caller, pause(1500), CALLER_HANGS_UP)
            seen[now] = (call["ivr_path"][:2], call["tags"]["day_type"])
    finally:
        platform.stop_controller()
        platform.start_controller(environment={"HOTLINE_TEST_NOW": MONDAY_MORNING})
    expected = {now: (["entry", path], day_type) for now, path, day_type in CALENDAR_CASES}
    assert seen == expected


def _old_routes(text: str) -> str:
    """The running version: a long menu window and max wait, so that a reload lands inside them."""
    return text.replace("timeout_s: 3", "timeout_s: 25").replace("max_wait_s: 15", "max_wait_s: 20")


def _new_routes(text: str) -> str:
    """The version the reload brings: other ROUTES, not just other words. Key 2 goes straight to
    the goodbye (was: the survey), the queue's max wait is 3 s, and ``vm`` (where the queue
    overflows to) hangs up instead of taking a message."""
    text = _old_routes(text).replace("max_wait_s: 20", "max_wait_s: 3")
    text = text.replace("2: survey, 3: police, 4: vm", "2: bye, 3: police, 4: survey")
    return text.replace(
        "vm: {kind: voicemail, prompt: leave, max_s: 20, silence_s: 2, next: bye}", "vm: {kind: hangup, prompt: bye}"
    )


def test_reload_under_load_keeps_calls_on_their_version(nodes: Nodes, tmp_path: Path) -> None:
    """A reload that changes routing while callers sit in the menu and wait in the queue: every
    call keeps the version it started with for its whole life, including a caller the queue hands
    back to the IVR after its max wait (a fresh read of the dialplan would send it elsewhere);
    callers after the reload take the new routes."""
    platform = nodes.platform
    old, new = _old_routes(EVERY_NODE), _new_routes(EVERY_NODE)
    assert "timeout_s: 25" in old and "max_wait_s: 20" in old  # the edits took
    assert "2: bye," in new and "max_wait_s: 3" in new and "vm: {kind: hangup" in new
    platform.install_dialplan("every_node", _old_routes)
    platform.stop_controller()
    platform.start_controller()
    # the seat talks to a first caller until the test ends that call: the others wait
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=nodes.seat_port)
    talking_done = False
    talking = SippCall(
        nodes.sip_port,
        scenario(INVITE, ANSWERED, pause(nodes.in_menu_ms()), dtmf("0"), HOTLINE_HANGS_UP),
        caller="13900000019",
        timeout_s=120,
    )
    try:
        old_version = platform.http("/api/v1/dialplans").body["version"]
        on_seat = platform.wait_call(lambda c: c["caller"] == "139****0019" and c["seat"] == "1001", "the seat call")
        menu_keys = (pause(12000), dtmf("2"), pause(nodes.prompt_ms("survey")), dtmf("3", press=1))
        in_menu = SippCall(
            nodes.sip_port, scenario(INVITE, ANSWERED, *menu_keys, HOTLINE_HANGS_UP), caller="13900000020", calls=10,
            timeout_s=90,
        )  # fmt: skip
        # they leave a message after the max wait: a word, then the silence that ends it
        talk = speech_then_silence_wav(tmp_path / "talk.wav", speech_s=1, silence_s=4)
        waiting = SippCall(
            nodes.sip_port,
            scenario(
                INVITE, ANSWERED, pause(nodes.in_menu_ms()), dtmf("0"), stream_audio(talk, loops=-1), HOTLINE_HANGS_UP
            ),
            caller="13900000022",
            calls=3,
            timeout_s=90,
        )

        def ready() -> bool:
            live = [c for c in platform.calls() if c["state"] != "ended"]
            menu = [c for c in live if c["caller"] == "139****0020" and c["ivr_path"][-1:] == ["menu"]]
            queued = [c for c in live if c["caller"] == "139****0022" and c["ivr_path"][-1:] == ["seat"]]
            return len(menu) == 10 and len(queued) == 3 and queue_waiting(platform) == 3

        wait_for("10 callers in the menu and 3 in the queue", ready, timeout_s=30)
        platform.install_dialplan("every_node", lambda text: text.replace("start: entry", "start: nowhere"))
        rejected = platform.http("/api/v1/dialplans/reload", method="POST")
        assert rejected.status == 422
        assert any("start node 'nowhere' does not exist" in p for p in rejected.body["problems"])
        assert rejected.body["version"] == old_version

        platform.install_dialplan("every_node", _new_routes)
        accepted = platform.http("/api/v1/dialplans/reload", method="POST")
        assert accepted.status == 200, accepted.body
        new_version = accepted.body["version"]
        assert new_version != old_version
        metrics = platform.http("/metrics", token=None).body
        assert "hotline_dialplan_versions_kept 2" in metrics  # the old one stays while calls run on it

        # new callers, while the old ones are still in the menu and the queue: the new routes
        new_menu = SippCall(
            nodes.sip_port, scenario(INVITE, ANSWERED, pause(nodes.in_menu_ms()), dtmf("2"), HOTLINE_HANGS_UP),
            caller="13900000021",
        )  # fmt: skip
        new_queue = SippCall(
            nodes.sip_port, scenario(INVITE, ANSWERED, pause(nodes.in_menu_ms()), dtmf("0"), HOTLINE_HANGS_UP),
            caller="13900000023",
        )  # fmt: skip
        for callers in (in_menu, waiting, new_menu, new_queue):
            result = callers.wait()
            assert result.ok, result.errors
        # every waiting caller left the queue by max wait, none was lost: now end the seat's call
        channel = platform.stored_call(on_seat["call_id"])["channel"]
        platform.asterisk.cli(f"channel request hangup {channel}")
        talked, talking_done = talking.wait(), True
        assert talked.ok, talked.errors
        assert seat.wait().ok

        welcome = ["entry", "welcome", "menu"]
        for call in _ended(platform, "13900000020", 10):  # old menu: key 2 is the survey
            assert (call["dialplan_version"], call["ivr_path"]) == (old_version, [*welcome, "survey", "bye"])
            assert call["survey_score"] == 3
        for call in _ended(platform, "13900000022", 3):  # old queue: 20 s max wait, a message, goodbye
            assert (call["dialplan_version"], call["ivr_path"]) == (old_version, [*welcome, "seat", "vm", "bye"])
            assert call["tags"]["queue_status"] == "timeout"
        (call,) = _ended(platform, "13900000021", 1)  # new menu: key 2 is the goodbye
        assert (call["dialplan_version"], call["ivr_path"]) == (new_version, [*welcome, "bye"])
        (call,) = _ended(platform, "13900000023", 1)  # new queue: 3 s max wait, then ``vm`` hangs up
        assert (call["dialplan_version"], call["ivr_path"]) == (new_version, [*welcome, "seat", "vm"])
        assert call["outcome"] == "ivr_completed"
        assert "hotline_dialplan_versions_missing_total 0" in platform.http("/metrics", token=None).body
    finally:
        if not talking_done:  # a failure above: end the seat's call and its phone
            platform.asterisk.cli("channel request hangup all", check=False)
            talking.stop()
            seat.stop()
        platform.install_dialplan("every_node")
        platform.stop_controller()
        platform.start_controller()


def _ended(platform: PlatformUnderTest, number: str, count: int) -> list[dict[str, Any]]:
    masked = number[:3] + "****" + number[-4:]

    def probe() -> list[dict[str, Any]] | None:
        mine = [c for c in platform.calls() if c["caller"] == masked and c["state"] == "ended"]
        return mine if len(mine) == count else None

    return wait_for(f"{count} ended records of {number}", probe)


def queue_waiting(platform: PlatformUnderTest, name: str = "general") -> int:
    queues = platform.http("/api/v1/queues").body["queues"]
    waiting: int = next(q for q in queues if q["queue"] == name)["waiting_now"]
    return waiting


def _band_rms(wav: Path, low_hz: int, high_hz: int) -> float:
    """RMS of ``wav`` within a frequency band (sox sinc band-pass, then stat)."""
    result = subprocess.run(
        ["sox", str(wav), "-n", "sinc", f"{low_hz}-{high_hz}", "stat"], capture_output=True, text=True, check=True
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("RMS     amplitude"))
    return float(line.split(":")[1])


def test_seat_call_is_recorded_with_both_voices_and_fetched_only_with_a_role(nodes: Nodes, tmp_path: Path) -> None:
    caller_voice = tone_wav(tmp_path / "caller.wav", seconds=1, frequency_hz=440)
    seat_voice = tone_wav(tmp_path / "seat.wav", seconds=1, frequency_hz=1500)
    seat = SippServer(scenario(answering_peer(talk_ms=3000, hang_up=True, voice=seat_voice)), port=nodes.seat_port)
    call = nodes.call(
        "13900000030", pause(nodes.in_menu_ms()), dtmf("0"), stream_audio(caller_voice, loops=-1), HOTLINE_HANGS_UP
    )
    assert seat.wait().ok
    assert call["outcome"] == "answered"
    assert call["has_call_recording"]
    platform = nodes.platform
    relative = platform.stored_call(call["call_id"])["call_recording"]
    wav = platform.config.paths.spool_dir / relative
    assert duration_s(wav) > 2.0
    assert _band_rms(wav, 400, 480) > 0.02, "the caller is not in the recording"
    assert _band_rms(wav, 1450, 1550) > 0.02, "the seat is not in the recording"

    url = f"/api/v1/calls/{call['call_id']}/recording"
    assert platform.http(url, token=None).status == 401
    assert platform.http(url, token=SEAT_TOKEN).status == 403
    fetched = platform.http_bytes(url)
    assert fetched == wav.read_bytes()
    trail = platform.http("/api/v1/audit").body["audit"]
    mine = [(e["who"], e["result"], e["platform"]) for e in trail if e["call_id"] == call["call_id"]]
    assert mine == [("test-admin", "allowed", "kunming"), ("test-seat", "denied", "kunming")]  # newest first
    # without a token: counted, not audited (a flood of them must not push real entries out)
    metrics = platform.http("/metrics", token=None).body
    assert re.search(r"^hotline_api_unauthenticated_total [1-9]", metrics, re.MULTILINE), metrics


def test_caller_giving_up_in_the_queue_is_on_the_callback_list(nodes: Nodes) -> None:
    seat = SippServer(scenario(RINGING_PEER), port=nodes.seat_port)
    call = nodes.call("13900000031", pause(nodes.in_menu_ms()), dtmf("0"), pause(3000), CALLER_HANGS_UP)
    assert seat.wait().ok  # the seat stopped ringing (CANCEL) when the caller left
    assert call["outcome"] == "abandoned"
    assert call["queue"] == "general"
    callbacks = nodes.platform.http("/api/v1/callbacks").body["callbacks"]
    mine = [c for c in callbacks if c["caller"] == "13900000031"]
    assert len(mine) == 1
    assert mine[0]["attempts"] == 1
    assert mine[0]["last_call_id"] == call["call_id"]

    # the same citizen calls again and reaches a seat: the callback is done
    seat = SippServer(scenario(answering_peer(talk_ms=1000, hang_up=True)), port=nodes.seat_port)
    result = run_sipp(
        nodes.sip_port,
        scenario(INVITE, ANSWERED, pause(nodes.in_menu_ms()), dtmf("0"), HOTLINE_HANGS_UP),
        caller="13900000031",
    )
    assert result.ok, result.errors
    assert seat.wait().ok

    def cleared() -> bool:
        callbacks = nodes.platform.http("/api/v1/callbacks").body["callbacks"]
        return not [c for c in callbacks if c["caller"] == "13900000031"]

    wait_for("the callback to be cleared once the caller was served", cleared)


def seat_state(platform: PlatformUnderTest, seat_id: str) -> dict[str, Any]:
    seats = platform.http("/api/v1/seats", token=SEAT_TOKEN).body["seats"]
    return next(s for s in seats if s["seat"] == seat_id)


def test_seat_state_changes_and_who_may_make_them(nodes: Nodes) -> None:
    platform = nodes.platform
    assert seat_state(platform, "1001")["state"] == "ready"
    assert seat_state(platform, "1002")["state"] == "logged_out"
    assert platform.http("/api/v1/seats/1002/login", token=SEAT_TOKEN, method="POST").status == 403  # not its seat
    assert platform.http("/api/v1/seats/1001/ready", token=SEAT_TOKEN, method="POST").status == 409  # already ready
    assert platform.http("/api/v1/seats/9999/login", method="POST").status == 404
    paused = platform.http("/api/v1/seats/1001/pause", token=SEAT_TOKEN, method="POST")
    assert paused.status == 200
    assert paused.body["state"] == "not_ready"

    # with its only seat paused, the queue overflows to voicemail at once
    call = nodes.call("13900000040", pause(nodes.in_menu_ms()), dtmf("0"), pause(3000), CALLER_HANGS_UP)
    assert call["ivr_path"][-2:] == ["seat", "vm"]
    assert call["tags"]["queue_status"] in ("joinempty", "leaveempty")

    assert platform.http("/api/v1/seats/1001/ready", token=SEAT_TOKEN, method="POST").body["state"] == "ready"


def test_a_seat_that_never_answers_ends_not_ready(nodes: Nodes, tmp_path: Path) -> None:
    platform = nodes.platform
    assert platform.http("/api/v1/seats/1001/logout", method="POST").body["state"] == "logged_out"
    assert platform.http("/api/v1/seats/1002/login", method="POST").body["state"] == "ready"
    # the caller says a word now and then: the message ends on the silence after one (a caller
    # who sends no sound would hold the recording for its whole max_s)
    talk = speech_then_silence_wav(tmp_path / "talk.wav", speech_s=1, silence_s=4)
    try:
        silent = SippServer(scenario(RINGING_PEER), port=nodes.silent_seat_port)
        call = nodes.call(
            "13900000041", pause(nodes.in_menu_ms()), dtmf("0"), stream_audio(talk, loops=-1), HOTLINE_HANGS_UP,
            timeout_s=90,
        )  # fmt: skip
        assert silent.wait().ok
        assert call["ivr_path"][-3:] == ["seat", "vm", "bye"]  # the caller was not dropped
        state = seat_state(platform, "1002")
        assert state["state"] == "not_ready"
        assert state["reason"] == "no answer"
        assert state["missed_in_a_row"] == 1
    finally:
        platform.http("/api/v1/seats/1002/logout", method="POST")
        platform.http("/api/v1/seats/1001/login", method="POST")


QUEUE_FIGURES = ("offered", "answered", "answered_within_15s", "abandoned", "overflowed", "waiting_now")


def queue_figures(platform: PlatformUnderTest, name: str = "general") -> dict[str, Any]:
    queues = platform.http("/api/v1/queues").body["queues"]
    found: dict[str, Any] = next(q for q in queues if q["queue"] == name)
    return found


def test_queue_figures_follow_the_calls(nodes: Nodes) -> None:
    """One answered call moves the shared platform's figures by exactly one, where it should."""
    before = queue_figures(nodes.platform)
    seat = SippServer(scenario(answering_peer(talk_ms=1500, hang_up=True)), port=nodes.seat_port)
    call = nodes.call("13900000050", pause(nodes.in_menu_ms()), dtmf("0"), HOTLINE_HANGS_UP)
    assert seat.wait().ok
    assert call["queued_at"] <= call["seat_answered_at"]
    expected = {**{k: before[k] for k in QUEUE_FIGURES}, "offered": before["offered"] + 1}
    expected |= {"answered": before["answered"] + 1, "answered_within_15s": before["answered_within_15s"] + 1}

    def counted() -> dict[str, Any] | None:
        now = queue_figures(nodes.platform)
        return now if {k: now[k] for k in QUEUE_FIGURES} == expected else None

    general = wait_for("the call counted once", counted)
    assert {k: general[k] for k in QUEUE_FIGURES} == expected
    assert general["offered"] == general["answered"] + general["abandoned"] + general["overflowed"]
    assert 0 < general["service_level_15s"] <= 1
    assert general["waiting_now"] == 0
    metrics = nodes.platform.http("/metrics", token=None).body
    assert 'hotline_queue_answer_rate_24h{queue="general"}' in metrics
    assert 'hotline_seats{state="ready"} 1' in metrics


def test_supervisors_see_seat_changes_live(nodes: Nodes) -> None:
    platform = nodes.platform

    async def watch() -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{platform.base_url}/api/v1/events", headers=headers) as ws,
        ):
            await asyncio.to_thread(platform.http, "/api/v1/seats/1001/pause", SEAT_TOKEN, "POST")
            await asyncio.to_thread(platform.http, "/api/v1/seats/1001/ready", SEAT_TOKEN, "POST")
            return [await ws.receive_json(timeout=10), await ws.receive_json(timeout=10)]

    events = asyncio.run(watch())
    assert [(e["type"], e["seat"], e["old"], e["new"]) for e in events] == [
        ("seat.state", "1001", "ready", "not_ready"),
        ("seat.state", "1001", "not_ready", "ready"),
    ]

    async def denied() -> int:
        async with aiohttp.ClientSession() as session:
            response = await session.get(
                f"{platform.base_url}/api/v1/events", headers={"Authorization": f"Bearer {SEAT_TOKEN}"}
            )
            return response.status

    assert asyncio.run(denied()) == 403


def test_controller_killed_while_a_seat_talks_to_the_caller(nodes: Nodes, tmp_path: Path) -> None:
    platform = nodes.platform
    talk_ms = 6000
    seat = SippServer(scenario(answering_peer(talk_ms=talk_ms, hang_up=True)), port=nodes.seat_port)
    voice = tone_wav(tmp_path / "caller.wav", seconds=1, frequency_hz=440)  # media, so the talk is recorded
    caller = SippCall(
        nodes.sip_port,
        scenario(
            INVITE, ANSWERED, pause(nodes.in_menu_ms()), dtmf("0"), stream_audio(voice, loops=-1), HOTLINE_HANGS_UP
        ),
        caller="13900000060",
    )
    fallback = platform.config.paths.spool_dir / "fallback"
    try:
        record = platform.wait_call(lambda c: c["caller"] == "139****0060" and c["seat"] == "1001", "the seat call")
        platform.stop_controller(sig=signal.SIGKILL)
        killed_at = time.time()
        assert seat.wait().ok
        seat_left = time.time()
        assert caller.wait().ok  # the seat hung up and the caller was released: no fallback prompt
        caller_left = time.time()
        assert not any(record["call_id"] in f.name for f in fallback.glob("*.wav"))
        # Asterisk wrote the caller's hang-up down itself (after-seat context's h extension)
        line = fallback / f"ce-{record['call_id']}.end"
        wait_for("the hang-up line", line.exists)
        assert line.stat().st_mode & 0o777 == 0o600
        restarted_at = time.time()
    finally:
        platform.start_controller()
    ended = platform.wait_call(
        lambda c: c["call_id"] == record["call_id"] and c["state"] == "ended" and not c["ended_at_estimated"],
        "the record ended with its real end",
    )
    assert ended["seat"] == "1001"
    assert ended["outcome"] == "answered"
    # the real end: after the seat left (the caller heard a goodbye), before the caller's SIPp saw
    # the BYE — and so before the restart, where an estimated end would lie
    assert seat_left - 0.5 <= _epoch(ended["ended_at"]) <= caller_left + 0.5 < restarted_at + 0.5
    assert ended["hangup_cause"] == "Normal Clearing"
    wait_for("the ingested line deleted", lambda: not line.exists())
    # the conversation went on being recorded while the controller was away: at least from the
    # kill to the seat's hang-up (less a second: a loaded box drops frames — 5.64 s and 4.96 s of
    # a 6 s talk were seen), never longer than the talk (plus the BYE's round trip)
    recording = platform.config.paths.spool_dir / platform.stored_call(record["call_id"])["call_recording"]
    length = duration_s(recording)
    assert seat_left - killed_at - 1.0 <= length <= talk_ms / 1000 + 1.0, (length, seat_left - killed_at)


def test_caller_hangs_up_on_the_seat_while_the_controller_is_killed(nodes: Nodes, tmp_path: Path) -> None:
    """The caller ends the conversation while the controller is down (SIGKILL): the hold
    context's h extension writes the hang-up, and the restarted controller ends the record with
    it (not estimated at the restart) and deletes the line once the record is saved."""
    platform = nodes.platform
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=nodes.seat_port)
    voice = tone_wav(tmp_path / "caller.wav", seconds=1, frequency_hz=440)
    caller = SippCall(
        nodes.sip_port,
        scenario(
            INVITE,
            ANSWERED,
            pause(nodes.in_menu_ms()),
            dtmf("0"),
            stream_audio(voice, loops=-1),
            stays_until_released(60_000),  # until the controller is dead (until 2026-12: 15 s)
            CALLER_HANGS_UP,
        ),
        caller="13900000061",
        timeout_s=90,
    )
    fallback = platform.config.paths.spool_dir / "fallback"
    try:
        record = platform.wait_call(lambda c: c["caller"] == "139****0061" and c["seat"] == "1001", "the seat call")
        platform.stop_controller(sig=signal.SIGKILL)
        killed_at = time.time()
        caller.talk_on(3)  # the caller talks on, then hangs up while the controller is down
        assert caller.wait().ok
        caller_left = time.time()
        assert seat.wait().ok  # the seat got the BYE
        line = fallback / f"ce-{record['call_id']}.end"
        wait_for("the hang-up line", line.exists)
        restarted_at = time.time()
    finally:
        platform.start_controller()
    ended = platform.wait_call(
        lambda c: c["call_id"] == record["call_id"] and c["state"] == "ended" and not c["ended_at_estimated"],
        "the record ended with its real end",
    )
    assert (ended["seat"], ended["outcome"]) == ("1001", "answered")
    assert killed_at <= _epoch(ended["ended_at"]) <= caller_left + 0.5 < restarted_at + 0.5
    assert ended["hangup_cause"] == "Normal Clearing"
    wait_for("the ingested line deleted", lambda: not line.exists())


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
