"""Outbound calls on a real Asterisk, with SIPp behind the carrier trunk playing the unit and
the citizen (RFC 4733 keys): a dispatch reminder answered with key 1 signs the ticket; a 回访
answered 1 then 1 makes it visited with the score; a unit that is busy gets a retry scheduled,
and the call showed the platform's 12345 number; a citizen waiting for a seat holds new calls."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from ivr.calendar import PlatformCalendar
from telephony.say_zh import clock_time, spell, zh_sounds_dir
from tests.support.platform import ADMIN_TOKEN, SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    HOTLINE_HANGS_UP,
    INVITE,
    OK_WITH_SDP,
    RINGING,
    SippCall,
    SippServer,
    _uas_response,
    answering_peer,
    dtmf,
    pause,
    scenario,
    stays_until_released,
)
from tickets import machine
from tickets.model import Ticket, TicketCategory, TicketSource, TicketState
from tickets.store import INDEX, ticket_key

pytestmark = pytest.mark.integration

ALL_DAY = ["00:00-24:00"]
KIND = {"workday_hours": ALL_DAY, "restday_hours": ALL_DAY, "holiday_hours": ALL_DAY, "ring_s": 10}
CALENDAR = PlatformCalendar()


class Rig:
    def __init__(self, platform: PlatformUnderTest, carrier_port: int, seat_port: int) -> None:
        self.platform = platform
        self.carrier_port = carrier_port
        self.seat_port = seat_port
        self.client = redis.Redis.from_url(platform.redis.url)

    def save(self, ticket: Ticket) -> None:
        self.client.set(ticket_key(ticket.id), ticket.model_dump_json())
        self.client.zadd(INDEX, {ticket.id: ticket.accepted_at.timestamp()})

    def ticket(self, ticket_id: str) -> Ticket:
        raw = self.client.get(ticket_key(ticket_id))
        assert isinstance(raw, bytes)
        return Ticket.model_validate_json(raw)

    def attempts(self, ticket_id: str) -> list[dict[str, Any]]:
        body = self.platform.http(f"/api/v1/outbound/attempts?ticket_id={ticket_id}").body
        found: list[dict[str, Any]] = body["attempts"]
        return found


def new_ticket(sequence: int, *, unit: str = "", caller: str = "13900003001") -> Ticket:
    now = datetime.now(UTC)
    ticket = machine.accept(
        platform="kunming", sequence=sequence, source=TicketSource.PHONE, accepted_at=now,
        category=TicketCategory.SERVICE_REQUEST, calendar=CALENDAR, caller=caller,
    )  # fmt: skip
    return ticket.model_copy(update={"unit": unit, "matter_type": "housing_fund"})


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    carrier_port, seat_port = free_tcp_and_udp_port(), free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path_factory.mktemp("outbound"),
        dialplan="queue",  # inbound callers wait for the one seat
        overrides={
            "seats": [{"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{seat_port}"}],
            "acd": {"auto_login": ["1001"], "wrapup_s": 0},
            "sip": {"trunks": {"carrier": {"host": "127.0.0.1", "port": carrier_port}}},
            "outbound": {
                "enabled": True,
                "tick_s": 0.5,
                "sweep_interval_s": 1,
                "reminder": {**KIND, "max_attempts": 3, "retry_after_s": [600]},
                "visit": {**KIND, "max_attempts": 2, "retry_after_s": [600]},
                "visit_comment_s": 2,
                # inbound first: the last 15 min's 15 s service level (one answered caller of two
                # in the test below: 0.5) holds new calls while below this
                "min_service_level": 0.5,
            },
        },
    )
    platform.start_all()
    try:
        yield Rig(platform, carrier_port, seat_port)
    finally:
        platform.stop_all()


def answering_and_pressing(key: str, presses: int) -> str:
    """Answers, then presses ``key`` every ~1.4 s (a key during a prompt is ignored; the first
    during a key prompt counts), until the hotline hangs up."""
    answer = '\n  <recv request="INVITE" rrs="true"/>\n' + RINGING + OK_WITH_SDP
    answer += '  <recv request="ACK"/>\n' + pause(1500)
    keys = "".join(dtmf(key, press=i) + pause(1000) for i in range(presses))
    return answer + keys + HOTLINE_HANGS_UP


def test_a_unit_presses_1_and_the_ticket_is_signed(rig: Rig) -> None:
    unit = SippServer(scenario(answering_and_pressing("1", 40)), port=rig.carrier_port, timeout_s=150)
    ticket = new_ticket(901, unit="km_housing_fund")
    ticket = machine.transition(ticket, TicketState.DISPATCHED, at=datetime.now(UTC), actor="seat", calendar=CALENDAR)
    rig.save(ticket)
    wait_for("the ticket signed", lambda: rig.ticket(ticket.id).state is TicketState.SIGNED or None, timeout_s=120)
    unit.wait()  # its port is free for the next test (the BYE may come between two keys)
    signed = rig.ticket(ticket.id)
    entry = next(e for e in signed.timeline if e.state is TicketState.SIGNED and e.actor == "unit by phone")
    assert "signed for by phone (key 1) at" in entry.note
    notes = [e.note for e in signed.timeline if e.actor == "outbound"]
    assert notes[0] == "outbound reminder: try 1/3 to 087******101"
    done = wait_for(
        "the attempt done", lambda: next((a for a in rig.attempts(ticket.id) if a["state"] == "done"), None)
    )
    assert done["number"] == "087******101" and done["last_result"] == "signed"
    assert "087100000101" not in rig.platform.controller_log_text()  # masked in the log
    # the case number and the deadline in Mandarin, from the sound set; none of Asterisk's English
    runtime = rig.platform.config.paths.runtime_dir
    log = (runtime / "asterisk" / "log" / "messages.log").read_text(errors="replace")
    heard = " ".join(re.findall(r"Playing '" + re.escape(str(zh_sounds_dir(runtime))) + r"/(\w+)\.", log))
    assert signed.deadlines.sign_by is not None
    deadline = clock_time(signed.deadlines.sign_by.astimezone(ZoneInfo(rig.platform.config.platform.timezone)))
    assert " ".join(spell(ticket.id.replace("-", ""))) + " " in heard + " ", heard
    assert " ".join(deadline) in heard, heard
    assert not re.search(r"Playing '(digits|letters)/", log)
    metrics = rig.platform.http("/metrics", token=None).body
    outbound_lines = [line for line in metrics.splitlines() if line.startswith("hotline_outbound")]
    assert 'hotline_outbound_attempts_total{kind="reminder",platform="kunming",result="signed"} 1.0' in outbound_lines


def test_a_citizen_answers_the_visit_1_then_1(rig: Rig) -> None:
    citizen = SippServer(scenario(answering_and_pressing("1", 40)), port=rig.carrier_port, timeout_s=150)
    ticket = new_ticket(902, caller="13900003002")
    ticket = machine.transition(ticket, TicketState.RESOLVED, at=datetime.now(UTC), actor="seat", calendar=CALENDAR)
    rig.save(ticket)
    wait_for("the ticket visited", lambda: rig.ticket(ticket.id).state is TicketState.VISITED or None, timeout_s=120)
    citizen.wait()
    visited = rig.ticket(ticket.id)
    assert visited.visit is not None
    assert (visited.visit.resolved, visited.visit.satisfaction) == (True, 1)
    assert not visited.needs_review
    if visited.visit.comment_recording:  # the citizen's line carried sound: a comment was recorded
        # no model here: the controller's own worker consumes the job and notes "no transcript"
        def transcribed() -> Ticket | None:
            now = rig.ticket(ticket.id)
            return now if now.visit is not None and now.visit.comment_transcript is not None else None

        noted = wait_for("the comment's job consumed", transcribed, timeout_s=60)
        assert noted.timeline[-1].note == "回访 comment: no transcript (listen to the recording)"


# the INVITE must come from the platform's 12345 number (0871 12345), else SIPp fails the call
BUSY_UNIT = (
    '\n  <recv request="INVITE">\n    <action>\n'
    '      <ereg regexp="sip:087112345@" search_in="hdr" header="From:" check_it="true" assign_to="from"/>\n'
    "    </action>\n  </recv>\n"
    + _uas_response("486 Busy Here", "[last_CSeq:]\n      ")
    + '  <recv request="ACK"/>\n  <nop><action><log message="[$from]"/></action></nop>\n'
)


def test_a_busy_unit_gets_a_retry_and_saw_the_platform_number(rig: Rig) -> None:
    unit = SippServer(scenario(BUSY_UNIT), port=rig.carrier_port, timeout_s=90)
    ticket = new_ticket(903, unit="km_human_resources")
    ticket = machine.transition(ticket, TicketState.DISPATCHED, at=datetime.now(UTC), actor="seat", calendar=CALENDAR)
    rig.save(ticket)
    assert unit.wait().ok
    queued = wait_for(
        "the retry scheduled",
        lambda: next((a for a in rig.attempts(ticket.id) if a["state"] == "queued" and a["tries"] == 1), None),
    )
    assert queued["last_result"] == "busy"
    assert queued["next_try_at"] is not None
    assert rig.ticket(ticket.id).state is TicketState.DISPATCHED
    status = rig.platform.http("/api/v1/outbound").body
    assert status["kinds"]["reminder"]["queued"] >= 1
    # supervisors read, admins change: a seat may do neither
    assert rig.platform.http("/api/v1/outbound", token=SEAT_TOKEN).status == 403
    assert rig.platform.http("/api/v1/outbound/pause", token=SEAT_TOKEN, method="POST").status == 403
    assert rig.platform.http("/api/v1/outbound/pause", token=ADMIN_TOKEN, method="POST").body["paused"] is True
    assert rig.platform.http("/api/v1/outbound").body["paused"] is True
    assert rig.platform.http("/api/v1/outbound/resume", token=ADMIN_TOKEN, method="POST").body["paused"] is False


HELD_S = 6  # the dialler ticks every 0.5 s here (outbound.tick_s)


def test_a_citizen_waiting_for_a_seat_holds_new_outbound_calls(rig: Rig) -> None:
    sip_port = rig.platform.config.sip.port
    # the first caller talks with the seat until the test has seen the service level hold new
    # calls (until 2026-12: the seat talked a fixed 40 s, then hung up)
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=rig.seat_port, timeout_s=150)
    first = SippCall(
        sip_port,
        scenario(INVITE, ANSWERED, stays_until_released(60_000), CALLER_HANGS_UP),
        caller="13900004001",
        timeout_s=120,
    )
    wait_for(
        "the seat on the first call",
        lambda: any(s["state"] == "on_call" for s in rig.platform.http("/api/v1/seats").body["seats"]) or None,
        timeout_s=60,
    )
    second = SippCall(
        sip_port, scenario(INVITE, ANSWERED, pause(12_000), CALLER_HANGS_UP), caller="13900004002", timeout_s=120
    )
    wait_for("a caller waiting", lambda: rig.platform.http("/api/v1/outbound").body["inbound_waiting"] == 1 or None)
    unit = SippServer(scenario(BUSY_UNIT), port=rig.carrier_port, timeout_s=120)
    ticket = new_ticket(904, unit="km_medical_insurance")
    ticket = machine.transition(ticket, TicketState.DISPATCHED, at=datetime.now(UTC), actor="seat", calendar=CALENDAR)
    rig.save(ticket)
    wait_for("the reminder planned", lambda: rig.attempts(ticket.id) or None)
    held = 0
    while not second.finished:  # as long as the citizen waits, the unit is not called
        status = rig.platform.http("/api/v1/outbound").body
        if status["inbound_waiting"] == 1:
            assert status["held_by"] == "inbound_waiting"
            assert [a["tries"] for a in rig.attempts(ticket.id)] == [0]
            held += 1
    assert held > 0
    assert second.wait().ok
    # the caller gave up: the 15 s service level is 0 of 1 now, below 0.5: still no new call
    # until the first call ends and counts (1 of 2 answered within 15 s)
    seen = set()
    held_since: float | None = None
    while not first.finished:
        status = rig.platform.http("/api/v1/outbound").body
        seen.add(status["held_by"])
        if status["held_by"] == "service_level":
            assert status["service_level"] == {"last_15min": 0.0, "min": 0.5}
            assert [a["tries"] for a in rig.attempts(ticket.id)] == [0]
            held_since = held_since or time.monotonic()
            if time.monotonic() - held_since > HELD_S:  # held over many of the dialler's ticks
                break
        time.sleep(0.1)
    first.release()  # the first caller hangs up now
    assert "service_level" in seen
    # the caller gone and the level back: the reminder goes out
    assert unit.wait().ok
    tried = wait_for("the try's result", lambda: next((a for a in rig.attempts(ticket.id) if a["last_result"]), None))
    assert tried["tries"] == 1
    assert tried["last_result"] == "busy"
    assert first.wait().ok
    assert seat.wait().ok
