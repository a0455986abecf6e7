"""Our ACD vs Asterisk's app_queue, end to end, on the same Asterisk, seats and callers.

One Asterisk serves both: 12345 goes through our IVR to our ACD (seat-first offers, late
binding, callers held in the hold context); 88812345 goes Answer → Queue(bench-baseline), an
app_queue with the same seats as static members (leastrecent, ringinuse=no). One SIPp UAS
plays every seat (rings ``--ring-ms``, then answers); SIPp callers arrive at a fixed rate and
hang up ``--patience-s`` after being answered, talking to a seat or still waiting. So the
seats can take at most seats / patience calls per second (the nominal capacity).

Phases, in one run: app_queue with the controller stopped (Asterisk alone), then ours. Each
phase steps the arrival rate (fractions of capacity), then overloads at ``--overload`` ×
capacity. Times come from Asterisk's own AMI events for both (bench/e2e_ami.py); CPU and
RSS from /proc for Asterisk, the controller and Redis.

Run: .venv/bin/python -m bench.acd_e2e [--quick] [--seats 40] [--step-s 30] ...
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.e2e_ami import AmiRecorder, CallerMarks, add_observer
from bench.e2e_sipp import run_callers
from bench.e2e_stack import BASELINE_NUMBER, OURS_NUMBER, BenchStack, cpu_seconds, rss_mb, seat_ids
from tests.support.seat_phones import SeatPhones

DRAIN_S = 2.0  # after the last caller hung up, before the counters are read


@dataclass(frozen=True)
class Settings:
    seats: int
    ring_ms: int
    patience_s: float
    steps: tuple[float, ...]  # arrival rates as fractions of capacity
    step_s: float
    overload: float
    ring_timeout_s: float
    talk_s: float | None = None  # seats hang up after this; None: only callers hang up

    @property
    def capacity(self) -> float:
        """Calls per second the seats can take: each call holds a seat for the callers'
        patience or, when seats end calls, for one ring plus the talk."""
        if self.talk_s is None:
            return self.seats / self.patience_s
        return self.seats / (self.ring_ms / 1000 + self.talk_s)


@dataclass(frozen=True)
class Step:
    system: str
    label: str
    rate: float
    placed: int
    sip_failed: int
    connected: int
    to_seat_p50_ms: float
    to_seat_p99_ms: float
    queue_p50_ms: float
    queue_p99_ms: float
    rings: int  # seat channels created: offers / app_queue attempts
    talk_s: float  # mean conversation of the seated callers
    occupancy: float  # seat time spent in conversation, over the step (0..1)
    asterisk_cpu_ms: float  # per placed call
    controller_cpu_ms: float
    redis_cpu_ms: float
    asterisk_rss_mb: float
    controller_rss_mb: float
    leftover_channels: int
    stuck_seats: int
    seconds: float
    errors_excerpt: str
    leftover_detail: str = ""  # `core show channels concise` when channels outlived the calls

    @property
    def goodput(self) -> float:
        """Calls connected to a seat per second of arrivals."""
        return self.connected / self.seconds

    @property
    def clean(self) -> bool:
        return self.sip_failed == 0 and self.connected == self.placed and self.placed > 0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _waits_ms(marks: list[CallerMarks], from_queue: bool) -> list[float]:
    waits = []
    for mark in marks:
        start = mark.queued if from_queue else mark.arrived
        if mark.bridged is not None and start is not None:
            waits.append((mark.bridged - start) * 1000)
    return waits


@dataclass
class _Cpu:
    """CPU seconds of the three processes at one moment."""

    asterisk: float
    controller: float
    redis: float

    @classmethod
    def now(cls, stack: BenchStack) -> _Cpu:
        return cls(cpu_seconds(stack.asterisk_pid), cpu_seconds(stack.controller_pid), cpu_seconds(stack.redis_pid))


@dataclass(frozen=True)
class Phase:
    """One system's turn on the shared stack."""

    stack: BenchStack
    recorder: AmiRecorder
    settings: Settings
    system: str  # "app_queue" or "ours"

    @property
    def number(self) -> str:
        return OURS_NUMBER if self.system == "ours" else BASELINE_NUMBER

    def stuck(self) -> int:
        """Seats (or waiting callers) left busy once every call has ended: should be 0."""
        if self.system == "ours":
            return self.stack.not_ready_seats() + self.stack.ours_waiting()
        return self.stack.baseline_busy_members()

    def run_step(self, label: str, rate: float) -> Step:
        """Place callers at ``rate`` for ``step_s`` seconds and measure until all have hung up."""
        settings, stack = self.settings, self.stack
        calls = max(1, round(rate * settings.step_s))
        before, start = _Cpu.now(stack), time.time()
        load = run_callers(stack.platform.config.sip.port, self.number, rate, calls, int(settings.patience_s * 1000))
        time.sleep(DRAIN_S)
        after, end = _Cpu.now(stack), time.time()
        marks = self.recorder.callers_between(start, end)
        leftover = stack.wait_quiet()
        per_call = 1000 / max(load.placed, 1)
        arrival, queued = _waits_ms(marks, from_queue=False), _waits_ms(marks, from_queue=True)
        seated = [m for m in marks if m.bridged is not None]
        return Step(
            system=self.system, label=label, rate=rate, placed=load.placed, sip_failed=load.failed,
            connected=len(seated),
            to_seat_p50_ms=_percentile(arrival, 50), to_seat_p99_ms=_percentile(arrival, 99),
            queue_p50_ms=_percentile(queued, 50), queue_p99_ms=_percentile(queued, 99),
            rings=self.recorder.seat_rings_between(start, end),
            talk_s=statistics.fmean([m.talk_s for m in seated]) if seated else 0.0,
            occupancy=sum(m.talk_s for m in seated) / (settings.seats * (end - start)),
            asterisk_cpu_ms=(after.asterisk - before.asterisk) * per_call,
            controller_cpu_ms=(after.controller - before.controller) * per_call,
            redis_cpu_ms=(after.redis - before.redis) * per_call,
            asterisk_rss_mb=rss_mb(stack.asterisk_pid), controller_rss_mb=rss_mb(stack.controller_pid),
            leftover_channels=leftover, stuck_seats=self.stuck(), seconds=calls / rate,
            errors_excerpt=load.errors_excerpt, leftover_detail=stack.channel_list() if leftover else "",
        )  # fmt: skip

    def run(self) -> list[Step]:
        """Every rate step, then the overload."""
        settings = self.settings
        plan = [(f"{f:g}x", f * settings.capacity) for f in settings.steps]
        plan.append((f"overload {settings.overload:g}x", settings.overload * settings.capacity))
        steps = []
        for label, rate in plan:
            step = self.run_step(label, rate)
            print(_row(step), flush=True)
            steps.append(step)
        return steps


HEADER = (
    f"{'system':<10}{'step':<14}{'calls/s':>8}{'placed':>7}{'SIPfail':>8}{'seated':>7}{'good/s':>7}"
    f"{'p50 ms':>8}{'p99 ms':>8}{'q50 ms':>8}{'q99 ms':>8}{'rings':>6}{'talk s':>7}{'occ%':>5}"
    f"{'ast ms':>7}{'ctl ms':>7}{'rds ms':>7}{'ast MB':>7}{'ctl MB':>7}{'left':>5}{'stuck':>6}"
)


def _row(s: Step) -> str:
    return (
        f"{s.system:<10}{s.label:<14}{s.rate:>8.1f}{s.placed:>7}{s.sip_failed:>8}{s.connected:>7}{s.goodput:>7.1f}"
        f"{s.to_seat_p50_ms:>8.0f}{s.to_seat_p99_ms:>8.0f}{s.queue_p50_ms:>8.0f}{s.queue_p99_ms:>8.0f}"
        f"{s.rings:>6}{s.talk_s:>7.2f}{s.occupancy * 100:>5.0f}"
        f"{s.asterisk_cpu_ms:>7.1f}{s.controller_cpu_ms:>7.1f}{s.redis_cpu_ms:>7.1f}"
        f"{s.asterisk_rss_mb:>7.0f}{s.controller_rss_mb:>7.0f}{s.leftover_channels:>5}{s.stuck_seats:>6}"
    )


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs else "n/a"


def _ratio_row(ours: Step, base: Step) -> str:
    return (
        f"{'ratio':<10}{ours.label:<14}  good/s {_ratio(ours.goodput, base.goodput)}"
        f"  p50 {_ratio(ours.to_seat_p50_ms, base.to_seat_p50_ms)}"
        f"  p99 {_ratio(ours.to_seat_p99_ms, base.to_seat_p99_ms)}"
        f"  Asterisk CPU/call {_ratio(ours.asterisk_cpu_ms, base.asterisk_cpu_ms)}"
        f"  (Asterisk+controller+Redis)/Asterisk "
        f"{_ratio(ours.asterisk_cpu_ms + ours.controller_cpu_ms + ours.redis_cpu_ms, base.asterisk_cpu_ms)}"
    )


def _max_clean(steps: list[Step]) -> str:
    clean = [s.rate for s in steps if s.clean and not s.label.startswith("overload")]
    return f"{max(clean):.1f}" if clean else "none"


def report(settings: Settings, base: list[Step], ours: list[Step]) -> None:
    print()
    talk = f", seats hang up after {settings.talk_s:g} s of talk" if settings.talk_s else ""
    print(
        f"ACD end to end, {settings.seats} seats ringing {settings.ring_ms} ms, callers hang up "
        f"{settings.patience_s:g} s after answer{talk}; capacity {settings.capacity:.1f} calls/s; "
        f"{settings.step_s:g} s per step"
    )
    print(HEADER)
    for row in base + ours:
        print(_row(row))
    for o, b in zip(ours, base, strict=True):
        print(_ratio_row(o, b))
    print(f"highest clean step (every caller seated, no SIP failure): app_queue {_max_clean(base)} calls/s, "
          f"ours {_max_clean(ours)} calls/s")  # fmt: skip
    for step in base + ours:
        if step.sip_failed and step.errors_excerpt:  # else only SIPp's notes on patience timers
            print(f"--- SIPp errors, {step.system} {step.label}:\n{step.errors_excerpt[:600]}")
        if step.leftover_detail:
            print(f"--- channels left after {step.system} {step.label}:\n{step.leftover_detail[:2000]}")


def run(settings: Settings, workdir: Path) -> None:
    talk_ms = int(settings.talk_s * 1000) if settings.talk_s else None
    phones = SeatPhones(settings.ring_ms, talk_ms, workdir / "seats")
    contacts = {seat: phones.contact_for(seat) for seat in seat_ids(settings.seats)}
    stack = BenchStack.create(workdir / "platform", contacts, settings.ring_timeout_s)
    recorder: AmiRecorder | None = None
    try:
        observer, secret = add_observer(stack.platform.asterisk.layout.etc_dir)
        stack.start_asterisk()
        recorder = AmiRecorder(stack.platform.config.asterisk.ami_port, observer, secret)
        print(HEADER, flush=True)
        base = Phase(stack, recorder, settings, "app_queue").run()
        stack.start_controller()
        ours = Phase(stack, recorder, settings, "ours").run()
        report(settings, base, ours)
    finally:
        if recorder is not None:
            recorder.close()
        stack.stop()
        phones.stop()


def _settings(args: argparse.Namespace) -> Settings:
    common = {"ring_ms": args.ring_ms, "patience_s": args.patience_s, "overload": args.overload}
    common |= {"ring_timeout_s": args.ring_timeout_s, "talk_s": args.talk_s}
    if args.quick:
        return Settings(seats=20, steps=(0.5, 0.9), step_s=12.0, **common)
    steps = tuple(float(f) for f in args.steps.split(","))
    return Settings(seats=args.seats, steps=steps, step_s=args.step_s, **common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20 seats, 2 steps + overload, 12 s each (< 3 min)")
    parser.add_argument("--seats", type=int, default=40)
    parser.add_argument("--ring-ms", type=int, default=1000, help="how long a seat rings before answering")
    parser.add_argument("--patience-s", type=float, default=4.0, help="callers hang up this long after answer")
    parser.add_argument("--steps", default="0.5,0.7,0.9,1.0", help="arrival rates, as fractions of capacity")
    parser.add_argument("--step-s", type=float, default=30.0, help="seconds of arrivals per step")
    parser.add_argument("--overload", type=float, default=3.0, help="overload step, as a multiple of capacity")
    parser.add_argument("--talk-s", type=float, help="seats hang up after this much talk (default: never)")
    parser.add_argument("--ring-timeout-s", type=float, default=15.0, help="ring timeout of both ACDs")
    parser.add_argument("--keep", type=Path, help="keep logs and configs in this folder")
    args = parser.parse_args()
    settings = _settings(args)
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        run(settings, args.keep)
        return
    with tempfile.TemporaryDirectory(prefix="bench-acd-e2e-") as tmp:
        run(settings, Path(tmp))


if __name__ == "__main__":
    main()
