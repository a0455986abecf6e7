"""The fault suite, short version (the long one: bench/chaos.py): break a part of a busy
platform — real Asterisk, Redis and SIPp — and account for every caller."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chaos import Floor, MessageDrill
from tests.support.platform import wait_for

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


def test_redis_hung_then_killed_while_callers_leave_messages(tmp_path: Path) -> None:
    """Redis stops answering (SIGSTOP, 10 s) and is later killed and restarted while callers
    leave messages: every message becomes exactly one ticket, none is lost or doubled, and no IVR
    step waits more than a second on Redis."""
    drill = MessageDrill(tmp_path)
    try:
        account = drill.run(callers=8, gap_s=1.5, hang_s=10)
    finally:
        drill.stop()
    assert not account.sip_failures, account.sip_failures
    assert account.lost == 0, account.report
    assert account.duplicate_tickets == 0 and len(account.tickets) == 8, account.tickets
    assert len({t["id"] for t in account.tickets}) == 8
    # every IVR step of these calls waited at most a second on Redis (the controller's histogram)
    assert account.ivr_steps >= 8 * 3, account
    assert account.ivr_steps_within_1s == account.ivr_steps, account
