"""Failures of the controller and of Asterisk: callers are still answered, records still kept."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.audio import duration_s, rms_amplitude, tone_wav
from tests.support.metrics import scrape, wait_metric
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    HOTLINE_HANGS_UP,
    INVITE,
    REJECTED_404,
    SippCall,
    SippServer,
    answering_peer,
    dtmf,
    pause,
    run_sipp,
    scenario,
    stream_audio,
)

pytestmark = pytest.mark.integration

# The fallback route's message prompt, short: its default (about 10 s of speech before the beep)
# is waited out by every caller of the fallback route here (the tests time it from the file)
QUICK_FALLBACK = {"prompts": {"fallback": "请在提示音后留言。"}}


@pytest.fixture
def fresh_platform(tmp_path: Path) -> Iterator[PlatformUnderTest]:
    """A platform of the test's own (the conftest's, with QUICK_FALLBACK)."""
    under_test = PlatformUnderTest(tmp_path / "platform", overrides=QUICK_FALLBACK)
    under_test.start_all()
    try:
        yield under_test
    finally:
        under_test.stop_all()


def fallback_prompts_ms(platform: PlatformUnderTest) -> int:
    """How long the fallback route talks before its beep (no seats: the queue is skipped)."""
    prompts = platform.config.paths.runtime_dir / "prompts"
    return int((duration_s(prompts / "fallback_hold.wav") + duration_s(prompts / "fallback.wav")) * 1000)


def _fallback_files(platform: PlatformUnderTest) -> list[Path]:
    return sorted((platform.config.paths.spool_dir / "fallback").glob("fb*.wav"))


def _ticket_of(platform: PlatformUnderTest, call_id: str) -> dict[str, Any] | None:
    tickets = platform.http("/api/v1/tickets").body["tickets"]
    return next((t for t in tickets if t["call_id"] == call_id), None)


def test_controller_down_caller_takes_fallback_and_is_recorded_later(tmp_path: Path) -> None:
    """The message, its call record and its ticket keep the caller's number; no file name, log
    line, timeline or list shows it whole."""
    number = "13800005555"
    platform = PlatformUnderTest(
        tmp_path / "platform", overrides={"asr": {"rescan_interval_s": 1, "rescan_min_age_s": 0}, **QUICK_FALLBACK}
    )
    platform.start_all()
    try:
        platform.stop_controller()
        speech = tone_wav(tmp_path / "tone.wav", seconds=1)

        # the caller talks all along and hangs up 4 s after the fallback prompt and its beep
        listen_ms = fallback_prompts_ms(platform) + 4000
        caller = scenario(INVITE, ANSWERED, stream_audio(speech, loops=-1), pause(listen_ms), CALLER_HANGS_UP)
        result = run_sipp(platform.config.sip.port, caller, caller=number, timeout_s=60)
        assert result.ok, result.errors  # answered (200 OK), no failed SIP call

        files = wait_for("the fallback message file", lambda: _fallback_files(platform), timeout_s=10)
        assert len(files) == 1
        assert re.fullmatch(r"fb2-\d+-kunming-[\d.]+\.wav", files[0].name)  # no number in a file name
        assert files[0].with_suffix(".caller").read_text() == number  # kept beside it, by Asterisk
        assert rms_amplitude(files[0]) > 0.05, "the caller's message was not recorded"

        platform.start_controller()
        call = platform.wait_call(lambda c: c["outcome"] == "fallback", "the fallback call's record")
        assert call["caller"] == "138****5555"
        assert call["state"] == "ended"
        assert call["has_recording"] is True
        assert call["ivr_path"] == ["fallback"]
        assert platform.stored_call(call["call_id"])["caller"] == number
        ticket = wait_for("the message's ticket", lambda: _ticket_of(platform, call["call_id"]), timeout_s=30)
        assert ticket["caller"] == "138****5555"
        assert ticket["tags"]["route"] == "fallback"

        # a message of the first format (the number in its name), left on disk by an earlier
        # version: still read, and as the same caller's repeat request it joins that ticket
        old = files[0].with_name(f"fb-1772442000-{number}-kunming-1772442000.1.wav")
        shutil.copy(files[0], old)
        long_ago = time.time() - 2 * 3600  # (no .done mark then: taken once untouched an hour)
        os.utime(old, (long_ago, long_ago))

        def linked() -> dict[str, Any] | None:
            found = _ticket_of(platform, call["call_id"])
            return found if found and "kunming-1772442000.1" in found["linked_call_ids"] else None

        ticket = wait_for("the old-format message linked to the ticket", linked, timeout_s=30)
        note = ticket["timeline"][-1]["note"]
        assert "fallback/fb-1772442000-138****5555-kunming-1772442000.1.wav" in note
        platform.wait_call(lambda c: c["call_id"] == "kunming-1772442000.1", "the old-format message's record")
        assert platform.stored_call("kunming-1772442000.1")["caller"] == number

        shown = [
            platform.http(path).body
            for path in ("/api/v1/tickets", f"/api/v1/tickets/{ticket['id']}", "/api/v1/calls", "/api/v1/asr/parked")
        ]
        assert number not in json.dumps(shown, ensure_ascii=False)
        assert "fallback.recorded" in platform.controller_log_text()
        assert number not in platform.controller_log_text()
    finally:
        platform.stop_all()


def test_controller_killed_mid_call_caller_is_not_dropped(fresh_platform: PlatformUnderTest, tmp_path: Path) -> None:
    platform = fresh_platform
    speech = tone_wav(tmp_path / "tone.wav", seconds=1)
    listen_ms = fallback_prompts_ms(platform) + 6000
    caller = scenario(INVITE, ANSWERED, stream_audio(speech, loops=-1), pause(listen_ms), CALLER_HANGS_UP)
    call = SippCall(platform.config.sip.port, caller, caller="13800006666")
    record = platform.wait_call(
        lambda c: c["caller"] == "138****6666" and c["state"] == "in_ivr", "the call in the IVR"
    )
    platform.stop_controller(sig=signal.SIGKILL)

    result = call.wait()
    assert result.ok, result.errors  # the caller stayed connected (fallback route) and hung up normally

    platform.start_controller()
    ended = platform.wait_call(
        lambda c: c["call_id"] == record["call_id"] and c["state"] == "ended", "the record ended"
    )
    assert ended["outcome"] == "fallback"
    assert ended["has_recording"] is True
    assert ended["ivr_path"][0] == "welcome"


def test_sigterm_drains_the_call_in_progress(fresh_platform: PlatformUnderTest) -> None:
    platform = fresh_platform
    call = SippCall(platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13800007777")
    platform.wait_call(lambda c: c["caller"] == "138****7777" and c["state"] == "in_ivr", "the call in the IVR")
    assert platform.controller is not None
    platform.controller.send_signal(signal.SIGTERM)
    assert platform.stop_controller(timeout_s=60) == 0

    assert call.wait().ok
    platform.start_controller()
    ended = platform.wait_call(lambda c: c["caller"] == "138****7777" and c["state"] == "ended", "the record ended")
    assert ended["outcome"] == "ivr_completed"
    # the drain waited for the hang-up of the call the IVR released: its end was seen, not estimated
    assert ended["ended_at_estimated"] is False


def test_asterisk_crash_shows_in_health_and_metrics_and_its_call_ends_lost_track(
    fresh_platform: PlatformUnderTest,
) -> None:
    """Asterisk dies (SIGKILL: no hang-up event reaches us) with a caller in the IVR: health
    says 503 "degraded" (ami down) and ``hotline_ami_connected`` reads 0 until it is back; then
    the controller logs in again, the caller's record ends ``lost_track`` with an estimated end
    never before its answer, and the next call is served."""
    platform = fresh_platform
    logins_before = platform.wait_component("ami", "up")
    assert scrape(platform, "hotline_ami_connected") == 1
    caller = SippCall(platform.config.sip.port, scenario(INVITE, ANSWERED, pause(120_000)), caller="13800008877")
    try:
        record = platform.wait_call(
            lambda c: c["caller"] == "138****8877" and c["state"] == "in_ivr", "the call in the IVR"
        )
        assert platform.asterisk.pid is not None
        os.kill(platform.asterisk.pid, signal.SIGKILL)
        platform.asterisk.stop()  # reaps it
        down = platform.wait_component("ami", "down", timeout_s=15)
        assert down["status"] == "degraded" and "ami down" in down["reasons"]
        assert platform.http("/api/v1/health", token=None).status == 503
        wait_metric(platform, "hotline_ami_connected", 0)
    finally:
        caller.stop()  # its call died with Asterisk

    platform.asterisk.start()
    platform.wait_component("ami", "up", timeout_s=30)
    wait_metric(platform, "hotline_ami_connected", 1)
    assert scrape(platform, "hotline_ami_logins_total") == 2
    assert platform.http("/api/v1/health", token=None).status == 200
    # every component was up (status may say degraded for other reasons, e.g. the calendar's end)
    assert set(logins_before["components"].values()) == {"up"}

    lost = platform.wait_call(lambda c: c["call_id"] == record["call_id"] and c["state"] == "ended", "the lost call")
    assert lost["outcome"] == "lost_track"
    assert lost["ended_at_estimated"] is True
    assert lost["ended_at"] >= lost["answered_at"]
    assert lost["hangup_cause"] == "channel gone while the controller was away"

    result = run_sipp(platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13800008888")
    assert result.ok, result.errors
    after = platform.wait_call(
        lambda c: c["caller"] == "138****8888" and c["outcome"] == "ivr_completed", "a call after the restart"
    )
    assert after["ended_at_estimated"] is False


def test_redis_down_shows_in_health_metrics_and_the_records_api_and_records_are_kept(
    fresh_platform: PlatformUnderTest,
) -> None:
    """Redis stopped: health 503 "degraded" (redis down), /api/v1/calls 503, ``hotline_redis_up``
    0 and ``hotline_call_records_unsaved`` rising with a call; Redis back: all 200 again, the
    gauge back to 1, nothing unsaved, and the call's record is there."""
    platform = fresh_platform
    assert scrape(platform, "hotline_redis_up") == 1
    assert scrape(platform, "hotline_call_records_unsaved") == 0
    platform.redis.stop()
    down = platform.wait_component("redis", "down", timeout_s=15)
    assert down["status"] == "degraded" and "redis down" in down["reasons"]
    assert platform.http("/api/v1/health", token=None).status == 503
    assert platform.http("/api/v1/calls").status == 503
    wait_metric(platform, "hotline_redis_up", 0)
    result = run_sipp(
        platform.config.sip.port, scenario(INVITE, ANSWERED, pause(1000), CALLER_HANGS_UP), caller="13800009999"
    )
    assert result.ok, result.errors  # calls go on without Redis
    wait_for("the record waiting for Redis", lambda: (scrape(platform, "hotline_call_records_unsaved") or 0) >= 1)
    assert platform.http("/api/v1/calls").status == 503

    platform.redis.start()  # AOF: what was saved before is back too
    platform.wait_component("redis", "up", timeout_s=15)
    wait_metric(platform, "hotline_redis_up", 1)
    wait_metric(platform, "hotline_call_records_unsaved", 0)
    assert platform.http("/api/v1/health", token=None).status == 200
    call = platform.wait_call(lambda c: c["caller"] == "138****9999", "the record written after Redis came back")
    assert call["outcome"] == "abandoned"
    assert call["state"] == "ended"


def test_agi_port_probe_does_not_stall_the_controller(fresh_platform: PlatformUnderTest) -> None:
    platform = fresh_platform

    def probes_closed() -> int:
        return platform.controller_log_text().count('"agi.closed_before_header"')

    before = probes_closed()
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", platform.config.agi.port)) as probe:
            probe.sendall(b"agi_network: yes\n")  # half a header, then close
    wait_for("the controller to close the five probes", lambda: probes_closed() >= before + 5)
    assert platform.health_or_none() is not None
    result = run_sipp(platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13800001234")
    assert result.ok, result.errors
    platform.wait_call(
        lambda c: c["caller"] == "138****1234" and c["outcome"] == "ivr_completed", "the call after probes"
    )


def test_controller_down_caller_still_reaches_a_seat(tmp_path: Path) -> None:
    seat_port = free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path / "platform", overrides={"seats": [{"id": "1001", "contact": f"sip:1001@127.0.0.1:{seat_port}"}]}
    )
    platform.start_all()
    try:
        platform.stop_controller()
        seat = SippServer(scenario(answering_peer(talk_ms=2000, hang_up=True)), port=seat_port)
        result = run_sipp(platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13800004444")
        assert result.ok, result.errors
        assert seat.wait().ok  # the static fallback queue rang the seat without the controller
        assert _fallback_files(platform) == []  # answered by a human: no message to leave
    finally:
        platform.stop_all()


def _register(cseq: int, authentication: str = "") -> str:
    """Seat 1001's softphone registering (with a digest answer when ``authentication`` is given)."""
    auth = f"\n      {authentication}" if authentication else ""
    return f"""
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:1001@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:1001@[remote_ip]>
      Call-ID: [call_id]
      CSeq: {cseq} REGISTER
      Contact: <sip:1001@[local_ip]:[local_port]>{auth}
      Expires: 120
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""


REGISTER_SEAT = (
    _register(1)
    + '  <recv response="401" auth="true"/>\n'
    + _register(2, "[authentication username=1001 password=seat-secret-1001]")
    + '  <recv response="200"/>\n'
)


def test_a_softphone_registers_as_its_seat_from_the_trunks_own_address(tmp_path: Path) -> None:
    """In the demo everything is on 127.0.0.1, like the trunk: the seat is still known as itself."""
    platform = PlatformUnderTest(
        tmp_path / "platform", overrides={"seats": [{"id": "1001", "secret": "seat-secret-1001"}]}
    )
    platform.redis.start()
    platform.asterisk.start()
    try:
        result = run_sipp(platform.config.sip.port, scenario(REGISTER_SEAT), caller="1001")
        assert result.ok, result.errors
        contacts = platform.asterisk.cli("pjsip show contacts").stdout
        assert "1001/sip:1001@127.0.0.1" in contacts
        # and a citizen's call from the same address still comes in on the trunk
        assert run_sipp(platform.config.sip.port, scenario(INVITE, REJECTED_404), number="99999").ok
    finally:
        platform.asterisk.stop()
        platform.redis.stop()


def _metric(text: str, sample: str) -> float:
    """One sample's value from /metrics text (``name`` or ``name{labels}``), 0 when absent."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


def _counts(platform: PlatformUnderTest) -> dict[str, float]:
    text = platform.http("/metrics", token=None).body
    return {
        sample: _metric(text, sample)
        for sample in (
            "hotline_ivr_step_redis_wait_seconds_count",
            'hotline_ivr_step_redis_wait_seconds_bucket{le="1"}',
            "hotline_redis_call_path_timeouts_total",
            "hotline_agi_wait_seconds_count",
            'hotline_agi_wait_seconds_bucket{le="2.5"}',
        )
    }


def test_a_hung_redis_costs_no_ivr_step_more_than_a_second_and_loses_nothing(tmp_path: Path) -> None:
    """Redis SIGSTOPped (connections accepted, nothing answered) for a whole call through the
    menu into a message: every IVR step waits at most a second on Redis (our per-step metric),
    the caller hears no long silence from us (the AGI gaps), health says why it is degraded, and
    once Redis answers again the record is complete and the message becomes a ticket."""
    platform = PlatformUnderTest(
        tmp_path / "platform",
        dialplan="every_node",
        overrides={
            "sip": {"trunks": {"carrier": {"host": "127.0.0.1", "port": free_tcp_and_udp_port()}}},
            "asr": {"rescan_interval_s": 2, "rescan_min_age_s": 0},
        },
        environment={"HOTLINE_TEST_NOW": "2026-03-09T10:00:00+08:00"},  # a Monday morning: open
    )
    platform.start_all()
    try:
        prompts = platform.config.paths.runtime_dir / "prompts" / "ivr"
        in_menu_ms = int((duration_s(prompts / "welcome.wav") + duration_s(prompts / "menu.wav")) * 1000) + 500
        speech = tone_wav(tmp_path / "speech.wav", seconds=3)
        caller = scenario(
            INVITE, ANSWERED, pause(in_menu_ms), dtmf("4"), pause(int(duration_s(prompts / "leave.wav") * 1000) + 700),
            stream_audio(speech), pause(3200), dtmf("#", press=1), HOTLINE_HANGS_UP,
        )  # fmt: skip
        before = _counts(platform)

        platform.redis.send_signal(signal.SIGSTOP)
        try:
            health = platform.wait_component("redis", "slow", timeout_s=30)
            assert health["status"] == "degraded"
            assert "redis slow/hung" in health["reasons"]
            # slow is not down: health stays 200 (a balancer keeps the platform, calls are served)
            assert platform.http("/api/v1/health", token=None).status == 200
            wait_metric(platform, "hotline_redis_slow", 1)
            assert platform.http("/api/v1/calls").status == 503  # the records store does not answer
            result = run_sipp(platform.config.sip.port, caller, caller="13900000061", timeout_s=90)
            assert result.ok, result.errors
            during = _counts(platform)
            # the call's record could not be written: it waits in the controller
            assert (scrape(platform, "hotline_call_records_unsaved") or 0) >= 1
        finally:
            platform.redis.send_signal(signal.SIGCONT)

        gaps = during["hotline_agi_wait_seconds_count"] - before["hotline_agi_wait_seconds_count"]
        short = (
            during['hotline_agi_wait_seconds_bucket{le="2.5"}'] - before['hotline_agi_wait_seconds_bucket{le="2.5"}']
        )
        assert gaps > 5 and short == gaps  # a Redis write used to cost each step its 3 s socket timeout
        steps = (
            during["hotline_ivr_step_redis_wait_seconds_count"] - before["hotline_ivr_step_redis_wait_seconds_count"]
        )
        within = (
            during['hotline_ivr_step_redis_wait_seconds_bucket{le="1"}']
            - before['hotline_ivr_step_redis_wait_seconds_bucket{le="1"}']
        )
        assert steps == 5  # entry (hours), welcome, menu, vm, bye
        assert within == steps  # none waited more than a second on Redis
        # the message's ASR job was the call path's one read: it gave up instead of waiting
        assert during["hotline_redis_call_path_timeouts_total"] > before["hotline_redis_call_path_timeouts_total"]

        platform.wait_component("redis", "up", timeout_s=30)
        wait_metric(platform, "hotline_redis_slow", 0)
        wait_metric(platform, "hotline_call_records_unsaved", 0)
        assert scrape(platform, "hotline_redis_up") == 1
        call = platform.wait_call(lambda c: c["caller"] == "139****0061" and c["state"] == "ended", "the record")
        stored = platform.stored_call(call["call_id"])
        assert stored["ivr_path"] == ["entry", "welcome", "menu", "vm", "bye"]
        assert stored["digits"] == ["menu=4"]
        assert stored["outcome"] == "voicemail"
        assert stored["recording"] == f"voicemail/{call['call_id']}.wav"
        assert stored["tags"]["service"] == "open"

        def ticket() -> bool:
            client = redis.Redis.from_url(platform.redis.url)
            try:
                return bool(client.exists(f"hotline:ticket:by-recording:{stored['recording']}"))
            finally:
                client.close()

        wait_for("the message's ticket", ticket, timeout_s=60, interval_s=0.5)
        assert platform.health_or_none() == platform.wait_component("redis", "up")  # healthy again
    finally:
        platform.stop_all()
