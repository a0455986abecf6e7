"""After hours: a caller's message → spool (fsynced, sidecar) → ASR job → vosk → case ticket.

Real Asterisk, SIPp streaming espeak-ng Korean into the recording, real Redis, a real
``hotline12345 asr-worker`` process with the Korean vosk model and a small grammar; the last
test runs the worker as production does, without a grammar (free speech).
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import time
import wave
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from hotline.config import load_config
from tests.support.audio import duration_s
from tests.support.platform import REPO, PlatformUnderTest, wait_for
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    HOTLINE_HANGS_UP,
    INVITE,
    SippCall,
    pause,
    run_sipp,
    scenario,
    stream_audio,
)
from tests.support.speech import GRAMMAR, korean_asr, korean_message_ulaw, korean_model_folder
from voicemail.asr import VoskTranscriber
from voicemail.config import AsrConfig

pytestmark = pytest.mark.integration

MONDAY_NIGHT = "2026-03-09T21:00:00+08:00"  # closed: workday hours end at 20:00
WORDS = "안녕하세요 감사합니다"


@pytest.fixture(scope="module")
def after_hours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformUnderTest]:
    platform = PlatformUnderTest(
        tmp_path_factory.mktemp("messages"),
        overrides={"asr": korean_asr()},
        dialplan="after_hours",
        environment={"HOTLINE_TEST_NOW": MONDAY_NIGHT},
    )
    platform.start_all()
    platform.start_asr_worker()
    try:
        yield platform
    finally:
        platform.stop_all()


def prompt_ms(platform: PlatformUnderTest, name: str) -> int:
    return int(duration_s(platform.config.paths.runtime_dir / "prompts" / "ivr" / f"{name}.wav") * 1000)


def message_call(platform: PlatformUnderTest, message: Path) -> str:
    """A caller who waits out the closed prompt, says ``message`` and leaves the hang-up to us."""
    return scenario(
        INVITE, ANSWERED, pause(prompt_ms(platform, "closed") + 800), stream_audio(message), HOTLINE_HANGS_UP
    )


def leave_message(platform: PlatformUnderTest, caller: str, message: Path) -> dict[str, Any]:
    result = run_sipp(platform.config.sip.port, message_call(platform, message), caller=caller, timeout_s=60)
    assert result.ok, result.errors
    return ended_record(platform, caller)


def ended_record(platform: PlatformUnderTest, caller: str) -> dict[str, Any]:
    masked = caller[:3] + "****" + caller[-4:]
    return platform.wait_call(lambda c: c["caller"] == masked and c["state"] == "ended", "the call record")


def ticket_of(platform: PlatformUnderTest, call_id: str, timeout_s: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        tickets = platform.http("/api/v1/tickets").body["tickets"]
        return next((t for t in tickets if t["call_id"] == call_id), None)

    return wait_for(f"the ticket of {call_id}", probe, timeout_s=timeout_s, interval_s=0.5)


def queued(platform: PlatformUnderTest, recording: str) -> bool:
    client = redis.Redis.from_url(platform.redis.url)
    try:
        return bool(client.sismember("hotline:asr:queued:kunming", recording))
    finally:
        client.close()


def wait_rescan_pass(platform: PlatformUnderTest, recording: str) -> None:
    """Return once a spool rescan has run with ``recording`` settled (its files older than the
    rescan's minimum age), instead of sleeping and hoping one did: a marker message, dropped in
    only once ``recording`` is settled, is queued by the first pass that lists the folder after."""
    wav = platform.config.paths.spool_dir / recording
    files = [wav, wav.with_name(wav.name.removesuffix(".wav") + ".json")]  # a too-short one may have no audio
    min_age_s = platform.config.asr.rescan_min_age_s

    def settled() -> bool:
        return all(time.time() - f.stat().st_mtime > min_age_s + 0.5 for f in files if f.exists())

    wait_for("the message to settle", settled, 30)
    marker = wav.with_name(f"rescan-marker-{wav.name}")
    with wave.open(str(marker), "wb") as audio:  # one second of silence
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 8000)
    os.utime(marker, (time.time() - 3600, time.time() - 3600))
    marker_job = f"{wav.parent.name}/{marker.name}"
    marker_call = marker.name.removesuffix(".wav")

    def marker_seen() -> bool:  # queued, or already transcribed into its ticket
        tickets = platform.http("/api/v1/tickets").body["tickets"]
        return queued(platform, marker_job) or any(t["call_id"] == marker_call for t in tickets)

    wait_for("a rescan to queue the marker", marker_seen, 30, interval_s=0.2)


def test_a_message_after_hours_becomes_a_ticket(after_hours: PlatformUnderTest, tmp_path: Path) -> None:
    message = korean_message_ulaw(tmp_path / "message.wav", WORDS)
    call = leave_message(after_hours, "13955550001", message)
    assert call["outcome"] == "voicemail"
    assert call["ivr_path"] == ["entry", "complaint", "message", "bye"]
    stored = after_hours.stored_call(call["call_id"])
    wav = after_hours.config.paths.spool_dir / stored["recording"]
    sidecar = json.loads(wav.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["caller"] == "13955550001"
    assert sidecar["tags"]["category"] == "complaint"
    assert sidecar["duration_s"] > 1.5

    ticket = ticket_of(after_hours, call["call_id"])
    assert ticket["id"].startswith("KM-20260309-")
    assert ticket["source"] == "voicemail"
    assert ticket["category"] == "complaint"
    assert ticket["caller"] == "139****0001"
    assert ticket["has_audio"]
    words = ticket["transcript"]["text"].split()
    assert "안녕하세요" in words or "감사합니다" in words, ticket["transcript"]
    # 21:00 is after 18:00: dispatch by 10:00 the next day; a complaint: 15 working days
    assert datetime.fromisoformat(ticket["deadlines"]["dispatch_by"]).isoformat() == "2026-03-10T10:00:00+08:00"
    assert ticket["deadlines"]["resolve_by"].startswith("2026-03-30")
    audio = after_hours.http_bytes(f"/api/v1/tickets/{ticket['id']}/audio")
    assert audio == wav.read_bytes()


def test_a_too_short_message_is_a_callback_not_a_ticket(after_hours: PlatformUnderTest) -> None:
    result = run_sipp(
        after_hours.config.sip.port,
        scenario(INVITE, ANSWERED, pause(prompt_ms(after_hours, "closed") + 700), CALLER_HANGS_UP),
        caller="13955550002",
    )
    assert result.ok, result.errors
    call = after_hours.wait_call(lambda c: c["caller"] == "139****0002" and c["state"] == "ended", "the record")
    assert call["tags"]["voicemail"] == "too_short"
    callbacks = after_hours.http("/api/v1/callbacks").body["callbacks"]
    assert any(c["caller"] == "13955550002" for c in callbacks)
    recording = after_hours.stored_call(call["call_id"])["recording"]
    wait_rescan_pass(after_hours, recording)  # a rescan saw it settled and left it alone
    assert not queued(after_hours, recording)
    tickets = after_hours.http("/api/v1/tickets").body["tickets"]
    assert not [t for t in tickets if t["call_id"] == call["call_id"]]


def test_a_job_redis_lost_is_queued_again_from_the_spool(after_hours: PlatformUnderTest, tmp_path: Path) -> None:
    """The worker is away; Redis loses the job (as if its last writes were lost); the spool
    rescan queues the message again and exactly one ticket appears."""
    after_hours.stop_asr_worker()
    message = korean_message_ulaw(tmp_path / "message.wav", "감사합니다")
    call = leave_message(after_hours, "13955550003", message)
    client = redis.Redis.from_url(after_hours.redis.url)
    try:
        recording = after_hours.stored_call(call["call_id"])["recording"]
        client.srem("hotline:asr:queued:kunming", recording)
        client.delete("hotline:asr:jobs:kunming")  # the job is gone with the stream
        wait_for("the rescan to queue it again", lambda: client.sismember("hotline:asr:queued:kunming", recording), 30)
    finally:
        client.close()
    after_hours.start_asr_worker()
    ticket = ticket_of(after_hours, call["call_id"])
    assert "감사합니다" in ticket["transcript"]["text"]
    wait_for("the job to be done", lambda: not queued(after_hours, recording), 30)
    wait_rescan_pass(after_hours, recording)  # a rescan that would queue it twice has run
    assert not queued(after_hours, recording)
    tickets = after_hours.http("/api/v1/tickets").body["tickets"]
    assert len([t for t in tickets if t["call_id"] == call["call_id"]]) == 1


FREE_SPEECH = (  # two callers' requests, different in every word
    "우리 동네 가로등이 일주일째 꺼져 있어서 밤에 너무 어둡습니다",
    "시장 근처에 불법 주차된 차들 때문에 소방차가 들어갈 수 없습니다 빨리 단속해 주세요",
)


def similarity(one: str, other: str) -> float:
    """How alike two transcripts are, letter by letter (spaces aside): 0..1."""
    return difflib.SequenceMatcher(None, "".join(one.split()), "".join(other.split())).ratio()


def test_free_speech_the_production_default_transcribes_what_each_caller_said(
    after_hours: PlatformUnderTest, tmp_path: Path
) -> None:
    """The worker runs as production does, with no grammar (the default and the shipped
    config.yaml), on two callers' messages. Each ticket's text is what the same model makes of
    that call's recording in free speech (to the letter; the two differ), that recording's
    text is closer to what the model makes of the audio this caller sent than of the other's, and
    the tickets hold words no grammar contains. (The small Korean model's free speech on
    espeak-ng voices is far from the words spoken — docs/operations.md, "Message transcription" —
    so the check is on the text coming from the audio, not on its meaning.)"""
    assert AsrConfig().grammar == () and load_config(REPO / "config.yaml").asr.grammar == ()  # production
    data = yaml.safe_load(after_hours.config_path.read_text(encoding="utf-8"))
    del data["asr"]["grammar"]
    free_config = after_hours.root / "config-free-speech.yaml"
    free_config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    after_hours.stop_asr_worker()
    log = after_hours.root / "asr-worker.log"
    logged_before = log.read_text(errors="replace") if log.exists() else ""
    after_hours.start_asr_worker(free_config)
    try:
        callers = [f"1395555001{n}" for n in range(len(FREE_SPEECH))]
        sipps = [  # both at once
            SippCall(
                after_hours.config.sip.port,
                message_call(after_hours, korean_message_ulaw(tmp_path / f"m{n}.wav", text)),
                caller=callers[n],
                timeout_s=60,
            )
            for n, text in enumerate(FREE_SPEECH)
        ]
        results = [sipp.wait() for sipp in sipps]
        assert all(result.ok for result in results), [result.errors for result in results]
        calls = [ended_record(after_hours, caller) for caller in callers]
        tickets = [ticket_of(after_hours, call["call_id"], timeout_s=120) for call in calls]
        started = log.read_text(errors="replace")[len(logged_before) :]
        assert '"mode": "free speech"' in started, started[-2000:]
    finally:
        after_hours.stop_asr_worker()
        after_hours.start_asr_worker()  # the module's grammar worker again

    # the same model, free speech, in this process: on each call's recording, and on the audio
    # each caller sent (before Asterisk, the RTP stream and the recording)
    model = VoskTranscriber(korean_model_folder(), grammar=None, workers=1)
    try:
        recorded, sent = [], []
        for n, call in enumerate(calls):
            recording = after_hours.config.paths.spool_dir / after_hours.stored_call(call["call_id"])["recording"]
            recorded.append(model.transcribe_file(recording).text)
            pcm = tmp_path / f"sent{n}.wav"
            subprocess.run(
                ["sox", str(tmp_path / f"m{n}.wav"), "-e", "signed-integer", "-b", "16", str(pcm)], check=True
            )
            sent.append(model.transcribe_file(pcm).text)
    finally:
        model.close()
    texts = [t["transcript"]["text"] for t in tickets]
    report = {"tickets": texts, "recordings": recorded, "sent": sent}
    assert texts[0] != texts[1], report
    for n, other in ((0, 1), (1, 0)):
        words = texts[n].split()
        assert len(words) >= 4 and set(words) - set(GRAMMAR), report  # words no grammar has
        # a decode is repeatable (no dither: voicemail/asr.py), whatever else the worker decoded
        # at the same time: the ticket holds exactly the model's text of that call's recording
        assert texts[n] == recorded[n], report
        assert similarity(recorded[n], sent[n]) > similarity(recorded[n], sent[other]), report
