"""Inbound with and without automated outbound calls, on one real platform (Asterisk, Redis, SIPp).

Issue 13's rule is "inbound first": 回访 and dispatch reminders must not cost a citizen waiting
to get in. This bench runs the same seats and the same inbound load through alternating phases,
WITHOUT outbound (``POST /api/v1/outbound/pause``) and WITH it (resumed, fed with tickets), and
compares the inbound figures of the two:

- inbound callers arrive as a Poisson process at ``--load`` × seat capacity (capacity = seats /
  (ring + mean talk)), one SIPp per caller streaming a tone all along, straight into the queue
  (bench/dialplans/queue.yaml); patience applies only while waiting (exponential, mean
  ``--patience-mean-s``): the bench hangs up, through Asterisk, a caller still waiting after it;
- seats are one SIPp UAS (tests/support/seat_phones.py) ringing ``--ring-ms``, talking a tone and
  hanging up after a lognormal talk time;
- outbound: ``outbound.enabled`` with the ``carrier`` trunk pointing at one SIPp UAS that plays
  every unit and citizen: it answers and presses 1 (RFC 4733) every ~1.4 s until the hotline
  hangs up. Before each WITH phase the bench files tickets into the tickets store — dispatched
  to the platform's units (a reminder each) and resolved with a citizen's number (a 回访 each);
  the controller's sweep plans the calls. ``--max-channels`` automated calls at once.

Each phase's first ``--settle-s`` are not counted (calls of the previous phase finish); a
caller counts in the phase they arrived in. Per phase: inbound offered, 15 s service level
(seat answered within 15 s of entering the queue / callers who entered), ASA, abandon %, the
outbound calls completed (signed + visited) per minute, the share of the controller's ticks
held by a waiting inbound caller, and the CPU of Asterisk + controller. Then the ratios
WITH / WITHOUT, pooled over the repeats. Figures go to docs/benchmarks.md.

Run: .venv/bin/python -m bench.outbound [--repeats 2] [--phase-s 135] [--seats 10] [--load 0.9]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import structlog
import yaml

from bench.e2e_stack import BENCH_DIALPLAN, cpu_seconds, seat_ids
from ivr.calendar import PlatformCalendar
from tests.support.audio import tone_wav
from tests.support.chaos import caller_scenario
from tests.support.dtmf import key_press_pcap
from tests.support.platform import REPO, PlatformUnderTest, wait_for
from tests.support.ports import free_media_port, free_tcp_and_udp_port
from tests.support.seat_phones import LognormalTalk, SeatPhones, stop_process
from tests.support.sipp import HOTLINE_HANGS_UP, OK_WITH_SDP, RINGING, SippCall, scenario
from tickets import machine
from tickets.model import Ticket, TicketCategory, TicketSource, TicketState
from tickets.store import INDEX, ticket_key

HOLD_ON_MS = 3_600_000  # callers hold on until a seat hangs up or the bench's patience hangs them up
SERVICE_LEVEL_S = 15.0
ALL_DAY = ["00:00-24:00"]
COMPLETED = ('result="signed"', 'result="visited"')


def pressing_peer(key: str = "1", presses: int = 40, every_ms: int = 1400) -> str:
    """A unit or a citizen behind the carrier: answers, then presses ``key`` every ``every_ms``
    until the hotline hangs up (a BYE is awaited between presses, never during a pause, so the
    call ends cleanly whenever it comes)."""
    body = '\n  <recv request="INVITE" rrs="true"/>\n' + RINGING + OK_WITH_SDP + '  <recv request="ACK"/>\n'
    body += f'  <recv request="BYE" timeout="{every_ms}" ontimeout="k0" next="bye"/>\n'
    for press in range(presses):
        pcap = key_press_pcap(key, press)
        body += f'  <label id="k{press}"/>\n  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
        body += f'  <recv request="BYE" timeout="{every_ms}" ontimeout="k{press + 1}" next="bye"/>\n'
    body += f'  <label id="k{presses}"/>\n  <recv request="BYE"/>\n'
    body += '  <label id="bye"/>\n' + HOTLINE_HANGS_UP.replace('<recv request="BYE"/>', "")
    return scenario(body)


class CarrierPeer:
    """One SIPp UAS behind the ``carrier`` trunk answering every outbound call."""

    def __init__(self, folder: Path) -> None:
        self.port = free_tcp_and_udp_port()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "carrier.xml").write_text(pressing_peer(), encoding="utf-8")
        command = [
            "sipp", "-sf", str(folder / "carrier.xml"), "-i", "127.0.0.1", "-p", str(self.port),
            "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-m", "10000000", "-nostdin",
            "-trace_err", "-error_file", str(folder / "carrier-errors.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        stop_process(self._proc)


@dataclass
class Phase:
    name: str  # "without" / "with"
    repeat: int
    started: float = 0.0  # monotonic
    counted_from: float = 0.0
    ended: float = 0.0
    callers: list[str] = field(default_factory=list)  # arrived while counted
    completed_before: float = 0.0
    completed_after: float = 0.0
    held_samples: int = 0
    samples: int = 0
    cpu_s: float = 0.0

    @property
    def outbound_per_min(self) -> float:
        return (self.completed_after - self.completed_before) / max((self.ended - self.started) / 60, 1e-9)


@dataclass(frozen=True)
class Inbound:
    offered: int
    answered: int
    within_sl: int
    abandoned: int
    waits: tuple[float, ...]  # of the answered, seconds

    @property
    def service_level(self) -> float:
        return self.within_sl / self.offered if self.offered else math.nan

    @property
    def asa_s(self) -> float:
        return sum(self.waits) / len(self.waits) if self.waits else math.nan

    @property
    def abandon_share(self) -> float:
        return self.abandoned / self.offered if self.offered else math.nan


def inbound_of(records: dict[str, dict[str, Any]], callers: list[str]) -> Inbound:
    offered = answered = within = abandoned = 0
    waits: list[float] = []
    for number in callers:
        record = records.get(number)
        if record is None or not record.get("queued_at"):
            offered += 1  # never seen in the queue: counted against the phase
            abandoned += 1
            continue
        offered += 1
        queued = datetime.fromisoformat(record["queued_at"])
        if record.get("seat_answered_at"):
            wait = (datetime.fromisoformat(record["seat_answered_at"]) - queued).total_seconds()
            answered += 1
            within += wait <= SERVICE_LEVEL_S
            waits.append(wait)
        elif record.get("outcome") != "voicemail":
            abandoned += 1
    return Inbound(offered, answered, within, abandoned, tuple(waits))


class OutboundBench:
    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.tone = tone_wav(root / "tone.wav", seconds=2, volume=0.2)
        talk = LognormalTalk(args.talk_median_s, args.talk_sigma)
        self.phones = SeatPhones(args.ring_ms, None, root / "seat-phones", talk=talk, voice=self.tone)
        self.carrier = CarrierPeer(root / "carrier")
        seats = seat_ids(args.seats)
        kind = {"workday_hours": ALL_DAY, "restday_hours": ALL_DAY, "holiday_hours": ALL_DAY, "ring_s": 20}
        self.platform = PlatformUnderTest(
            root / "platform",
            overrides={
                "seats": [{"id": s, "name": s, "contact": self.phones.contact_for(s)} for s in seats],
                "acd": {"wrapup_s": 0, "ring_timeout_s": 10, "auto_login": seats, "announce_every_s": 0},
                "logging": {"level": "warning", "format": "json"},
                "sip": {"trunks": {"carrier": {"host": "127.0.0.1", "port": self.carrier.port}}},
                "outbound": {
                    "enabled": True,
                    "max_channels": args.max_channels,
                    "tick_s": 1.0,
                    "sweep_interval_s": 2,
                    "reminder": {**kind, "max_attempts": 3, "retry_after_s": [60]},
                    "visit": {**kind, "max_attempts": 3, "retry_after_s": [60]},
                    "visit_comment_s": args.comment_s,
                },
            },
        )
        self.platform.dialplan_file.write_text(BENCH_DIALPLAN.read_text(encoding="utf-8"), encoding="utf-8")
        mean_talk_s = args.talk_median_s * math.exp(args.talk_sigma**2 / 2)
        self.capacity = args.seats / (args.ring_ms / 1000 + mean_talk_s)
        self.rate = args.load * self.capacity
        self.redis = redis.Redis.from_url(self.platform.redis.url)
        self.units = _units(self.platform.platform_id)
        self.phase: Phase | None = None
        self.patience_s: dict[str, float] = {}
        self.calls: list[SippCall] = []
        self.sip_failed = 0
        self.patience_hangups = 0
        self.tickets_filed = 0
        self.stop = threading.Event()

    # the load

    def arrivals(self) -> None:
        index = 0
        while not self.stop.wait(self.rng.expovariate(self.rate)):
            index += 1
            number = f"1380{index:07d}"
            self.patience_s[number] = self.rng.expovariate(1 / self.args.patience_mean_s)
            phase = self.phase
            if phase is not None and time.monotonic() >= phase.counted_from:
                phase.callers.append(number)
            xml = caller_scenario(self.tone, None, HOLD_ON_MS)
            self.calls.append(SippCall(self.platform.config.sip.port, xml, caller=number, timeout_s=HOLD_ON_MS / 1000))
            self.reap()

    def reap(self) -> None:
        for call in [c for c in self.calls if c.finished]:
            self.calls.remove(call)
            self.sip_failed += not call.wait().ok

    def patience(self) -> None:
        """Hang up, through Asterisk, the callers still waiting after their patience."""
        hung_up: set[str] = set()
        while not self.stop.wait(0.5):
            try:
                waiting = self.redis.hgetall(f"hotline:acd:waiting:{self.platform.platform_id}")
            except redis.RedisError:
                continue
            now = time.time()
            for raw in waiting.values():
                entry: dict[str, Any] = json.loads(raw)
                channel, caller = str(entry["channel"]), str(entry.get("caller", ""))
                patience = self.patience_s.get(caller)
                if patience is None or channel in hung_up or now - float(entry["entered_at"]) < patience:
                    continue
                hung_up.add(channel)
                self.platform.asterisk.cli(f"channel request hangup {channel}", check=False)
                self.patience_hangups += 1

    def monitor(self) -> None:
        """Once a second: is the outbound engine held by a waiting inbound caller?"""
        while not self.stop.wait(1.0):
            phase = self.phase
            try:
                status = self.platform.http("/api/v1/outbound").body
            except OSError:
                continue
            if phase is not None and isinstance(status, dict) and time.monotonic() >= phase.counted_from:
                phase.samples += 1
                phase.held_samples += status.get("held_by") == "inbound_waiting"

    # outbound's work

    def file_tickets(self, reminders: int, visits: int) -> None:
        """Dispatched tickets (a reminder each) and resolved ones (a 回访 each), into the tickets store."""
        calendar = PlatformCalendar()
        for n in range(reminders + visits):
            self.tickets_filed += 1
            sequence = 1000 + self.tickets_filed
            now = datetime.now(UTC)
            visit = n >= reminders
            ticket = machine.accept(
                platform=self.platform.platform_id, sequence=sequence, source=TicketSource.PHONE, accepted_at=now,
                category=TicketCategory.SERVICE_REQUEST, calendar=calendar, caller=f"1390{sequence:07d}",
            )  # fmt: skip
            unit = "" if visit else self.units[n % len(self.units)]
            ticket = ticket.model_copy(update={"unit": unit, "matter_type": "housing_fund"})
            state = TicketState.RESOLVED if visit else TicketState.DISPATCHED
            ticket = machine.transition(ticket, state, at=now, actor="seat", calendar=calendar)
            self._save(ticket)

    def _save(self, ticket: Ticket) -> None:
        self.redis.set(ticket_key(ticket.id), ticket.model_dump_json())
        self.redis.zadd(INDEX, {ticket.id: ticket.accepted_at.timestamp()})

    def completed(self) -> float:
        """Outbound tries that ended signed or visited so far (the controller's /metrics)."""
        body = self.platform.http("/metrics", token=None).body
        return sum(
            float(line.rpartition(" ")[2])
            for line in str(body).splitlines()
            if line.startswith("hotline_outbound_attempts_total{") and any(c in line for c in COMPLETED)
        )

    def set_outbound(self, running: bool) -> None:
        result = self.platform.http(f"/api/v1/outbound/{'resume' if running else 'pause'}", method="POST")
        assert result.status == 200, result

    def cpu(self) -> float:
        controller = self.platform.controller
        return cpu_seconds(self.platform.asterisk.pid) + cpu_seconds(controller.pid if controller else None)

    # the run

    def run(self) -> tuple[list[Phase], dict[str, dict[str, Any]]]:
        args = self.args
        self.platform.start_all()
        wait_for("every seat ready", self._seats_ready, timeout_s=60)
        self.set_outbound(False)
        threads = [threading.Thread(target=t, daemon=True) for t in (self.arrivals, self.patience, self.monitor)]
        for thread in threads:
            thread.start()
        phases = [Phase(name, r + 1) for r in range(args.repeats) for name in ("without", "with")]
        try:
            for phase in phases:
                if phase.name == "with":
                    self.file_tickets(args.reminders, args.visits)
                phase.completed_before, phase.cpu_s = self.completed(), self.cpu()
                phase.started = time.monotonic()
                phase.counted_from = phase.started + args.settle_s
                self.set_outbound(phase.name == "with")
                self.phase = phase
                print(f"phase {phase.name} #{phase.repeat}: {args.phase_s:g} s", flush=True)
                time.sleep(args.phase_s)
                phase.ended = time.monotonic()
                phase.completed_after = self.completed()
                phase.cpu_s = self.cpu() - phase.cpu_s
            self.phase = None
            self.set_outbound(False)
        finally:
            self.stop.set()
            threads[0].join(timeout=10)
        drain_until = time.monotonic() + 300
        while self.calls and time.monotonic() < drain_until:
            time.sleep(1)
            self.reap()
        for thread in threads[1:]:
            thread.join(timeout=10)
        time.sleep(3)  # the last records end
        records = self._records()
        return phases, records

    def close(self) -> None:
        for call in self.calls:
            call.stop()
        self.redis.close()
        self.phones.stop()
        self.carrier.stop()
        self.platform.stop_all()

    def _records(self) -> dict[str, dict[str, Any]]:
        """Every inbound call record (unmasked, as kept in Redis), by caller number."""
        found: dict[str, dict[str, Any]] = {}
        for key in self.redis.scan_iter("hotline:call:*", count=1000):
            raw = self.redis.get(key) if self.redis.type(key) == b"string" else None
            try:
                record = json.loads(raw) if raw else None
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("direction", "inbound") == "inbound" and "caller" in record:
                found[str(record["caller"])] = record
        return found

    def _seats_ready(self) -> bool:
        result = self.platform.http("/api/v1/seats")
        return result.status == 200 and all(s["state"] == "ready" for s in result.body["seats"])


def _units(platform: str) -> list[str]:
    """The platform's units with a contact number (the shipped directory)."""
    data = yaml.safe_load((REPO / "directory" / "units" / f"{platform}.yaml").read_text(encoding="utf-8"))
    return [str(u["id"]) for u in data["units"] if u.get("contacts")]


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b and not math.isnan(a) and not math.isnan(b) else "n/a"


def report(bench: OutboundBench, phases: list[Phase], records: dict[str, dict[str, Any]]) -> None:
    args = bench.args
    print(
        f"\nInbound with and without outbound: {args.seats} seats ringing {args.ring_ms} ms, talk lognormal "
        f"(median {args.talk_median_s:g} s, sigma {args.talk_sigma:g}), capacity {bench.capacity:.3f} calls/s, "
        f"Poisson arrivals {bench.rate:.3f}/s (load {args.load:g}), patience exp. mean {args.patience_mean_s:g} s; "
        f"outbound max_channels {args.max_channels}; {args.phase_s:g} s phases, first {args.settle_s:g} s not counted\n"
    )
    print(
        "| phase | offered | answered | SL 15 s | ASA s | abandon % | outbound done/min | held by inbound % | CPU % |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    pooled: dict[str, list[str]] = {"without": [], "with": []}
    per_min: dict[str, list[float]] = {"without": [], "with": []}
    for phase in phases:
        stats = inbound_of(records, phase.callers)
        pooled[phase.name] += phase.callers
        per_min[phase.name].append(phase.outbound_per_min)
        held = 100 * phase.held_samples / phase.samples if phase.samples else math.nan
        cpu = 100 * phase.cpu_s / max(phase.ended - phase.started, 1e-9)
        print(
            f"| {phase.name} #{phase.repeat} | {stats.offered} | {stats.answered} | {100 * stats.service_level:.1f} % "
            f"| {stats.asa_s:.2f} | {100 * stats.abandon_share:.1f} | {phase.outbound_per_min:.2f} | {held:.0f} "
            f"| {cpu:.0f} |"
        )
    without, with_ = inbound_of(records, pooled["without"]), inbound_of(records, pooled["with"])
    for name, stats in (("without (pooled)", without), ("with (pooled)", with_)):
        key = name.split()[0]
        mean_rate = sum(per_min[key]) / max(len(per_min[key]), 1)
        print(
            f"| {name} | {stats.offered} | {stats.answered} | {100 * stats.service_level:.1f} % | {stats.asa_s:.2f} "
            f"| {100 * stats.abandon_share:.1f} | {mean_rate:.2f} | | |"
        )
    print(
        f"| **ratio with / without** | | | {_ratio(with_.service_level, without.service_level)} "
        f"| {_ratio(with_.asa_s, without.asa_s)} | {_ratio(with_.abandon_share, without.abandon_share)} | | | |"
    )
    alone = [inbound_of(records, p.callers) for p in phases if p.name == "without"]
    if len(alone) >= 2:  # the noise: two phases run alike
        print(
            f"| noise: without #2 / without #1 | | | {_ratio(alone[1].service_level, alone[0].service_level)} "
            f"| {_ratio(alone[1].asa_s, alone[0].asa_s)} | {_ratio(alone[1].abandon_share, alone[0].abandon_share)} "
            "| | | |"
        )
    print(
        f"\nSIPp caller failures {bench.sip_failed}, patience hang-ups {bench.patience_hangups}, "
        f"tickets filed {bench.tickets_filed}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="pairs of phases (without, with)")
    parser.add_argument("--phase-s", type=float, default=135.0)
    parser.add_argument("--settle-s", type=float, default=25.0, help="not counted at each phase's start")
    parser.add_argument("--seats", type=int, default=10)
    parser.add_argument("--load", type=float, default=0.9, help="inbound arrivals as a fraction of capacity")
    parser.add_argument("--ring-ms", type=int, default=1000)
    parser.add_argument("--talk-median-s", type=float, default=8.0)
    parser.add_argument("--talk-sigma", type=float, default=0.5)
    parser.add_argument("--patience-mean-s", type=float, default=30.0)
    parser.add_argument("--max-channels", type=int, default=4, help="outbound.max_channels")
    parser.add_argument("--reminders", type=int, default=10, help="dispatched tickets filed per WITH phase")
    parser.add_argument("--visits", type=int, default=30, help="resolved tickets filed per WITH phase")
    parser.add_argument("--comment-s", type=int, default=0, help="outbound.visit_comment_s (0: no comment asked)")
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # tickets' own log

    with tempfile.TemporaryDirectory(prefix="bench-outbound-") as tmp:
        bench = OutboundBench(Path(tmp), args)
        started = time.monotonic()
        try:
            phases, records = bench.run()
        finally:
            bench.close()
        report(bench, phases, records)
        print(f"wall clock {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
