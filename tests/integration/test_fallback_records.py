"""Every call leaves a record while the controller is away: Asterisk's fallback route writes a
line per call (calls/fallback_calls.py), the controller reads it when it is back.

One platform for the module (real Asterisk, Redis, SIPp): seat 1001 has a static contact where a
SIPp seat answers only when a test starts one; the queue dialplan's max wait is short, and an
announcement is due every 2 s.
"""

from __future__ import annotations

import json
import re
import signal
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.audio import duration_s, tone_wav
from tests.support.platform import PlatformUnderTest, wait_for
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
    pause,
    run_sipp,
    scenario,
    stays_until_released,
    stream_audio,
)

pytestmark = pytest.mark.integration

MAX_WAIT_S = 8
FALLBACK_WAIT_S = 5
ANNOUNCE_EVERY_S = 2
SEAT_TALK_MS = 3000
HANDOFF_EXPIRY_S = 12  # longer than the province rings before the caller gives up
PROVINCE_HOST = "127.0.0.6"  # "another host": the province platform's trunk
PROVINCE_PORT = free_tcp_and_udp_port()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformUnderTest, int]]:
    seat_port = free_tcp_and_udp_port()
    province = {
        "host": PROVINCE_HOST,
        "port": PROVINCE_PORT,
        "platform": "province",
        "qualify_s": 0,
    }  # rings, never answers (not probed: the SIPp peer answers INVITE only)
    platform = PlatformUnderTest(
        tmp_path_factory.mktemp("fallback-records"),
        overrides={
            "seats": [{"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{seat_port}"}],
            "acd": {
                "fallback_wait_s": FALLBACK_WAIT_S,
                "announce_every_s": ANNOUNCE_EVERY_S,
                "ring_timeout_s": 4,
                "max_missed_offers": 10,
                "wrapup_s": 0,
            },
            "sip": {"trunks": {"province": province}, "trunk_peers": ["127.0.0.1/32", f"{PROVINCE_HOST}/32"]},
            "transfers": {"ring_s": 120},
            "tickets": {"handoff_expiry_s": HANDOFF_EXPIRY_S},
            # a message the controller was away for is found by the spool rescan (it files the ticket)
            "asr": {"rescan_interval_s": 1, "rescan_min_age_s": 3},
            # the fallback route's message prompt, short (its default is about 10 s before the beep)
            "prompts": {"fallback": "请在提示音后留言。"},
        },
        dialplan="queue",
    )
    platform.install_dialplan(
        "queue",
        lambda text: text.replace("max_wait_s: 60", f"max_wait_s: {MAX_WAIT_S}").replace(
            "start: welcome", 'destinations:\n  province: {trunk: province, number: "12345"}\nstart: welcome'
        ),
    )
    platform.start_all()
    try:
        yield platform, seat_port
    finally:
        platform.stop_all()


def _prompt_s(platform: PlatformUnderTest, name: str) -> float:
    return duration_s(platform.config.paths.runtime_dir / "prompts" / f"{name}.wav")


def _call_files(platform: PlatformUnderTest) -> dict[str, str]:
    folder = platform.config.paths.spool_dir / "fallback"
    return {path.name: path.read_text(encoding="ascii") for path in sorted(folder.glob("fc-*.call"))}


def _seconds(later: str, earlier: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def _by_caller(platform: PlatformUnderTest, masked: str, what: str) -> dict[str, Any]:
    return platform.wait_call(lambda c: c["caller"] == masked and c["state"] == "ended", what, timeout_s=60)


def test_controller_down_answered_and_hung_up_in_greeting_both_recorded(
    stack: tuple[PlatformUnderTest, int],
) -> None:
    platform, seat_port = stack
    platform.stop_controller(sig=signal.SIGKILL)

    # X hangs up while the fallback greeting still plays (before any message could begin)
    early_ms = int(min(800, _prompt_s(platform, "fallback_hold") * 1000 / 3))
    early = run_sipp(
        platform.config.sip.port, scenario(INVITE, ANSWERED, pause(early_ms), CALLER_HANGS_UP), caller="13800001111"
    )
    assert early.ok, early.errors
    # Y is answered by seat 1001 through the static fallback queue; the seat ends the talk
    seat = SippServer(scenario(answering_peer(talk_ms=SEAT_TALK_MS, hang_up=True)), port=seat_port)
    answered = run_sipp(
        platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13800002222", timeout_s=60
    )
    assert answered.ok, answered.errors
    assert seat.wait().ok

    # Asterisk wrote one line per call, service-only, no caller number in a name
    files = wait_for("two fallback call lines", lambda: f if len(f := _call_files(platform)) == 2 else None)
    folder = platform.config.paths.spool_dir / "fallback"
    for name, line in files.items():
        assert re.fullmatch(r"fc-\d+-kunming-[\d.]+\.call", name), name
        assert stat.S_IMODE((folder / name).stat().st_mode) & 0o077 == 0, name
        assert line.endswith("|end"), line
    stages = sorted(line.split("|")[4] for line in files.values())
    assert stages == ["greeting", "queue"]
    assert not list(folder.glob("fb2-*.wav"))  # nobody reached the message

    platform.start_controller()
    gone = _by_caller(platform, "138****1111", "the record of the caller who hung up in the greeting")
    assert gone["outcome"] == "abandoned"
    assert gone["tags"] == {"route": "fallback", "fallback_stage": "greeting"}
    assert gone["ivr_path"] == ["fallback"]
    assert gone["seat_answered_at"] is None

    talked = _by_caller(platform, "138****2222", "the record of the caller a seat answered")
    assert talked["outcome"] == "answered"
    assert talked["seat"] == "1001"
    assert talked["tags"]["route"] == "fallback"
    talk_s = _seconds(talked["ended_at"], talked["seat_answered_at"])
    assert SEAT_TALK_MS / 1000 - 1 <= talk_s <= SEAT_TALK_MS / 1000 + 10, talk_s  # whole seconds, as Asterisk counts
    assert platform.stored_call(talked["call_id"])["caller"] == "13800002222"

    # the lines go once their records are saved (messages never do); none is read again
    wait_for("the ingested lines deleted", lambda: not _call_files(platform))
    # read once: a second controller run writes nothing again and shows the same records
    assert platform.controller_log_text().count('"fallback.call_recorded"') == 2
    scans = platform.controller_log_text().count('"fallback.first_scan"')
    platform.stop_controller()
    platform.start_controller()
    wait_for("the new run's first scan", lambda: platform.controller_log_text().count('"fallback.first_scan"') > scans)
    again = _by_caller(platform, "138****2222", "the answered record after a second restart")
    assert again == talked
    mine = [c for c in platform.calls() if c["caller"] in ("138****1111", "138****2222")]
    assert len(mine) == 2


def test_max_wait_and_announcements_due_while_the_controller_is_away(
    stack: tuple[PlatformUnderTest, int], tmp_path: Path
) -> None:
    """A caller waiting for a seat when the controller dies: the announcements that fall due
    find no controller and the music goes on; max wait (Asterisk's own timer) still ends the
    wait, and the fallback route takes a message; the controller, back, records it."""
    platform, seat_port = stack
    assert platform.http("/api/v1/seats/1001/login", method="POST").status == 200
    # 1001 rings and never answers (the ACD's offers, then the fallback queue): every INVITE is
    # answered 180 and cancelled, none left for the next test's seat to pick up
    ringing = SippServer(scenario(RINGING_PEER), port=seat_port, calls=1000, timeout_s=120)
    speech = tone_wav(tmp_path / "tone.wav", seconds=1)
    # at most (until 2026-12 the caller always stayed this long): the prompts, the waits, then
    # seconds of message; released once the fallback route is recording its message
    talk_ms = int(
        (
            _prompt_s(platform, "fallback_hold")
            + _prompt_s(platform, "fallback")
            + MAX_WAIT_S
            + FALLBACK_WAIT_S
            + 10  # the welcome, then seconds of message
        )
        * 1000
    )
    call = SippCall(
        platform.config.sip.port,
        scenario(INVITE, ANSWERED, stream_audio(speech, loops=-1), stays_until_released(talk_ms), CALLER_HANGS_UP),
        caller="13800003333",
        timeout_s=120,
    )
    queued = platform.wait_call(
        lambda c: c["caller"] == "138****3333" and c["queued_at"] is not None, "the caller waiting for a seat"
    )
    platform.stop_controller(sig=signal.SIGKILL)
    # the fallback route names its message (fb2-<epoch>-<uniqueid>) just before it records it
    fallback = platform.config.paths.spool_dir / "fallback"
    wait_for(
        "the fallback route recording the message",
        lambda: any(fallback.glob(f"fb2-*-{queued['call_id']}*")),
        timeout_s=talk_ms / 1000 + 30,
        interval_s=0.25,
    )
    call.talk_on(4)  # seconds of message, then the caller hangs up
    result = call.wait()
    assert result.ok, result.errors  # never dropped: music, then the fallback route, then the caller's BYE
    ringing.stop()

    line = wait_for(
        "the caller's fallback line",
        lambda: next((t for n, t in _call_files(platform).items() if queued["call_id"] in n), None),
    )
    fields = line.split("|")
    assert fields[4] in ("message", "goodbye")  # max wait → fallback route → message
    # Asterisk's max wait, not a failed announcement, sent the caller on
    waited_s = int(fields[1]) - datetime.fromisoformat(queued["queued_at"]).timestamp()
    assert waited_s >= MAX_WAIT_S - 1, waited_s
    # announcements fell due while the controller was away (its AGI refused), the wait went on
    console = (platform.root / "asterisk-console.log").read_text(errors="replace")
    assert len(re.findall(r"failed for url '[^']*/announce'", console)) >= 2
    assert re.search(r"failed for url '[^']*/overflow'", console)  # max wait found no controller either

    platform.start_controller()
    record = platform.wait_call(
        lambda c: c["call_id"] == queued["call_id"] and c["state"] == "ended" and c["has_recording"],
        "the waiting caller's record with the fallback message",
        timeout_s=60,
    )
    assert record["outcome"] == "fallback"
    assert record["ivr_path"][0] == "welcome" and "seat" in record["ivr_path"]
    assert record["queued_at"] == queued["queued_at"]
    # the message the controller was away for is a ticket, once
    ticket = wait_for("the fallback message's ticket", lambda: _tickets_of(platform, record["call_id"]), timeout_s=30)
    assert len(ticket) == 1 and ticket[0]["tags"]["route"] == "fallback"


def _tickets_of(platform: PlatformUnderTest, call_id: str) -> list[dict[str, Any]]:
    result = platform.http("/api/v1/tickets")
    assert result.status == 200, result
    tickets: list[dict[str, Any]] = result.body["tickets"]
    return [t for t in tickets if t["call_id"] == call_id or call_id in t.get("linked_call_ids", ())]


def test_a_hand_off_nobody_picked_up_becomes_a_ticket(stack: tuple[PlatformUnderTest, int]) -> None:
    """A seat transfers its caller to the province with the case; the province rings and never
    answers, the caller gives up: the case is not lost, the expiry job files it as a ticket."""
    platform, seat_port = stack
    assert platform.http("/api/v1/seats/1001/login", method="POST").status in (200, 409)
    assert platform.http("/api/v1/seats/1001/ready", method="POST").status in (200, 409)  # 409: ready already

    def ready() -> bool:
        return any(s["seat"] == "1001" and s["state"] == "ready" for s in platform.http("/api/v1/seats").body["seats"])

    wait_for("1001 ready", ready)
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=seat_port)
    province = SippServer(scenario(RINGING_PEER), port=PROVINCE_PORT, ip=PROVINCE_HOST)
    caller = SippCall(
        platform.config.sip.port,
        scenario(INVITE, ANSWERED, pause(10_000), CALLER_HANGS_UP),  # gives up while the province rings
        caller="13800004444",
        timeout_s=90,
    )
    talking = platform.wait_call(
        lambda c: c["caller"] == "138****4444" and c["seat"] == "1001" and c["state"] != "ended", "the caller on 1001"
    )
    transfer = platform.http(
        f"/api/v1/calls/{talking['call_id']}/transfer", method="POST", body={"to": "province", "note": "省级部门事项"}
    )
    assert transfer.status == 202, transfer.body
    token = transfer.body["handoff"]["token"]
    assert caller.wait().ok
    assert seat.wait().ok
    assert province.wait().ok  # it rang there, and was cancelled when the caller left

    def filed() -> list[dict[str, Any]]:
        return [t for t in platform.http("/api/v1/tickets").body["tickets"] if t["tags"].get("handoff") == token]

    tickets = wait_for("the hand-off's ticket", filed, timeout_s=60)
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket["call_id"] == talking["call_id"]
    assert (ticket["source"], ticket["tags"]["handoff_expired"]) == ("transfer", "province")
    assert "省级部门事项" in json.dumps(ticket, ensure_ascii=False)
    assert ticket["caller"] == "138****4444"
    wait_for("the hand-off settled", lambda: platform.http(f"/api/v1/handoffs/{token}").status == 200)
    assert filed() == tickets  # never twice


def test_redis_restarts_with_its_data_and_a_kill_after_a_message_leaves_one_ticket(
    stack: tuple[PlatformUnderTest, int], tmp_path: Path
) -> None:
    """Redis (AOF, appendfsync everysec: hotline/redis_process.py) stopped and started keeps the
    call records, tickets and the callback list; killed (SIGKILL) right after a message, the
    message still ends as exactly one ticket (the spool rescan files what the last second lost)."""
    platform, _ = stack
    calls_before = {c["call_id"]: c for c in platform.calls()}
    tickets_before = platform.http("/api/v1/tickets").body["tickets"]
    callbacks_before = platform.http("/api/v1/callbacks").body["callbacks"]
    assert len(calls_before) >= 4 and len(tickets_before) >= 2
    assert any(c["caller"] == "13800001111" for c in callbacks_before)  # left in the fallback greeting

    platform.redis.stop()
    platform.wait_component("redis", "down", timeout_s=15)
    platform.redis.start()
    platform.wait_component("redis", "up", timeout_s=15)
    assert {c["call_id"]: c for c in platform.calls()} == calls_before
    assert platform.http("/api/v1/tickets").body["tickets"] == tickets_before
    assert platform.http("/api/v1/callbacks").body["callbacks"] == callbacks_before

    # nobody at work: the queue sends the caller on to a message at once
    assert platform.http("/api/v1/seats/1001/pause", method="POST", body={}).status == 200
    speech = tone_wav(tmp_path / "tone.wav", seconds=1)
    result = run_sipp(
        platform.config.sip.port,
        scenario(INVITE, ANSWERED, stream_audio(speech, loops=-1), pause(8000), CALLER_HANGS_UP),
        caller="13800005555",
        timeout_s=60,
    )
    assert result.ok, result.errors
    record = platform.wait_call(
        lambda c: c["caller"] == "138****5555" and c["state"] == "ended", "the message's record", timeout_s=60
    )
    assert record["outcome"] == "voicemail"
    platform.redis.kill()  # right after the message: what the last second wrote may be gone
    platform.wait_component("redis", "down", timeout_s=15)
    platform.redis.start()
    platform.wait_component("redis", "up", timeout_s=15)
    tickets = wait_for("the message's ticket", lambda: _tickets_of(platform, record["call_id"]), timeout_s=60)
    # no job left in flight (a job that outlived the kill would file again: it finds the ticket),
    # and the spool rescans (every second) find the ticket: nothing more can be filed
    client = redis.Redis.from_url(platform.redis.url)
    try:
        wait_for("no ASR job in flight", lambda: client.scard("hotline:asr:queued:kunming") == 0, timeout_s=60)
    finally:
        client.close()
    assert _tickets_of(platform, record["call_id"]) == tickets
    assert len(tickets) == 1


def _forget_in_redis(platform: PlatformUnderTest, call_id: str) -> None:
    """As if the controller had died before its writer saved anything of the call: its record
    and every index entry of it gone from Redis."""
    client = redis.Redis.from_url(platform.redis.url)
    try:
        client.delete(f"hotline:call:{call_id}")
        for key in client.scan_iter("hotline:*"):
            kind = client.type(key)
            if kind == b"zset":
                client.zrem(key, call_id)
            elif kind == b"set":
                client.srem(key, call_id)
        assert client.get(f"hotline:call:{call_id}") is None
    finally:
        client.close()


def test_a_call_whose_record_never_reached_redis_is_recorded_from_its_hang_up_line(
    stack: tuple[PlatformUnderTest, int],
) -> None:
    """The controller is SIGKILLed while a caller talks with a seat, and nothing of the call is
    in Redis (as when it dies within its writer's 50 ms of the call's first step). The caller's
    hang-up line (e2: with the number Asterisk saw) makes the record when the controller is back:
    the call, its caller (masked in the list, whole in Redis), its end and cause, ``lost_track``."""
    platform, seat_port = stack
    assert platform.http("/api/v1/seats/1001/login", method="POST").status in (200, 409)
    assert platform.http("/api/v1/seats/1001/ready", method="POST").status in (200, 409)

    def ready() -> bool:
        return any(s["seat"] == "1001" and s["state"] == "ready" for s in platform.http("/api/v1/seats").body["seats"])

    wait_for("1001 ready", ready)
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=seat_port)
    caller = SippCall(
        platform.config.sip.port,
        scenario(INVITE, ANSWERED, stays_until_released(90_000), CALLER_HANGS_UP),
        caller="13800006666",
        timeout_s=120,
    )
    talking = platform.wait_call(
        lambda c: c["caller"] == "138****6666" and c["seat"] == "1001" and c["state"] != "ended", "the caller on 1001"
    )
    call_id = talking["call_id"]
    platform.stop_controller(sig=signal.SIGKILL)
    _forget_in_redis(platform, call_id)
    caller.talk_on(1)  # still talking with the seat (Asterisk holds the call), then hangs up
    assert caller.wait().ok
    assert seat.wait().ok

    line_file = platform.config.paths.spool_dir / "fallback" / f"ce-{call_id}.end"
    line = wait_for("the caller's hang-up line", lambda: line_file.read_text("ascii") if line_file.exists() else None)
    fields = line.split("|")
    assert (fields[0], fields[1], fields[3], fields[4], fields[5]) == ("e2", call_id, "16", "13800006666", "end"), line
    assert stat.S_IMODE(line_file.stat().st_mode) & 0o077 == 0  # the caller's number: Asterisk's user's alone
    assert stat.S_IMODE(line_file.parent.stat().st_mode) & 0o077 == 0

    platform.start_controller()
    record = platform.wait_call(
        lambda c: c["call_id"] == call_id and c["state"] == "ended", "the record made from its line", timeout_s=60
    )
    assert record["caller"] == "138****6666"
    assert record["outcome"] == "lost_track" and record["ended_at_estimated"] is False
    assert record["tags"]["end_written_by"] == "asterisk"
    assert record["hangup_cause"] == "Normal Clearing"
    assert abs(_seconds(record["started_at"], talking["started_at"])) <= 1.5  # the uniqueid's epoch
    assert abs(datetime.fromisoformat(record["ended_at"]).timestamp() - float(fields[2])) < 0.002
    assert platform.stored_call(call_id)["caller"] == "13800006666"
    wait_for("the line deleted once its record is saved", lambda: not line_file.exists())
    log = platform.controller_log_text()
    made = [entry for entry in log.splitlines() if '"calls.recorded_from_end_line"' in entry]
    assert len(made) == 1 and '"caller": "138****6666"' in made[0], made
    assert "13800006666" not in log  # masked in every line
