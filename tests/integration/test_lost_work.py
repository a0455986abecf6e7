"""Faults that used to lose work silently: a spool that cannot take a message, Redis away when
the in-controller ASR worker starts, callers who gave up while Redis was away.

Real Asterisk, SIPp and Redis. The full spool is a tiny tmpfs mounted on the voicemail folder
(root only: the tests skip, saying why, where mounting is not allowed).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.audio import duration_s, tone_wav
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    HOTLINE_HANGS_UP,
    INVITE,
    pause,
    run_sipp,
    scenario,
    stream_audio,
)

pytestmark = pytest.mark.integration

MONDAY_NIGHT = "2026-03-09T21:00:00+08:00"  # closed (tests/dialplans/after_hours.yaml): messages only


@contextlib.contextmanager
def tiny_filesystem(folder: Path, size_kb: int) -> Iterator[None]:
    """A ``size_kb`` tmpfs on ``folder`` for the test's duration (a small disk that fills)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs on the spool (needs root): {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def after_hours_platform(root: Path, spool: dict[str, Any], edit: str = "") -> PlatformUnderTest:
    platform = PlatformUnderTest(
        root,
        overrides={"spool": spool} if spool else {},
        dialplan="after_hours",
        environment={"HOTLINE_TEST_NOW": MONDAY_NIGHT},
    )
    # short messages keep the test quick; ``edit`` adds keys to the voicemail node
    platform.install_dialplan("after_hours", lambda text: text.replace("max_s: 30,", f"max_s: 5,{edit}"))
    return platform


def prompt_ms(platform: PlatformUnderTest, name: str) -> int:
    return int(duration_s(platform.config.paths.runtime_dir / "prompts" / "ivr" / f"{name}.wav") * 1000)


def played(platform: PlatformUnderTest, prompt: str) -> bool:
    """Whether Asterisk played ``prompts/<prompt>`` to a caller (its log at verbose 3)."""
    log = platform.config.paths.runtime_dir / "asterisk" / "log" / "messages.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return f"/prompts/{prompt}." in text


def callback_callers(platform: PlatformUnderTest) -> list[str]:
    result = platform.http("/api/v1/callbacks")
    assert result.status == 200, result
    return [c["caller"] for c in result.body["callbacks"]]


def metric(platform: PlatformUnderTest, name: str) -> float:
    for line in platform.http("/metrics", token=None).body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_a_message_the_full_disk_lost_is_said_and_called_back(tmp_path: Path) -> None:
    """The disk fills while the caller speaks (no free-space threshold to warn first): Asterisk
    goes on "recording" into nothing; the caller must not hear "saved"."""
    platform = after_hours_platform(tmp_path / "platform", {"min_free_mb": 0, "check_interval_s": 1})
    voicemail = platform.config.paths.spool_dir / "voicemail"
    with tiny_filesystem(voicemail, 64):
        (voicemail / "filler").write_bytes(b"\0" * 44 * 1024)  # room for about a second of speech
        platform.start_all()
        try:
            speech = tone_wav(tmp_path / "speech.wav", seconds=4)
            caller = scenario(
                INVITE, ANSWERED, pause(prompt_ms(platform, "closed") + 800), stream_audio(speech), HOTLINE_HANGS_UP
            )
            result = run_sipp(platform.config.sip.port, caller, caller="13955551001", timeout_s=90)
            assert result.ok, result.errors
            call = platform.wait_call(lambda c: c["caller"] == "139****1001" and c["state"] == "ended", "the record")
            assert call["outcome"] == "voicemail_failed"
            assert call["tags"]["voicemail"] == "failed"
            assert call["has_recording"] is False
            assert call["ivr_path"] == ["entry", "complaint", "message", "bye"]  # routed on: the node's next
            assert played(platform, "voicemail_failed"), "the caller did not hear the apology"
            assert not played(platform, "ivr/saved"), "the caller was told the message was saved"
            assert "13955551001" in callback_callers(platform)
            assert metric(platform, "hotline_voicemail_failed_total") == 1
            assert not list(voicemail.glob("*.wav"))  # set aside: the rescan makes no ticket of it
            assert list(voicemail.glob("*.wav.partial"))
            health = platform.wait_component("spool", "degraded", timeout_s=15)
            assert health["status"] == "degraded"
            assert any("No space left" in reason for reason in health["reasons"]), health
            tickets = platform.http("/api/v1/tickets").body["tickets"]
            assert not [t for t in tickets if t["call_id"] == call["call_id"]]
        finally:
            platform.stop_all()


def test_spool_under_its_threshold_callers_are_told_at_once_and_routed_on(tmp_path: Path) -> None:
    """Spool disk full (under ``spool.min_free_mb``) → health degraded before any call; a caller
    is not asked for a message: told, routed to the node's ``failed``, called back."""
    platform = after_hours_platform(
        tmp_path / "platform", {"min_free_mb": 1, "check_interval_s": 1}, edit=" failed: welcome,"
    )
    voicemail = platform.config.paths.spool_dir / "voicemail"
    with tiny_filesystem(voicemail, 64):
        platform.start_all()
        try:
            health = platform.wait_component("spool", "degraded", timeout_s=15)
            assert any("spool.min_free_mb" in reason for reason in health["reasons"]), health
            assert metric(platform, "hotline_spool_ok") == 0
            result = run_sipp(
                platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13955551002"
            )
            assert result.ok, result.errors
            call = platform.wait_call(lambda c: c["caller"] == "139****1002" and c["state"] == "ended", "the record")
            assert call["outcome"] == "voicemail_failed"
            assert call["ivr_path"] == ["entry", "complaint", "message", "welcome", "bye"]
            assert played(platform, "voicemail_failed")
            assert not played(platform, "ivr/closed"), "the caller was asked for a message we could not keep"
            assert "13955551002" in callback_callers(platform)

            subprocess.run(["umount", "--lazy", str(voicemail)], check=True)  # space is back
            health = platform.wait_component("spool", "up", timeout_s=15)
            assert health["reasons"] == []
        finally:
            platform.stop_all()


def test_the_asr_worker_waits_for_redis_and_files_the_ticket(tmp_path: Path) -> None:
    """Redis is down when the controller starts: its ASR worker (no model: tickets without
    transcripts) must not die, and must file the next message's ticket once Redis is back."""
    platform = after_hours_platform(tmp_path / "platform", {})
    platform.asterisk.start()
    try:
        platform.start_controller()
        health = platform.wait_component("asr_worker", "waiting_for_redis", timeout_s=30)
        assert health["status"] == "degraded"
        platform.redis.start()
        platform.wait_component("asr_worker", "up", timeout_s=30)
        platform.wait_component("redis", "up", timeout_s=30)
        speech = tone_wav(tmp_path / "speech.wav", seconds=3)
        caller = scenario(
            INVITE, ANSWERED, pause(prompt_ms(platform, "closed") + 800), stream_audio(speech), HOTLINE_HANGS_UP
        )
        assert run_sipp(platform.config.sip.port, caller, caller="13955551003", timeout_s=60).ok
        call = platform.wait_call(lambda c: c["caller"] == "139****1003" and c["state"] == "ended", "the record")
        assert call["outcome"] == "voicemail"

        def ticket() -> dict[str, Any] | None:
            tickets = platform.http("/api/v1/tickets").body["tickets"]
            return next((t for t in tickets if t["call_id"] == call["call_id"]), None)

        assert wait_for("the message's ticket", ticket, timeout_s=30, interval_s=0.5)["caller"] == "139****1003"
    finally:
        platform.stop_all()


def test_a_caller_who_gives_up_while_redis_is_down_is_called_back(fresh_platform: PlatformUnderTest) -> None:
    platform = fresh_platform
    platform.redis.stop()
    platform.wait_component("redis", "down", timeout_s=15)
    result = run_sipp(
        platform.config.sip.port, scenario(INVITE, ANSWERED, pause(1000), CALLER_HANGS_UP), caller="13800001999"
    )
    assert result.ok, result.errors

    def ended_unsaved() -> bool:
        health = platform.health_or_none() or {}
        return health.get("live_calls") == 0 and health.get("unsaved_records", 0) > 0

    wait_for("the call to end while Redis is down", ended_unsaved, 15)

    platform.redis.start()
    platform.wait_component("redis", "up", timeout_s=15)
    platform.wait_call(lambda c: c["caller"] == "138****1999" and c["outcome"] == "abandoned", "the record")
    wait_for("the caller on the callback list", lambda: "13800001999" in callback_callers(platform), 15)
    assert metric(platform, "hotline_callbacks_unsaved") == 0
