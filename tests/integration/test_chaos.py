"""The fault suite, short version (the long one: bench/chaos.py): break a part of a busy
platform — real Asterisk, Redis and SIPp — and account for every caller."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.audio import duration_s
from tests.support.chaos import Floor
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.sipp import ANSWERED, HOTLINE_HANGS_UP, INVITE, SippCall, pause, scenario, stream_audio
from tests.support.speech import korean_message_ulaw, korean_model_folder

pytestmark = pytest.mark.integration

TALK_MS = 12_000


@pytest.fixture
def floor(tmp_path: Path) -> Iterator[Floor]:
    made = Floor.create(tmp_path, seats=3, waiting=3, in_menu=4, talk_ms=TALK_MS)
    made.start()
    try:
        yield made
    finally:
        made.stop()


def test_controller_killed_with_calls_in_menus_waiting_and_talking(floor: Floor) -> None:
    floor.fill(patience_ms=90_000)
    controller = floor.platform.controller
    assert controller is not None
    controller.send_signal(signal.SIGKILL)
    controller.wait()
    floor.platform.controller = None
    time.sleep(2)  # Asterisk holds every call meanwhile: music, conversations, the fallback route
    floor.platform.start_controller()

    account = floor.finish()
    assert account.dropped == 0, account.summary()
    assert not account.duplicated, account.summary()
    # the seats' calls and the callers who waited were served by seats, before and after the restart
    assert account.outcomes["answered"] >= floor.seats + floor.waiting, account.summary()
    log = floor.platform.controller_log_text()
    assert "acd.resynced" in log


def test_asterisk_restart_brings_ami_back_and_seats_are_offered_calls_again(floor: Floor) -> None:
    platform = floor.platform
    platform.asterisk.stop()
    platform.wait_component("ami", "down", timeout_s=15)
    platform.asterisk.start()
    platform.wait_component("ami", "up", timeout_s=30)
    # the seats are still logged in and ready: the restart did not log them out or strand them
    wait_for("every seat ready", lambda: floor.seat_states().count("ready") == floor.seats, timeout_s=30)
    floor.place(0, 2, press_zero=True, patience_ms=60_000)  # two callers, both straight to a seat
    account = floor.finish()
    assert account.dropped == 0, account.summary()
    assert account.outcomes == {"answered": 2}, account.summary()


MONDAY_NIGHT = "2026-03-09T21:00:00+08:00"  # tests/dialplans/after_hours.yaml: closed, callers leave messages
GRAMMAR = ["안녕하세요", "감사합니다", "전화", "도로"]


def test_redis_hung_then_killed_while_callers_leave_messages(tmp_path: Path) -> None:
    """Redis stops answering (SIGSTOP, 10 s) and is later killed and restarted while callers
    leave messages: every message becomes exactly one ticket, none is lost or doubled."""
    platform = PlatformUnderTest(
        tmp_path / "platform",
        overrides={
            "asr": {
                "model_path": str(korean_model_folder()),
                "grammar": GRAMMAR,
                "rescan_interval_s": 1,
                "rescan_min_age_s": 3,
                "visibility_timeout_s": 20,
            }
        },
        dialplan="after_hours",
        environment={"HOTLINE_TEST_NOW": MONDAY_NIGHT},
    )
    message = korean_message_ulaw(tmp_path / "message.wav", "안녕하세요 감사합니다")
    platform.start_all()
    closed_ms = int(duration_s(platform.config.paths.runtime_dir / "prompts" / "ivr" / "closed.wav") * 1000)
    platform.start_asr_worker()
    calls: list[SippCall] = []
    try:

        def leave(index: int) -> None:
            caller = scenario(INVITE, ANSWERED, pause(closed_ms + 1200), stream_audio(message), HOTLINE_HANGS_UP)
            calls.append(SippCall(platform.config.sip.port, caller, caller=f"1390003{index:04d}", timeout_s=120))

        leave(0)
        leave(1)
        platform.redis.send_signal(signal.SIGSTOP)  # hung, not refused: connections open, no answer
        try:
            for index in range(2, 5):
                leave(index)
                time.sleep(2)
            time.sleep(4)
        finally:
            platform.redis.send_signal(signal.SIGCONT)
        leave(5)
        leave(6)
        time.sleep(3)
        platform.redis.kill()  # mid-message, without a clean shutdown
        time.sleep(2)
        platform.redis.start()
        leave(7)
        results = [call.wait() for call in calls]
        assert all(r.ok for r in results), [r.errors[:300] for r in results if not r.ok]

        callers = {f"139****{index:04d}" for index in range(8)}

        def all_ticketed() -> list[dict[str, Any]] | None:
            result = platform.http("/api/v1/tickets?limit=200")
            if result.status != 200:
                return None
            mine = [t for t in result.body["tickets"] if t["caller"] in callers]
            return mine if {t["caller"] for t in mine} == callers else None

        try:
            tickets = wait_for("a ticket for every message", all_ticketed, timeout_s=180, interval_s=1.0)
        except AssertionError as failure:
            raise AssertionError(f"{failure}; {_messages_report(platform, callers)}") from None
        time.sleep(3)  # a rescan or a reclaimed job would make a second ticket now
        tickets = all_ticketed() or tickets
        assert len(tickets) == 8, [(t["id"], t["caller"], t["call_id"]) for t in tickets]
        assert len({t["id"] for t in tickets}) == 8
        assert len({t["call_id"] for t in tickets}) == 8
    finally:
        for call in calls:
            call.stop()
        platform.stop_all()


def _messages_report(platform: PlatformUnderTest, callers: set[str]) -> str:
    """Where each message got to: its call record, its ticket, parked jobs, the spool."""
    tickets = platform.http("/api/v1/tickets?limit=200").body.get("tickets", [])
    calls = [c for c in platform.calls() if c["caller"] in callers]
    parked = platform.http("/api/v1/asr/parked").body
    spool = sorted(p.name for p in (platform.config.paths.spool_dir / "voicemail").glob("*"))
    return (
        f"tickets for {sorted(t['caller'] for t in tickets if t['caller'] in callers)}; "
        f"calls {[(c['caller'], c['state'], c['outcome'], c.get('tags')) for c in calls]}; "
        f"parked {parked}; spool {spool}"
    )
