"""Erlang-A ACD benchmark: our ACD vs Asterisk's app_queue, on the same Asterisk.

The load a call centre sees (Erlang-A): Poisson arrivals, lognormal talk time ended by the
seat, per-caller exponential patience that runs only while waiting, RTP on both legs, no
announcements on either side. Arrival rates are multiples of the true capacity, seats / (ring +
mean talk): by default 0.8, 0.95, 1.0, 1.5 and 3×.

- **Phases**: one ACD sweeping every step on a fresh platform (Redis, Asterisk and, for ours,
  the controller, bench/e2e_stack.py), then the other; ``--repeats`` pairs, the order flipping
  each repeat (app_queue first, then ours first, …). Both ACDs get the same arrival times and
  the same patience draws in a repeat (common random numbers); repeats draw anew.
- **Steps** follow each other without a gap (the next step's SIPp starts when the previous
  step's arrivals end); each step's first ``--settle-s`` are not counted; its figures are those
  of the callers who arrived in the ``--count-s`` after that, followed to their end, and of what
  the seats did in that window (conversations completed, occupancy, rings, freed-seat gaps).
- **Callers** (bench/erlang_load.py): one SIPp per step; **patience** and the **stopwatch**
  (bench/erlang_ami.py): Asterisk's AMI events on the bench's own session, the same code for
  both ACDs. **Seats**: one SIPp UAS per phase ringing ``--ring-ms``, talking a tone, hanging up
  after a lognormal talk; the n-th call it answers talks the n-th time of a list drawn per repeat
  (an injection file), so both ACDs see the same talk times in the same order.
- ours: ``12345`` → IVR (bench/dialplans/erlang.yaml, straight to the queue) → hold → seat-first
  offers, late binding. app_queue: ``88812345`` → ``Answer()`` → ``Queue()`` (leastrecent,
  ringinuse=no, same seats as static members, same ring timeout, autofill, no announcements).
  Both queues' own max wait is 3600 s: only the bench's patience ends a wait.

Figures (bench/erlang_stats.py) per step, ours / app_queue. CPU per offered call from
/proc/<pid>/stat deltas over the counting window: Asterisk for both, the controller and Redis
for ours. The old fixed-patience shape (callers hang up 4 s after answer, talking or not)
stays in bench/acd_e2e.py as a stress shape.

``--before REV`` adds a third phase per repeat, ``before``: our ACD with the controller of a git
revision (its tree exported with ``git archive``, run with PYTHONPATH there, as in
bench/ivr_load.py) on this tree's Asterisk files, so a cut is measured against the old code in
the same run; the report then has a table for each of ours and before against app_queue.
``--profile DIR`` records the controller of each of our phases with py-spy (``--nonblocking``,
``--gil``, raw format: DIR/<phase>.txt). ``--monitor DIR`` captures every command Redis receives
in each of our phases' counting windows (``redis-cli monitor``) and prints them per offered call
by command and key pattern (bench/redis_commands.py); MONITOR costs Redis CPU: read its counts.

Run: .venv/bin/python -m bench.erlang_a [--quick] [--repeats 3] [--patience-mean-s 30] [--before REV]
[--profile DIR] [--monitor DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.e2e_ami import add_observer
from bench.e2e_stack import BASELINE_NUMBER, OURS_NUMBER, BenchStack, cpu_seconds, seat_ids
from bench.erlang_ami import ErlangRecorder
from bench.erlang_load import Caller, CallerRun, SeatBank, Shape, draw_callers, draw_talks
from bench.erlang_stats import StepFigures, Window, pooled, step_figures
from bench.ivr_load import export_revision, start_profiler
from bench.redis_commands import start_monitor, summarise, table
from tests.support.audio import tone_wav

DIALPLAN = Path(__file__).resolve().parent / "dialplans" / "erlang.yaml"
MAX_WAIT_S = 3600
SYSTEMS = ("app_queue", "ours")
BEFORE = "before"  # our ACD with the controller of --before REV
PROCESSES = ("asterisk", "controller", "redis")
COUNT = "n:"  # a figure in StepFigures.cpu_ms that is a count per offered call, not CPU


@dataclass(frozen=True)
class Settings:
    shape: Shape
    steps: tuple[float, ...]  # arrival rates as multiples of capacity
    settle_s: float
    count_s: float
    tail_s: float  # arrivals after the last step's window (not counted), so it ends under load
    drain_s: float  # at most this long for the counted callers to end, after the arrivals
    repeats: int
    ring_timeout_s: float
    seed: int
    before_tree: Path | None = None  # the exported tree of --before REV
    profile: str = ""  # folder for py-spy profiles of our controller ("" = none)
    monitor: str = ""  # folder for Redis MONITOR captures of our counting windows ("" = none)


def plan(settings: Settings, repeat: int) -> list[tuple[float, list[Caller]]]:
    """Each step's load and callers for one repeat (the same for both ACDs)."""
    rng = random.Random(settings.seed * 1000 + repeat)
    out = []
    for index, load in enumerate(settings.steps):
        seconds = settings.settle_s + settings.count_s + (settings.tail_s if index == len(settings.steps) - 1 else 0)
        rate = load * settings.shape.capacity
        out.append(
            (load, draw_callers(rng, rate, seconds, settings.shape.patience_mean_s, f"139{repeat:02d}{index:02d}"))
        )
    return out


@dataclass
class PhaseResult:
    system: str
    repeat: int
    steps: list[StepFigures]
    sip_failed: int
    patience_hangups: int
    leftover_channels: int
    stuck: int


class Phase:
    """One ACD sweeping every step on a fresh platform."""

    def __init__(self, settings: Settings, system: str, repeat: int, tone: Path, root: Path) -> None:
        self.settings, self.system, self.repeat, self.tone = settings, system, repeat, tone
        self.root = root / f"repeat{repeat}-{system}"
        shape = settings.shape
        talks = draw_talks(
            random.Random(settings.seed * 1000 + 500 + repeat), shape.talk_median_s, shape.talk_sigma, 5000
        )
        self.phones = SeatBank(self.root / "seats", int(shape.ring_s * 1000), talks, tone)
        contacts = {seat: self.phones.contact_for(seat) for seat in seat_ids(shape.seats)}
        self.stack = BenchStack.create(self.root / "platform", contacts, settings.ring_timeout_s, DIALPLAN, MAX_WAIT_S)
        self.hangups = 0

    @property
    def ours(self) -> bool:
        return self.system != "app_queue"

    def _cpu(self) -> dict[str, float]:
        pids = {"asterisk": self.stack.asterisk_pid}
        if self.ours:
            pids |= {"controller": self.stack.controller_pid, "redis": self.stack.redis_pid}
        figures = {name: cpu_seconds(pid) for name, pid in pids.items()}
        if self.ours:  # what Redis did: read events (≈ round trips: one per pipeline) and commands
            stats = self.stack.redis_stats()
            figures |= {COUNT + "redis reads": stats[0], COUNT + "redis commands": stats[1]}
        return figures

    def _start_controller(self) -> subprocess.Popen[bytes] | None:
        """Ours (or the --before revision's) controller, and py-spy on it with --profile."""
        if not self.ours:
            return None
        tree = self.settings.before_tree if self.system == BEFORE else None
        self.stack.start_controller({"PYTHONPATH": str(tree)} if tree is not None else None)
        return start_profiler(self.settings.profile, f"{self.system}-{self.repeat}", self.stack.controller_pid)

    def run(self, steps: list[tuple[float, list[Caller]]]) -> PhaseResult:
        stack, settings = self.stack, self.settings
        observer, secret = add_observer(stack.platform.asterisk.layout.etc_dir)
        stack.start_asterisk()
        recorder = ErlangRecorder(stack.platform.config.asterisk.ami_port, observer, secret)
        profiler = self._start_controller()
        patience = {c.number: c.patience_s for _, callers in steps for c in callers}
        stop = threading.Event()

        def enforce() -> None:
            while not stop.wait(0.1):
                self.hangups += recorder.enforce_patience(patience.get, time.time())

        enforcer = threading.Thread(target=enforce, name="patience", daemon=True)
        enforcer.start()
        number = OURS_NUMBER if self.ours else BASELINE_NUMBER
        runs: list[CallerRun] = []
        windows: list[tuple[Window, dict[str, float], dict[str, float]]] = []
        try:
            for index, (load, callers) in enumerate(steps):
                began = time.time()
                folder = self.root / f"step{index}"
                runs.append(CallerRun(folder, stack.platform.config.sip.port, number, callers, self.tone))
                _sleep_until(began + settings.settle_s)
                windows.append(self._count_window(index))
                print(f"  {self.system} #{self.repeat} {load:g}x: {len(callers)} callers", flush=True)
            _sleep_until(began + settings.settle_s + settings.count_s + settings.tail_s)
            deadline = time.time() + settings.drain_s
            while time.time() < deadline and not self._counted_done(recorder, windows):
                time.sleep(0.5)
            stop.set()
            enforcer.join(timeout=5)
            stack.platform.asterisk.cli("channel request hangup all", check=False)
            leftover = stack.wait_quiet()
            for run in runs:
                _wait_or_stop(run)
            stuck = self._stuck()
            callers_seen, seats_seen = recorder.snapshot()
            legs = {"callers": [vars(c) for c in callers_seen], "seats": [vars(s) for s in seats_seen]}
            (self.root / "legs.json").write_text(json.dumps(legs), encoding="utf-8")  # for a closer look (--keep)
        finally:
            stop.set()
            _stop_profiler(profiler)
            recorder.close()
            for run in runs:
                run.stop()
            stack.stop()
            self.phones.stop()
        figures = [_with_cpu(step_figures(callers_seen, seats_seen, w), before, after) for w, before, after in windows]
        failed = sum(max(run.failed(), 0) for run in runs)
        self._print_commands(figures)
        return PhaseResult(self.system, self.repeat, figures, failed, self.hangups, leftover, stuck)

    def _count_window(self, index: int) -> tuple[Window, dict[str, float], dict[str, float]]:
        """One step's counting window: its times and the CPU (and Redis counts) at both ends."""
        settings = self.settings
        start, cpu_before = time.time(), self._cpu()
        monitor = self._start_monitor(index)
        _sleep_until(start + settings.count_s)
        end, cpu_after = time.time(), self._cpu()
        if monitor is not None:
            monitor.terminate()
            monitor.wait(timeout=10)
        return Window(start, end, settings.shape.seats, settings.shape.capacity), cpu_before, cpu_after

    def _print_commands(self, figures: list[StepFigures]) -> None:
        """``--monitor``: each step's Redis commands per offered call, by command and key."""
        for index, step in enumerate(figures):
            capture = self._capture(index)
            if capture is not None and capture.exists():
                counts = summarise(capture.read_text(errors="replace").splitlines())
                print(f"\n{self.system} #{self.repeat} step {index}: Redis commands per offered call ({step.offered})")
                print(table(counts, step.offered), flush=True)

    def _capture(self, index: int) -> Path | None:
        if not (self.ours and self.settings.monitor):
            return None
        return Path(self.settings.monitor) / f"{self.system}-{self.repeat}-step{index}.txt"

    def _start_monitor(self, index: int) -> subprocess.Popen[bytes] | None:
        """``--monitor``: every command Redis receives in this counting window, to a file
        (MONITOR costs Redis CPU: read the counts, not the CPU, of such a run)."""
        capture = self._capture(index)
        if capture is None:
            return None
        redis_process = self.stack.platform.redis
        return start_monitor(redis_process.port, redis_process.password, capture)

    @staticmethod
    def _counted_done(
        recorder: ErlangRecorder, windows: list[tuple[Window, dict[str, float], dict[str, float]]]
    ) -> bool:
        callers, _ = recorder.snapshot()
        return all(c.ended is not None for c in callers if any(w.has(c.arrived) for w, _, _ in windows))

    def _stuck(self, settle_s: float = 5.0) -> int:
        """Seats or callers still held after every channel is gone. Asked until it is 0 or
        ``settle_s`` passed: the last Hangup events may still be on their way to the controller
        (or app_queue's member states) when Asterisk has just reported no channel. -1: the
        controller's API did not answer (never added to a count: -1 seats + 1 caller is not 0)."""
        deadline = time.monotonic() + settle_s
        while True:
            counts = (
                [self.stack.not_ready_seats(), self.stack.ours_waiting()]
                if self.ours
                else [self.stack.baseline_busy_members()]
            )
            held = -1 if min(counts) < 0 else sum(counts)
            if held == 0 or time.monotonic() >= deadline:
                return held
            time.sleep(0.2)


def _with_cpu(step: StepFigures, before: dict[str, float], after: dict[str, float]) -> StepFigures:
    """CPU milliseconds per offered call, by process, over the counting window (and the
    ``COUNT`` figures per offered call)."""
    calls = max(step.offered, 1)
    return replace(
        step,
        cpu_ms={
            name: (after[name] - before[name]) * (1 if name.startswith(COUNT) else 1000) / calls for name in before
        },
    )


def _stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        profiler.wait(timeout=60)


def _sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.time()))


def _wait_or_stop(run: CallerRun, timeout_s: float = 20.0) -> None:
    deadline = time.time() + timeout_s
    while not run.finished and time.time() < deadline:
        time.sleep(0.2)
    run.stop()


def _pair(ours: float, theirs: float, digits: int = 2, scale: float = 1.0) -> str:
    def one(value: float) -> str:
        return "–" if math.isnan(value) else f"{value * scale:.{digits}f}"

    return f"{one(ours)} / {one(theirs)}"


def _ratio(ours: float, theirs: float) -> str:
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return "n/a"
    return f"{ours / theirs:.2f}"


def _cpu_total(step: StepFigures) -> float:
    return sum(v for k, v in step.cpu_ms.items() if not math.isnan(v) and not k.startswith(COUNT))


TABLE_HEAD = (
    "| load | offered | goodput | abandon % | wait p50 s | wait p99 s | ASA s | SL 15 s % | occupancy % "
    "| lost ring % | gap p99 ms | Asterisk ms | ctl + Redis ms | CPU total ratio |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(load: str, ours: StepFigures, base: StepFigures) -> str:
    """One step, each cell ``ours / app_queue``; CPU per offered call."""
    extra = ours.cpu_ms.get("controller", math.nan) + ours.cpu_ms.get("redis", math.nan)
    return (
        f"| {load} | {ours.offered} / {base.offered} | {_pair(ours.goodput, base.goodput)} "
        f"| {_pair(ours.abandon_share, base.abandon_share, 1, 100)} | {_pair(ours.wait_p50_s, base.wait_p50_s)} "
        f"| {_pair(ours.wait_p99_s, base.wait_p99_s)} | {_pair(ours.asa_s, base.asa_s)} "
        f"| {_pair(ours.service_level, base.service_level, 1, 100)} | {_pair(ours.occupancy, base.occupancy, 1, 100)} "
        f"| {_pair(ours.lost_ring_share, base.lost_ring_share, 2, 100)} | {_pair(ours.gap_p99_ms, base.gap_p99_ms, 0)} "
        f"| {_pair(ours.cpu_ms.get('asterisk', math.nan), base.cpu_ms.get('asterisk', math.nan), 1)} "
        f"| {extra:.1f} | {_ratio(_cpu_total(ours), _cpu_total(base))} |"
    )


def report(settings: Settings, results: list[PhaseResult]) -> None:
    shape = settings.shape
    print(
        f"\nErlang-A, {shape.seats} seats ringing {shape.ring_s:g} s, talk lognormal "
        f"(median {shape.talk_median_s:g} s, "
        f"sigma {shape.talk_sigma:g}, mean {shape.mean_talk_s:.2f} s), capacity {shape.capacity:.3f} calls/s; "
        f"patience exponential, mean {shape.patience_mean_s:g} s, while waiting only; {settings.repeats} repeat(s); "
        f"steps {settings.settle_s:g} s settle + {settings.count_s:g} s counted\n"
    )
    for mine in (BEFORE, "ours"):
        if not any(r.system == mine for r in results):
            continue
        print(
            f"Pooled over the repeats, each cell {mine} / app_queue "
            "(goodput = conversations completed per s ÷ capacity):\n"
        )
        print(TABLE_HEAD)
        for index, load in enumerate(settings.steps):
            ours = pooled([r.steps[index] for r in results if r.system == mine])
            base = pooled([r.steps[index] for r in results if r.system == "app_queue"])
            print(table_row(f"{load:g}×", ours, base))
        print(f"\nPer phase, {mine} / app_queue:\n")
        print(TABLE_HEAD.replace("| load |", "| phase, load |", 1))
        for ours_result in (r for r in results if r.system == mine):
            base_result = next(r for r in results if r.system == "app_queue" and r.repeat == ours_result.repeat)
            for load, o, b in zip(settings.steps, ours_result.steps, base_result.steps, strict=True):
                print(table_row(f"#{ours_result.repeat} {load:g}×", o, b))
        print()
    for r in results:
        if r.system != "app_queue":
            counts = ", ".join(
                f"{load:g}× {step.cpu_ms.get(COUNT + 'redis reads', math.nan):.1f} "
                f"({step.cpu_ms.get(COUNT + 'redis commands', math.nan):.1f} commands)"
                for load, step in zip(settings.steps, r.steps, strict=True)
            )
            print(f"{r.system} #{r.repeat}: Redis read events (≈ round trips) per offered call: {counts}")
    print()
    for r in results:
        print(
            f"{r.system} #{r.repeat}: SIPp failed calls {r.sip_failed}, patience hang-ups {r.patience_hangups}, "
            f"channels left after the end {r.leftover_channels}, stuck {r.stuck}, "
            f"callers neither answered nor abandoned {sum(s.other for s in r.steps)}, freed-seat gaps "
            f"{sum(s.gaps for s in r.steps)}, rings {sum(s.rings for s in r.steps)} "
            f"(lost {sum(s.lost_rings for s in r.steps)})"
        )


def run(settings: Settings, root: Path) -> list[PhaseResult]:
    tone = tone_wav(root / "tone.wav", seconds=2, volume=0.2)
    results = []
    for repeat in range(1, settings.repeats + 1):
        steps = plan(settings, repeat)
        systems = SYSTEMS if settings.before_tree is None else (SYSTEMS[0], BEFORE, SYSTEMS[1])
        order = systems if repeat % 2 else tuple(reversed(systems))
        for system in order:
            print(f"phase {system} #{repeat}", flush=True)
            results.append(Phase(settings, system, repeat, tone, root).run(steps))
    return results


def settings_of(args: argparse.Namespace) -> Settings:
    shape = Shape(args.seats, args.ring_ms / 1000, args.talk_median_s, args.talk_sigma, args.patience_mean_s)
    steps = tuple(float(f) for f in args.steps.split(","))
    common = {"ring_timeout_s": args.ring_timeout_s, "seed": args.seed, "tail_s": 10.0}
    if args.quick:
        return Settings(shape, steps=(0.95, 3.0), settle_s=10, count_s=25, drain_s=30, repeats=1, **common)
    return Settings(
        shape, steps=steps, settle_s=args.settle_s, count_s=args.count_s, drain_s=args.drain_s, repeats=args.repeats,
        **common,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one repeat of 0.95× and 3×, 25 s counted (~4 min)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", default="0.8,0.95,1.0,1.5,3.0", help="arrival rates, multiples of capacity")
    parser.add_argument("--settle-s", type=float, default=15.0, help="not counted at each step's start")
    parser.add_argument("--count-s", type=float, default=35.0, help="arrivals counted per step")
    parser.add_argument("--drain-s", type=float, default=60.0, help="at most this for the counted callers to end")
    parser.add_argument("--seats", type=int, default=8)
    parser.add_argument("--ring-ms", type=int, default=1000)
    parser.add_argument("--talk-median-s", type=float, default=6.0)
    parser.add_argument("--talk-sigma", type=float, default=0.5)
    parser.add_argument("--patience-mean-s", type=float, default=30.0, help="7 gives the short-patience shape")
    parser.add_argument("--ring-timeout-s", type=float, default=15.0, help="both ACDs' ring timeout")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--keep", type=Path, help="keep logs and configs in this folder")
    parser.add_argument("--before", default="", help="git revision whose controller runs a 'before' phase")
    parser.add_argument("--profile", default="", help="folder for py-spy profiles of our controller")
    parser.add_argument("--monitor", default="", help="folder for Redis MONITOR captures of our windows")
    args = parser.parse_args()
    settings = replace(settings_of(args), profile=args.profile, monitor=args.monitor)
    began = time.monotonic()

    def run_in(root: Path) -> list[PhaseResult]:
        tree = export_revision(args.before, root / "before-tree") if args.before else None
        return run(replace(settings, before_tree=tree), root)

    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        args.keep.mkdir(parents=True)
        results = run_in(args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-erlang-") as tmp:
            results = run_in(Path(tmp))
    report(settings, results)
    print(f"wall clock {(time.monotonic() - began) / 60:.1f} min")


if __name__ == "__main__":
    main()
