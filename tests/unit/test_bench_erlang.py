"""The Erlang-A bench's pure parts: arrivals, SIPp injection, the AMI bookkeeping and the figures."""

from __future__ import annotations

import itertools
import math
import random
import statistics
import threading
from pathlib import Path
from typing import Any

import pytest

from bench.e2e_ami import WANTED
from bench.erlang_ami import ErlangRecorder, seat_of
from bench.erlang_load import CREATE_PER_S, Shape, caller_scenario, draw_callers, injection_file
from bench.erlang_stats import CallerLeg, SeatLeg, Window, freed_seat_gaps, pooled, step_figures
from telephony.dialplan_names import HOLD_CONTEXT


def test_capacity_counts_ring_and_mean_lognormal_talk() -> None:
    shape = Shape(seats=8, ring_s=1.0, talk_median_s=6.0, talk_sigma=0.5, patience_mean_s=30)
    assert shape.mean_talk_s == pytest.approx(6.0 * math.exp(0.125))
    assert shape.capacity == pytest.approx(8 / (1.0 + 6.0 * math.exp(0.125)))


def test_arrivals_are_poisson_and_patience_exponential() -> None:
    callers = draw_callers(random.Random(7), rate=2.0, seconds=2000, patience_mean_s=30, prefix="1390101")
    gaps = [b.arrival_s - a.arrival_s for a, b in itertools.pairwise(callers)]
    assert len(callers) == pytest.approx(4000, rel=0.1)
    assert statistics.fmean(gaps) == pytest.approx(0.5, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(0.5, rel=0.1)  # exponential: sd = mean
    assert statistics.fmean(c.patience_s for c in callers) == pytest.approx(30, rel=0.1)
    assert all(len(c.number) == 11 and c.number.isdigit() for c in callers)
    assert len({c.number for c in callers}) == len(callers)
    again = draw_callers(random.Random(7), rate=2.0, seconds=2000, patience_mean_s=30, prefix="1390101")
    assert again == callers  # the same draws for both ACDs of a repeat


def test_injection_delays_land_each_call_on_its_arrival_time() -> None:
    callers = draw_callers(random.Random(3), rate=1.0, seconds=60, patience_mean_s=30, prefix="1390202")
    lines = injection_file(callers).splitlines()
    assert lines[0] == "SEQUENTIAL"
    assert len(lines) == len(callers) + 1
    for index, (line, caller) in enumerate(zip(lines[1:], callers, strict=True)):
        number, delay = line.split(";")
        assert number == caller.number
        created_ms = index * 1000 / CREATE_PER_S
        assert int(delay) >= 0
        assert abs(created_ms + int(delay) - caller.arrival_s * 1000) <= 1 or int(delay) == 0


def test_caller_scenario_waits_then_calls_with_the_injected_number_and_never_hangs_up() -> None:
    xml = caller_scenario(Path("tone.wav"))
    assert xml.index('<pause variable="delay"/>') < xml.index("INVITE sip:")
    assert "[field0]" in xml and "[caller]" not in xml and "[caller_name]" not in xml
    assert "rtp_stream" in xml
    assert "BYE sip:" not in xml  # only the hotline (a seat or the bench's patience) ends a call


def test_seat_of_reads_seat_channels_only() -> None:
    assert seat_of("PJSIP/2003-0000001a") == "2003"
    assert seat_of("PJSIP/trunk-00000001") is None
    assert seat_of("Local/x@y-00000001;1") is None


class _Recorder(ErlangRecorder):
    """The bookkeeping without a socket: what would be sent is kept."""

    def __init__(self) -> None:  # no super(): no AMI connection
        self.callers, self.seats = {}, {}
        self.sent: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def _send(self, action: dict[str, str]) -> None:
        self.sent.append(action)


def _event(name: str, at: float, uniqueid: str, channel: str, **fields: Any) -> dict[str, str]:
    return {"event": name, "timestamp": str(at), "uniqueid": uniqueid, "channel": channel, **fields}


def test_recorder_marks_both_acds_and_hangs_up_only_waiting_callers_past_their_patience() -> None:
    recorder = _Recorder()
    for uid, number in (("a", "13900000001"), ("b", "13900000002"), ("c", "13900000003")):
        recorder.on_event(_event("Newchannel", 100.0, uid, f"PJSIP/trunk-{uid}", calleridnum=number))
    recorder.on_event(_event("QueueCallerJoin", 100.5, "a", "PJSIP/trunk-a"))  # app_queue
    # ours: the holding bridge (BridgeWait) is the queue entry; again after an announcement: the first counts
    recorder.on_event(_event("BridgeEnter", 100.5, "b", "PJSIP/trunk-b", bridgetechnology="holding_bridge"))
    recorder.on_event(_event("BridgeEnter", 103.0, "b", "PJSIP/trunk-b", bridgename=HOLD_CONTEXT))
    recorder.on_event(_event("BridgeEnter", 100.5, "c", "PJSIP/trunk-c", bridgetechnology="holding_bridge"))
    recorder.on_event(_event("Newchannel", 101.0, "s1", "PJSIP/2001-00000001"))
    recorder.on_event(_event("BridgeEnter", 102.0, "s1", "PJSIP/2001-00000001", bridgetechnology="simple_bridge"))
    recorder.on_event(_event("BridgeEnter", 102.0, "c", "PJSIP/trunk-c", bridgetechnology="simple_bridge"))
    patience = {"13900000001": 5.0, "13900000002": 10.0, "13900000003": 1.0}.get
    assert recorder.enforce_patience(patience, 105.4) == 0
    assert recorder.enforce_patience(patience, 105.6) == 1  # a: waited 5.1 s; b in the holding bridge: 5.1 s
    assert recorder.sent == [{"Action": "Hangup", "Channel": "PJSIP/trunk-a"}]
    assert recorder.enforce_patience(patience, 106.0) == 0  # asked once only
    assert recorder.enforce_patience(patience, 200.0) == 1  # b; c talks to a seat: never
    callers, seats = recorder.snapshot()
    by_number = {c.number: c for c in callers}
    assert by_number["13900000002"].bridged is None  # the holding bridge is not a seat
    assert by_number["13900000002"].queued == by_number["13900000003"].queued == 100.5
    assert "Newexten" not in WANTED  # production's disabledevents keeps it off; the stopwatch needs none
    assert by_number["13900000003"].bridged == 102.0
    assert seats == [SeatLeg("2001", 101.0, 102.0, None)]


def test_figures_of_a_step() -> None:
    window = Window(start=0.0, end=100.0, seats=2, capacity=0.2)
    callers = [
        CallerLeg("c1", "1", arrived=10, queued=10.5, bridged=12.5, ended=40),  # waited 2 s
        CallerLeg("c2", "2", arrived=20, queued=20.5, bridged=50.5, ended=80),  # waited 30 s
        CallerLeg("c3", "3", arrived=30, queued=30.5, ended=35, patience_hangup=True),
        CallerLeg("c4", "4", arrived=150, queued=150.5),  # after the window: not counted
    ]
    seats = [
        SeatLeg("2001", created=11.5, bridged=12.5, ended=40),
        SeatLeg("2001", created=49.5, bridged=50.5, ended=80),
        SeatLeg("2002", created=31, ended=35),  # rang for c3, who left: lost
    ]
    f = step_figures(callers, seats, window)
    assert (f.offered, f.answered, f.abandoned, f.other) == (3, 2, 1, 0)
    assert f.conversations == 2
    assert f.goodput == pytest.approx(2 / 100 / 0.2)
    assert f.abandon_share == pytest.approx(1 / 3)
    assert f.asa_s == pytest.approx(16.0)
    assert f.service_level == pytest.approx(1 / 3)  # within 15 s: c1 only, of 3 offered
    assert f.occupancy == pytest.approx((27.5 + 29.5) / 200)
    assert f.lost_ring_share == pytest.approx(4 / 200)
    assert (f.rings, f.lost_rings) == (3, 1)
    # 2001 freed at 40 while c2 waited and nothing rang for it: 9.5 s to its next ring; 2002,
    # freed at 35 while c2 waited, never rang again: counted up to the last event seen (150)
    assert sorted(freed_seat_gaps(seats, callers, window)) == [pytest.approx(9.5), pytest.approx(115)]
    both = pooled([f, f])
    assert (both.offered, both.answered, both.conversations) == (6, 4, 4)
    assert both.goodput == pytest.approx(f.goodput)
    assert both.wait_p99_s == pytest.approx(f.wait_p99_s)


def test_a_free_seat_while_another_seat_rings_for_the_only_waiting_caller_is_no_gap() -> None:
    window = Window(start=0.0, end=100.0, seats=2, capacity=0.2)
    callers = [CallerLeg("c1", "1", arrived=10, queued=10, bridged=21, ended=60)]
    seats = [
        SeatLeg("2001", created=0, bridged=1, ended=20.5),  # frees while 2002 rings for c1
        SeatLeg("2002", created=20, bridged=21, ended=60),
    ]
    assert freed_seat_gaps(seats, callers, window) == []


def test_seat_talk_comes_from_the_injection_file() -> None:
    from bench.erlang_load import InjectedTalk, draw_talks
    from tests.support.seat_phones import seat_scenario

    xml = seat_scenario(1000, None, InjectedTalk(1.0, 0.0), Path("tone.wav"))
    assert '<pause variable="talk"/>' in xml and "[field0]" in xml and 'distribution="lognormal"' not in xml
    talks = draw_talks(random.Random(5), median_s=6.0, sigma=0.5, count=4000)
    assert statistics.median(talks) == pytest.approx(6000, rel=0.05)
    assert talks == draw_talks(random.Random(5), median_s=6.0, sigma=0.5, count=4000)


class _Stack:
    """What Phase._stuck asks: the seats not ready and the callers waiting (-1: the API did not answer)."""

    def __init__(self, not_ready: list[int], waiting: list[int]) -> None:
        self._not_ready, self._waiting = not_ready, waiting

    def not_ready_seats(self) -> int:
        return self._not_ready.pop(0) if len(self._not_ready) > 1 else self._not_ready[0]

    def ours_waiting(self) -> int:
        return self._waiting.pop(0) if len(self._waiting) > 1 else self._waiting[0]


def test_stuck_never_reads_an_unanswered_count_as_clean() -> None:
    """An API that did not answer (-1) is no count: -1 seats plus 1 stuck caller is not 0 (clean)."""
    from types import SimpleNamespace

    from bench.erlang_a import Phase

    phase = SimpleNamespace(ours=True, stack=_Stack([-1], [1]))
    assert Phase._stuck(phase, settle_s=0.3) != 0  # type: ignore[arg-type]
    settled = SimpleNamespace(ours=True, stack=_Stack([2, 0], [1, 0]))
    assert Phase._stuck(settled, settle_s=2.0) == 0  # type: ignore[arg-type]  # the last events arrived
