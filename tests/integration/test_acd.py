"""Our ACD on a real Asterisk: SIPp callers queue, SIPp seats (static contacts) answer.

Each test starts its own platform: seat sets differ, and the order seats were logged in is
what longest-idle works from.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from telephony.dialplan_names import BOUND_WAIT_S, CALLER_AWAY_MAX_WAITS, HOLD_CONTEXT, SEATED_VARIABLE
from tests.support.audio import duration_s
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    HOTLINE_HANGS_UP,
    INVITE,
    KEEP_DIALOG,
    OK_WITH_SDP,
    REJECTING_PEER,
    RINGING,
    RINGING_PEER,
    UAS_BYE,
    SippCall,
    SippServer,
    answering_peer,
    dtmf,
    pause,
    scenario,
)

pytestmark = pytest.mark.integration

PlatformFactory = Callable[..., PlatformUnderTest]


@pytest.fixture
def make_platform(tmp_path: Path) -> Iterator[PlatformFactory]:
    started: list[PlatformUnderTest] = []

    def make(
        seats: dict[str, dict[str, Any]],
        acd: dict[str, Any],
        edit: Callable[[str], str] = lambda t: t,
        dialplan: str = "queue",
        sip: dict[str, Any] | None = None,
        *,
        caller_lists: str = "",
    ) -> PlatformUnderTest:
        """``seats``: id → extra seat fields; seats with a ``port`` get a static contact there."""
        seat_list = []
        for seat_id, extra in seats.items():
            entry = {"id": seat_id, "name": seat_id, **{k: v for k, v in extra.items() if k != "port"}}
            if "port" in extra:
                entry["contact"] = f"sip:{seat_id}@127.0.0.1:{extra['port']}"
            seat_list.append(entry)
        platform = PlatformUnderTest(
            tmp_path / f"platform{len(started)}",
            overrides={"seats": seat_list, "acd": {"wrapup_s": 0, "ring_timeout_s": 4, **acd}, "sip": sip or {}},
            dialplan=dialplan,
        )
        platform.install_dialplan(dialplan, edit)
        if caller_lists:  # beside the dialplan, as dialplans/caller_lists.yaml
            (platform.dialplan_file.parent / "caller_lists.yaml").write_text(caller_lists, encoding="utf-8")
        started.append(platform)
        platform.start_all()
        return platform

    yield make
    leftovers = []
    for platform in started:
        try:
            platform.assert_no_channels_left()  # every ACD test: nothing left ringing, held or bridged
        except AssertionError as exc:
            leftovers.append(str(exc))
        finally:
            platform.stop_all()
    assert not leftovers, "\n".join(leftovers)


def login(platform: PlatformUnderTest, *seat_ids: str) -> None:
    """Log seats in one after another: the first is then the longest idle."""
    previous = ""
    for seat_id in seat_ids:
        assert platform.http(f"/api/v1/seats/{seat_id}/login", method="POST").status == 200
        since = str(wait_for(f"seat {seat_id} idle", partial(seat_since, platform, seat_id)))
        if previous:
            assert datetime.fromisoformat(since) > datetime.fromisoformat(previous), (previous, since)
        previous = since


def seat(platform: PlatformUnderTest, seat_id: str) -> dict[str, Any]:
    seats = platform.http("/api/v1/seats").body["seats"]
    found: dict[str, Any] = next(s for s in seats if s["seat"] == seat_id)
    return found


def seat_since(platform: PlatformUnderTest, seat_id: str) -> str | None:
    since: str | None = seat(platform, seat_id)["since"]
    return since


def is_queued(number: str, call: dict[str, Any]) -> bool:
    return call["caller"] == number and bool(call.get("queued_at"))


def queue(platform: PlatformUnderTest, name: str = "general") -> dict[str, Any]:
    found: dict[str, Any] = next(q for q in platform.http("/api/v1/queues").body["queues"] if q["queue"] == name)
    return found


def caller_number(index: int) -> str:
    return f"1390000{index:04d}"


def masked(number: str) -> str:
    return number[:3] + "****" + number[-4:]


def place_calls(platform: PlatformUnderTest, count: int, first: int, in_order: bool = True) -> list[SippCall]:
    """``count`` callers, each staying until the hotline hangs up; ``in_order``: each one is
    placed once the one before is in the queue (its record has ``queued_at``), so the queue's
    order is the callers' order."""
    calls = []
    for index in range(first, first + count):
        calls.append(
            SippCall(
                platform.config.sip.port,
                scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP),
                caller=caller_number(index),
                timeout_s=90,
            )
        )
        if in_order:
            number = masked(caller_number(index))
            platform.wait_call(partial(is_queued, number), f"{number} queued")
    return calls


def ended_records(platform: PlatformUnderTest, first: int, count: int) -> list[dict[str, Any]]:
    wanted = {masked(caller_number(i)) for i in range(first, first + count)}

    def probe() -> list[dict[str, Any]] | None:
        mine = [c for c in platform.calls() if c["caller"] in wanted and c["state"] == "ended"]
        return mine if len(mine) == count else None

    records = wait_for(f"{count} ended call records", probe, timeout_s=90, interval_s=0.5)
    return sorted(records, key=lambda c: c["queued_at"])


def test_two_seats_five_callers_in_arrival_order(make_platform: PlatformFactory) -> None:
    ports = {"1001": free_tcp_and_udp_port(), "1002": free_tcp_and_udp_port()}
    platform = make_platform({seat_id: {"port": port} for seat_id, port in ports.items()}, {"announce_every_s": 2})
    servers = {
        seat_id: SippServer(scenario(answering_peer(talk_ms=4500, hang_up=True)), port=port, calls=5)
        for seat_id, port in ports.items()
    }
    login(platform, "1001", "1002")
    # each caller is placed once the one before is queued; a talk far longer than the welcome
    # keeps the later callers waiting past announce_every_s behind the first two
    calls = place_calls(platform, 5, first=1)
    for call in calls:
        assert call.wait().ok

    records = ended_records(platform, 1, 5)
    assert [r["caller"] for r in records] == [masked(caller_number(i)) for i in range(1, 6)]
    assert all(r["outcome"] == "answered" for r in records)
    # arrival order: each caller reached a seat no later than everyone who came after
    answered = [r["seat_answered_at"] for r in records]
    assert answered == sorted(answered)
    # longest idle: 1001 logged in first, so it takes the first caller; 1002 the second
    assert [r["seat"] for r in records[:2]] == ["1001", "1002"]
    assert all(r["has_call_recording"] for r in records)
    taken = {seat_id: seat(platform, seat_id)["calls_taken"] for seat_id in ports}
    assert sum(taken.values()) == 5
    assert taken == {sid: sum(1 for r in records if r["seat"] == sid) for sid in ports}
    assert {sid: seat(platform, sid)["answered_24h"] for sid in ports} == taken
    assert all(seat(platform, sid)["average_talk_24h_s"] >= 2.0 for sid in ports)
    assert all(seat(platform, seat_id)["state"] == "ready" for seat_id in ports)

    general = queue(platform)
    assert general["offered"] == 5
    assert general["answered"] == 5
    assert general["abandoned"] == 0
    # the later callers waited behind others and heard where they stood
    log = platform.controller_log_text()
    assert '"acd.announcement"' in log
    # the seats hung up first, and this dialplan has nothing after the seat (no after_seat entry,
    # no browser phone to lose): Asterisk released each caller without an after-seat AGI session
    assert '"ivr.after_seat' not in log
    for server in servers.values():
        server.stop()


def test_failing_seats_do_not_cost_callers(make_platform: PlatformFactory) -> None:
    """One seat never answers, one rejects, one is not registered: the one that works serves all."""
    good, silent, rejecting = free_tcp_and_udp_port(), free_tcp_and_udp_port(), free_tcp_and_udp_port()
    platform = make_platform(
        {
            "1001": {"port": good},
            "1002": {"port": silent},
            "1003": {"port": rejecting},
            "1004": {"secret": "never-registers-1004"},
        },
        {"max_missed_offers": 1},
    )
    working = SippServer(scenario(answering_peer(talk_ms=1500, hang_up=True)), port=good, calls=3)
    never = SippServer(scenario(RINGING_PEER), port=silent)
    refuses = SippServer(scenario(REJECTING_PEER), port=rejecting)
    login(platform, "1002", "1003", "1004", "1001")  # the failing seats are the longest idle
    calls = place_calls(platform, 3, first=11)
    for call in calls:
        assert call.wait().ok
    assert never.wait().ok  # it rang and was cancelled after the ring timeout
    assert refuses.wait().ok

    records = ended_records(platform, 11, 3)
    assert [r["seat"] for r in records] == ["1001", "1001", "1001"]
    assert all(r["outcome"] == "answered" for r in records)
    for seat_id in ("1002", "1003", "1004"):
        state = seat(platform, seat_id)
        assert state["state"] == "not_ready", (seat_id, state)
        assert state["reason"] == "no answer"
    working.stop()


def test_skills_first_then_relaxed(make_platform: PlatformFactory) -> None:
    plain, yi_speaker = free_tcp_and_udp_port(), free_tcp_and_udp_port()
    platform = make_platform(
        {"1001": {"port": plain}, "1002": {"port": yi_speaker, "skills": ["yi"]}},
        {"relax_skills_after_s": 4},
        edit=lambda text: text.replace("queue: general,", "queue: general, skills: [yi],"),
    )
    servers = [
        SippServer(scenario(answering_peer(talk_ms=1000, hang_up=True)), port=port, calls=2)
        for port in (plain, yi_speaker)
    ]
    login(platform, "1001", "1002")  # 1001 is the longest idle, but cannot speak Yi
    (first,) = place_calls(platform, 1, first=21)
    assert first.wait().ok
    (record,) = ended_records(platform, 21, 1)
    assert record["seat"] == "1002"
    assert record["tags"]["skills"] == "yi"

    # with the Yi speaker away, the caller waits for the relaxation, then any seat will do
    assert platform.http("/api/v1/seats/1002/pause", method="POST").status == 200
    (second,) = place_calls(platform, 1, first=22)
    assert second.wait().ok
    (record,) = ended_records(platform, 22, 1)
    assert record["seat"] == "1001"
    waited = _seconds_between(record["queued_at"], record["seat_answered_at"])
    assert waited >= 4
    for server in servers:
        server.stop()


def slow_answering_seat(ring_ms: int, talk_ms: int) -> str:
    """A seat whose user lets the phone ring ``ring_ms`` before answering, talks, hangs up. A
    CANCEL meanwhile (the offer withdrawn) fails the scenario."""
    answer = f'\n  <recv request="INVITE" rrs="true">{KEEP_DIALOG}</recv>\n' + RINGING + pause(ring_ms)
    return answer + OK_WITH_SDP + '  <recv request="ACK"/>\n' + pause(talk_ms) + UAS_BYE + '  <recv response="200"/>\n'


def metric(platform: PlatformUnderTest, name: str) -> float:
    """One unlabelled sample of /metrics."""
    body = platform.http("/metrics", token=None).body
    found = re.search(rf"^{re.escape(name)} (\S+)$", body, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


def test_a_ringing_offer_binds_the_next_caller_when_its_caller_leaves(make_platform: PlatformFactory) -> None:
    """Late binding: the seat's phone rings for caller A; A leaves while it rings; the same
    ringing offer (one Originate, the phone never stops ringing) connects caller B."""
    port = free_tcp_and_udp_port()
    platform = make_platform({"1001": {"port": port}}, {"ring_timeout_s": 30})
    # the ring time is room for the test's steps below (each waited on), not their clock
    seat_phone = SippServer(scenario(slow_answering_seat(ring_ms=12000, talk_ms=1000)), port=port)
    login(platform, "1001")
    offers, missed = metric(platform, "hotline_acd_offers_total"), metric(platform, "hotline_acd_offers_missed_total")
    (caller_a,) = place_calls(platform, 1, first=41, in_order=False)
    wait_for("the seat's phone ringing for A", lambda: seat(platform, "1001")["state"] == "ringing")
    (caller_b,) = place_calls(platform, 1, first=42, in_order=False)
    wait_for("A and B waiting", lambda: queue(platform)["waiting_now"] == 2)
    record_a = platform.wait_call(lambda c: c["caller"] == masked(caller_number(41)), "A's record")
    platform.asterisk.cli(f"channel request hangup {platform.stored_call(record_a['call_id'])['channel']}")
    assert caller_a.wait().ok
    assert caller_b.wait().ok
    assert seat_phone.wait().ok  # rang once, never cancelled, answered, talked

    record_a, record_b = ended_records(platform, 41, 2)
    assert (record_a["outcome"], record_a["seat"]) == ("abandoned", "")
    assert (record_b["outcome"], record_b["seat"]) == ("answered", "1001")
    assert metric(platform, "hotline_acd_offers_total") == offers + 1  # one Originate for the two callers
    assert metric(platform, "hotline_acd_offers_missed_total") == missed
    log = [json.loads(line) for line in platform.controller_log_text().splitlines() if line.startswith("{")]
    assert [e["call_id"] for e in log if e.get("event") == "acd.offer"] == [record_a["call_id"]]
    repointed = [e for e in log if e.get("event") == "acd.offer_repointed"]
    assert [e["call_id"] for e in repointed] == [record_b["call_id"]]
    connected = [e for e in log if e.get("event") == "acd.connected"]
    assert [(e["call_id"], e["seat"]) for e in connected] == [(record_b["call_id"], "1001")]


def test_controller_killed_with_callers_waiting(make_platform: PlatformFactory) -> None:
    port = free_tcp_and_udp_port()
    platform = make_platform({"1001": {"port": port}}, {})
    server = SippServer(scenario(answering_peer(talk_ms=5000, hang_up=True)), port=port, calls=3)
    login(platform, "1001")
    calls = place_calls(platform, 3, first=31)  # the first talks, two wait
    wait_for("the first caller on the seat", lambda: seat(platform, "1001")["state"] == "on_call")
    wait_for("two callers waiting", lambda: queue(platform)["waiting_now"] == 2)
    assert platform.controller is not None
    platform.controller.send_signal(signal.SIGKILL)
    platform.controller.wait()
    platform.controller = None
    time.sleep(2)  # callers hear music meanwhile: Asterisk holds them
    platform.start_controller()
    for call in calls:
        assert call.wait().ok  # nobody was dropped: each call ended with the hotline's BYE

    records = ended_records(platform, 31, 3)
    assert [r["outcome"] for r in records] == ["answered", "answered", "answered"]
    assert [r["seat"] for r in records] == ["1001", "1001", "1001"]
    assert "acd.resynced" in platform.controller_log_text()
    server.stop()


def test_feature_codes_from_the_seat_phone(make_platform: PlatformFactory) -> None:
    port = free_tcp_and_udp_port()
    platform = make_platform({"1001": {"port": port}}, {})
    sip_port = platform.config.sip.port
    codes = (
        ("*21", "ready"),
        ("*2305", "not_ready"),
        ("*24", "ready"),
        # what follows *23 reaches the AGI URL as digits only: no '&action=…' of the seat's own
        ("*2307&action=logout", "not_ready"),
        ("*22", "logged_out"),
    )
    for code, expected in codes:
        # from the phone's own contact address and port: that is how a seat without a password is known
        call = SippCall(
            sip_port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), number=code, caller="1001", local_port=port
        )
        assert call.wait().ok, code
        assert seat(platform, "1001")["state"] == expected, code
    assert seat(platform, "1001")["reason"] == ""
    events = platform.controller_log_text()
    assert '"reason": "code 05"' in events
    assert '"reason": "code 07"' in events


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def test_callback_keeps_the_place_and_the_seat_calls_back(make_platform: PlatformFactory) -> None:
    seat_port, carrier_port = free_tcp_and_udp_port(), free_tcp_and_udp_port()
    platform = make_platform(
        {"1001": {"port": seat_port}},
        {},
        dialplan="callback",
        sip={"trunks": {"carrier": {"host": "127.0.0.1", "port": carrier_port}}},
    )
    seat_phone = SippServer(scenario(answering_peer(talk_ms=6000, hang_up=True)), port=seat_port, calls=2)
    citizen_phone = SippServer(scenario(answering_peer(talk_ms=1000, hang_up=True)), port=carrier_port)
    login(platform, "1001")
    (first,) = place_calls(platform, 1, first=41)  # talks with 1001 for 6 s
    welcome_ms = int(duration_s(platform.config.paths.runtime_dir / "prompts" / "ivr" / "welcome.wav") * 1000)
    waits = SippCall(
        platform.config.sip.port,
        scenario(INVITE, ANSWERED, pause(welcome_ms + 4000 + 1200), dtmf("1"), HOTLINE_HANGS_UP),
        caller=caller_number(42),
        timeout_s=60,
    )
    assert waits.wait().ok  # max wait, the offer, key 1, the confirmation, released
    assert first.wait().ok
    assert citizen_phone.wait().ok  # 1001, free again, called the second caller back

    second = platform.wait_call(
        lambda c: c["caller"] == masked(caller_number(42)) and c["tags"].get("callback") == "answered",
        "the callback on the second caller's record",
    )
    assert second["outcome"] == "callback"
    assert second["seat"] == "1001"
    assert second["digits"] == ["offer=1"]
    assert second["has_call_recording"]
    seat_phone.stop()


def test_a_dialect_caller_reaches_the_dialect_seat_and_a_blocked_caller_hears_why(
    make_platform: PlatformFactory,
) -> None:
    """Key 9 tags language: dialect; the queue routes on it: the dialect seat answers although
    the plain seat is free and idle longer. A number on the nuisance list hears the prompt and
    is hung up, with outcome ``blocked`` and the list on the record."""
    ports = {"1001": free_tcp_and_udp_port(), "1002": free_tcp_and_udp_port()}
    nuisance = caller_number(99)
    platform = make_platform(
        {"1001": {"port": ports["1001"]}, "1002": {"port": ports["1002"], "skills": ["dialect"]}},
        {"relax_skills_after_s": 600},
        dialplan="routing",
        caller_lists=f'lists:\n  nuisance: {{name: 骚扰来电, action: block, numbers: ["{nuisance}"]}}\n',
    )
    plain = SippServer(scenario(answering_peer(talk_ms=1500, hang_up=True)), port=ports["1001"])
    dialect = SippServer(scenario(answering_peer(talk_ms=1500, hang_up=True)), port=ports["1002"])
    login(platform, "1001", "1002")  # 1001 is the longest idle: a plain caller would go there
    prompts = platform.config.paths.runtime_dir / "prompts" / "ivr"
    in_menu_ms = int(duration_s(prompts / "menu.wav") * 1000) + 500
    caller = SippCall(
        platform.config.sip.port,
        scenario(INVITE, ANSWERED, pause(in_menu_ms), dtmf("9"), HOTLINE_HANGS_UP),
        caller=caller_number(1),
        timeout_s=60,
    )
    assert caller.wait().ok
    assert dialect.wait().ok
    record = platform.wait_call(
        lambda c: c["caller"] == masked(caller_number(1)) and c["state"] == "ended", "the dialect call"
    )
    assert (record["seat"], record["outcome"]) == ("1002", "answered")
    assert record["tags"]["language"] == "dialect" and record["tags"]["skills"] == "dialect"
    assert seat(platform, "1001")["calls_taken"] == 0  # never offered: it was free all along
    assert not plain.finished  # 1001 was rung for nothing
    plain.stop()

    blocked = SippCall(platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller=nuisance)
    assert blocked.wait().ok  # the hotline hung up (after the prompt): no dead air, no failed call
    record = platform.wait_call(lambda c: c["caller"] == masked(nuisance) and c["state"] == "ended", "the blocked call")
    assert record["outcome"] == "blocked"
    assert (record["tags"]["caller_list"], record["tags"]["blocked_by"]) == ("nuisance", "nuisance")
    assert record["ivr_path"] == ["check"] and record["queue"] == ""
    answered, ended = (datetime.fromisoformat(record[k]) for k in ("answered_at", "ended_at"))
    assert (ended - answered).total_seconds() >= duration_s(prompts / "blocked.wav") * 0.9  # the prompt played
    log = platform.controller_log.read_text(encoding="utf-8")
    assert "ivr.caller_list_match" in log and masked(nuisance) in log and nuisance not in log


def _hold_line(platform: PlatformUnderTest) -> list[str] | None:
    """The one caller in the hold context (``core show channels concise`` fields), if any."""
    lines = [line.split("!") for line in platform.channels()]
    held = [fields for fields in lines if len(fields) > 6 and fields[1] == HOLD_CONTEXT]
    return held[0] if len(held) == 1 else None


def _holding(platform: PlatformUnderTest, hold_slice: str) -> list[str] | None:
    """That caller, when it waits in a holding bridge with this slice (BridgeWait's S())."""
    line = _hold_line(platform)
    return line if line is not None and line[5] == "BridgeWait" and line[6].endswith(hold_slice) else None


def test_a_bound_caller_whose_hold_slice_ends_waits_for_the_seat(make_platform: PlatformFactory) -> None:
    """The race that hung citizens up as a seat answered: the controller has set SEATED=1 on the
    caller (bound), the caller's hold slice ends before the seat's Bridge() took it. Forced
    here: SEATED=1 set as the controller sets it at binding while no seat is free (the seat is
    in wrap-up, so the queue stays staffed), slices of 1 s. The caller waits again in the
    holding bridge (the bound wait, no announcement) instead of being hung up, and the seat
    that answers next takes it from there: a conversation, recorded answered."""
    port = free_tcp_and_udp_port()
    platform = make_platform({"1001": {"port": port}}, {"announce_every_s": 1, "wrapup_s": 600})
    server = SippServer(scenario(answering_peer(talk_ms=1000, hang_up=True)), port=port, calls=2)
    login(platform, "1001")
    (first,) = place_calls(platform, 1, first=61)  # the seat's first call: then wrap-up
    assert first.wait().ok
    wait_for("the seat in wrap-up", lambda: seat(platform, "1001")["state"] == "wrap_up")

    (caller,) = place_calls(platform, 1, first=62)
    held = wait_for("the caller in the holding bridge", partial(_holding, platform, "S(1)"))
    platform.asterisk.cli(f"dialplan set chanvar {held[0]} {SEATED_VARIABLE} 1")
    # its 1 s slice ends with SEATED=1 and no seat's Bridge(): the old dialplan hung it up here
    bound = wait_for("the caller in the bound wait", partial(_holding, platform, f"S({BOUND_WAIT_S})"), 60)
    assert bound[0] == held[0]
    assert queue(platform)["waiting_now"] == 1  # the controller still has it in line

    assert platform.http("/api/v1/seats/1001/ready", method="POST").status == 200
    assert caller.wait().ok  # the seat took it and hung up after talking: the hotline's BYE
    assert server.wait().ok
    _, record = ended_records(platform, 61, 2)
    assert (record["outcome"], record["seat"]) == ("answered", "1001")
    assert record["has_call_recording"]
    log = platform.controller_log_text()
    assert '"acd.left_at_bridge"' not in log
    assert seat(platform, "1001")["calls_taken"] == 2


def _announcing(platform: PlatformUnderTest) -> list[str] | None:
    """The caller in the hold context while it runs the announcement (its application is AGI)."""
    line = _hold_line(platform)
    return line if line is not None and line[5] == "AGI" else None


def test_a_seat_ready_while_its_caller_hears_the_announcement_takes_it_from_the_hold(
    make_platform: PlatformFactory,
) -> None:
    """A seat becomes free exactly while the one waiting caller hears its announcement (the
    announce AGI runs; the caller is not in the holding bridge). The seat's Bridge() must not take
    the caller over by masquerade (Asterisk's ast_channel_yank: a ``Surrogate/`` channel, the
    race that left such husks up for good); the caller is taken from the holding bridge: a
    conversation, recorded answered, one channel for the caller throughout, and no phantom call
    (the surrogate's hang-up line, recorded lost_track, on the old dialplan)."""
    port = free_tcp_and_udp_port()
    platform = make_platform({"1001": {"port": port}}, {"announce_every_s": 1, "wrapup_s": 600})
    short = SippServer(scenario(answering_peer(talk_ms=500, hang_up=True)), port=port)
    login(platform, "1001")
    (first,) = place_calls(platform, 1, first=71)  # the seat's first call: then wrap-up
    assert first.wait().ok
    assert short.wait().ok
    wait_for("the seat in wrap-up", lambda: seat(platform, "1001")["state"] == "wrap_up")
    # the seat talks longer than it may wait for its caller (CALLER_AWAY_MAX_WAITS × 0.1 s): the
    # seat hangs up only after a conversation, however slow the box
    server = SippServer(scenario(answering_peer(talk_ms=CALLER_AWAY_MAX_WAITS * 100 + 1000, hang_up=True)), port=port)

    (caller,) = place_calls(platform, 1, first=72)
    announcing = wait_for("the caller hearing its announcement", partial(_announcing, platform), 60, 0.02)
    assert platform.http("/api/v1/seats/1001/ready", method="POST").status == 200
    assert caller.wait().ok  # the seat took it and hung up after talking: the hotline's BYE
    assert server.wait().ok
    _, record = ended_records(platform, 71, 2)
    assert (record["outcome"], record["seat"]) == ("answered", "1001")
    assert platform.stored_call(record["call_id"])["channel"] == announcing[0]
    log = (platform.config.paths.runtime_dir / "asterisk" / "log" / "messages.log").read_text(errors="replace")
    assert "Surrogate/" not in log
    controller_log = platform.controller_log_text()
    assert '"acd.left_at_bridge"' not in controller_log
    # the surrogate's h extension wrote an end line under a uniqueid of its own: a phantom call
    # recorded from it (outcome lost_track, no caller) beside the real one
    assert '"calls.recorded_from_end_line"' not in controller_log
    assert not [c for c in platform.calls() if c.get("outcome") == "lost_track"]
    assert seat(platform, "1001")["calls_taken"] == 2
