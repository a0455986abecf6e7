"""The ACD engine at scale, end to end in one process: the real AcdEngine, SeatService, call
tracker and event bus on a real redis-server (started here on a free port), behind a fake AMI
link (``telephony.ami_types.AmiLink``) that answers every Originate as Asterisk would: the
reply, then Newchannel and OriginateResponse Success, then the seat's channel asks ``bind()``.

Per cell (seats × waiting callers) the platform is first brought to a steady overload: every
seat talking, ``waiting`` callers queued (5 % priority callers, 10 % needing the skill "yi",
which 20 % of seats have). Then each measured cycle is one call's life at the engine:
- a talking seat's call ends (Hangup of the seat channel and of the caller's): **hang-up**;
- the seat is ready (the engine's kick) → the Originate for the best caller is sent:
  **kick → Originate**;
- the seat answers: ``bind()`` → the Binding: **bind**;
- one waiting caller hangs up (an abandon, with the offer re-pointing it may cause): **leave**;
- two callers arrive (``enqueue``), so the queue keeps its length: **arrival**.
CPU per call: this process's CPU (engine, seats, tracker, Redis client, JSON logs rendered to
/dev/null as in production) and redis-server's, per cycle.

Both dispatch paths run in the same run, cell by cell: ``incremental`` (the shipped one) and
``reference`` (``reference_dispatch=True``: every seat scanned and every caller sorted per
dispatch — the path before issue 20, kept as the property tests' reference).

Run: .venv/bin/python -m bench.engine_scale [--seats 40,500,2000] [--waiting 100,1000,10000]
     [--cycles 400] [--paths incremental,reference]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import redis.asyncio as aioredis
import structlog

from acd.config import AcdConfig, SeatConfig
from acd.engine import AcdEngine
from acd.events import EventBus
from acd.model import QueuedCall
from acd.seat import Seat, SeatState
from acd.seats import SeatService
from bench.e2e_stack import cpu_seconds
from calls.redis_budget import RedisBudget
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from common.clock import system_clock
from hotline.logs import configure_logging
from hotline.redis_process import RedisProcess
from telephony.ami_types import AmiMessage, AmiResponse, ConnectedHandler, EventHandler
from tests.support.ports import free_port

PLATFORM = "kunming"
WARMUP = 40
SEAT_SECRET = "bench-seat-1"  # noqa: S105 — the fake AMI never asks for it


def message(headers: Mapping[str, str]) -> AmiMessage:
    return AmiMessage({key.lower(): value for key, value in headers.items()})


class AnsweringAmi:
    """An AmiLink that answers like Asterisk: every Originate is rung and answered at once."""

    def __init__(self) -> None:
        self.connected = True
        self.engine: AcdEngine | None = None
        # (caller bound, Originate sent at, bind seconds) per answered offer
        self.answered: asyncio.Queue[tuple[str, float, float]] = asyncio.Queue()
        self.talking: dict[str, tuple[str, str]] = {}  # offer id → (seat, caller) of every bound offer
        self.bind_cpu: list[float] = []  # this thread's CPU per bind() (not preempted time)
        self._handlers: dict[str, list[EventHandler]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def send_action(self, fields: Mapping[str, str | list[str]], timeout_s: float | None = None) -> AmiResponse:
        if fields["Action"] == "Originate":
            sent_at = time.perf_counter()
            task = asyncio.get_running_loop().create_task(
                self._answer(str(fields["ChannelId"]), str(fields["Channel"]).removeprefix("PJSIP/"), sent_at)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return AmiResponse(message({"Response": "Success", "Message": "ok"}), ())

    async def _answer(self, offer_id: str, seat_id: str, sent_at: float) -> None:
        await self.emit("Newchannel", Uniqueid=offer_id, Channel=f"PJSIP/{seat_id}-00000001")
        await self.emit("OriginateResponse", Uniqueid=offer_id, Response="Success", Reason="4")
        assert self.engine is not None
        started, cpu = time.perf_counter(), time.thread_time()
        binding = await self.engine.bind(offer_id, seat_id)
        bind_s = time.perf_counter() - started
        self.bind_cpu.append(time.thread_time() - cpu)
        if binding is not None:
            self.talking[offer_id] = (seat_id, binding.call_id)
            await self.emit("BridgeEnter", Uniqueid=binding.call_id, Channel=binding.caller_channel)
        await self.answered.put(("" if binding is None else binding.call_id, sent_at, bind_s))

    def on_event(self, name: str, handler: EventHandler) -> None:
        self._handlers.setdefault(name.lower(), []).append(handler)

    def on_connected(self, handler: ConnectedHandler) -> None:
        pass

    async def emit(self, event: str, **headers: str) -> None:
        for handler in self._handlers.get(event.lower(), []):
            await handler(message({"Event": event, **headers}))


@dataclass
class Cell:
    path: str
    seats: int
    waiting: int
    kick_to_originate: list[float] = field(default_factory=list)
    dispatch_cpu: list[float] = field(default_factory=list)  # thread CPU per dispatch that rang a seat
    bind_cpu: list[float] = field(default_factory=list)
    hang_up_cpu: list[float] = field(default_factory=list)
    bind: list[float] = field(default_factory=list)
    hang_up: list[float] = field(default_factory=list)
    leave: list[float] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    cycles: int = 0


def p(values: list[float], q: float) -> float:
    """Percentile ``q`` (0-100) in ms."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class Platform:
    """One engine on one Redis, filled to ``seats`` talking and ``waiting`` queued."""

    def __init__(self, client: aioredis.Redis, seats: int, reference: bool, rng: random.Random) -> None:
        self.rng = rng
        self.client = client
        self.budget = RedisBudget()
        events = EventBus(client, self.budget, platform="bench")
        configs = tuple(
            SeatConfig(id=str(1000 + i), secret=SEAT_SECRET, skills=("yi",) if i % 5 == 0 else ()) for i in range(seats)
        )
        clock, budget = system_clock, self.budget
        self.seats = SeatService(configs, client, events=events, clock=clock, platform=PLATFORM, budget=budget)
        self.ami = AnsweringAmi()
        self.tracker = CallTracker(RedisCallStore(client, timedelta(days=1), PLATFORM), PLATFORM, clock, budget)
        self.engine = AcdEngine(
            config=AcdConfig(wrapup_s=0.0, relax_skills_after_s=60.0), seats=self.seats, ami=self.ami, client=client,
            tracker=self.tracker, events=events, clock=system_clock, recordings_dir=None, platform=PLATFORM,
            budget=self.budget, reference_dispatch=reference,
        )  # fmt: skip
        self.ami.engine = self.engine
        self.dispatch_cpu: list[float] = []
        distribution = self.engine._distribution
        dispatch = distribution.dispatch

        async def timed_dispatch() -> None:
            cpu, rung = time.thread_time(), distribution._ringing.offers_total
            await dispatch()
            if distribution._ringing.offers_total != rung:
                self.dispatch_cpu.append(time.thread_time() - cpu)

        distribution.dispatch = timed_dispatch  # type: ignore[method-assign]
        self.kicked_at = 0.0
        self.seats.on_change(self._on_seat)  # after the engine's: the kick has just been given
        self.arrivals = 0
        self.waiting: list[str] = []  # the callers enqueued and not yet bound or gone (a random one leaves)
        self._slot: dict[str, int] = {}

    async def _on_seat(self, seat: Seat) -> None:
        if seat.state is SeatState.READY:
            self.kicked_at = time.perf_counter()

    async def arrive(self) -> float:
        self.arrivals += 1
        call_id = f"bench-{self.arrivals}"
        channel = f"PJSIP/trunk-{self.arrivals:08d}"
        skills = ("yi",) if self.rng.random() < 0.10 else ()
        priority = 1 if self.rng.random() < 0.05 else 0
        await self.tracker.channel_created(call_id, channel, f"138{self.arrivals:08d}", "", "12345")
        call = QueuedCall(call_id, channel, "general", skills, priority, time.time(), caller=f"138{self.arrivals:08d}")
        started = time.perf_counter()
        await self.engine.enqueue(call)
        elapsed = time.perf_counter() - started
        self._slot[call_id] = len(self.waiting)
        self.waiting.append(call_id)
        return elapsed

    def not_waiting(self, call_id: str) -> None:
        """Swap-remove: the bench's own bookkeeping stays O(1), not part of what is measured."""
        slot = self._slot.pop(call_id, None)
        if slot is None:
            return
        last = self.waiting.pop()
        if last != call_id:
            self.waiting[slot] = last
            self._slot[last] = slot

    async def fill(self, seats: int, waiting: int) -> None:
        for index in range(seats + waiting):
            await self.arrive()
            if index % 2000 == 1999:
                await self.budget.drain()
        self.engine.start()
        for seat_id in self.seats.config:
            await self.seats.login(seat_id)
        for _ in range(seats):
            await self.ami.answered.get()
        for _seat, call_id in self.ami.talking.values():
            self.not_waiting(call_id)
        await self.budget.drain()

    async def cycle(self, cell: Cell | None) -> None:
        offer_id = self.rng.choice(list(self.ami.talking))
        seat_id, caller = self.ami.talking.pop(offer_id)
        started, cpu = time.perf_counter(), time.thread_time()
        await self.ami.emit("Hangup", Uniqueid=offer_id, Channel=f"PJSIP/{seat_id}-00000001")
        await self.ami.emit("Hangup", Uniqueid=caller, Channel="PJSIP/trunk-x")
        hang_up = time.perf_counter() - started
        hang_up_cpu = time.thread_time() - cpu
        kicked = self.kicked_at
        bound, sent_at, bind_s = await self.ami.answered.get()
        self.not_waiting(bound)
        leaver = self.rng.choice(self.waiting)  # an abandon
        self.not_waiting(leaver)
        started = time.perf_counter()
        await self.ami.emit("Hangup", Uniqueid=leaver, Channel="PJSIP/trunk-y")
        leave = time.perf_counter() - started
        arrival = [await self.arrive(), await self.arrive()]
        if cell is not None:
            cell.hang_up.append(hang_up)
            cell.hang_up_cpu.append(hang_up_cpu)
            cell.kick_to_originate.append(sent_at - kicked)
            cell.bind.append(bind_s)
            cell.leave.append(leave)
            cell.arrival.extend(arrival)
            cell.cycles += 1

    async def close(self) -> None:
        await self.engine.close()
        await self.budget.drain(timeout_s=30)
        await self.budget.close()


async def run_cell(url: str, redis_pid: int, path: str, *, seats: int, waiting: int, cycles: int) -> Cell:
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    platform = Platform(client, seats, path == "reference", random.Random(seats * 100_003 + waiting))
    try:
        await platform.fill(seats, waiting)
        for _ in range(WARMUP):
            await platform.cycle(None)
        await platform.budget.drain()
        cell = Cell(path, seats, waiting)
        platform.dispatch_cpu, platform.ami.bind_cpu = cell.dispatch_cpu, cell.bind_cpu
        cpu0, redis0 = time.process_time(), cpu_seconds(redis_pid)
        for index in range(cycles):
            await platform.cycle(cell)
            if index % 200 == 199:
                await platform.budget.drain()
        await platform.budget.drain()
        cell.cpu_s = time.process_time() - cpu0
        cell.redis_cpu_s = cpu_seconds(redis_pid) - redis0
        return cell
    finally:
        await platform.close()
        await client.aclose()


def report(cells: list[Cell]) -> None:
    print(
        "path        seats waiting | kick→Originate p50/p99 | bind p50/p99 | hang-up p50/p99 | leave p50/p99 "
        "| arrival p99 | CPU/call ms (ctl, redis)"
    )
    for c in cells:
        print(
            f"{c.path:<11} {c.seats:>5} {c.waiting:>7}"
            f" | {p(c.kick_to_originate, 50):6.3f} / {p(c.kick_to_originate, 99):6.3f}"
            f" | {p(c.bind, 50):5.3f} / {p(c.bind, 99):5.3f} | {p(c.hang_up, 50):5.3f} / {p(c.hang_up, 99):5.3f}"
            f" | {p(c.leave, 50):5.3f} / {p(c.leave, 99):5.3f} | {p(c.arrival, 99):5.3f}"
            f" | {1000 * c.cpu_s / c.cycles:6.3f}, {1000 * c.redis_cpu_s / c.cycles:5.3f}"
        )
    print("thread CPU (ms, not counting time the process was preempted): dispatch that rang | bind | hang-up")
    for c in cells:
        print(
            f"{c.path:<11} {c.seats:>5} {c.waiting:>7} | {p(c.dispatch_cpu, 50):6.3f} / {p(c.dispatch_cpu, 99):6.3f}"
            f" | {p(c.bind_cpu, 50):5.3f} / {p(c.bind_cpu, 99):5.3f}"
            f" | {p(c.hang_up_cpu, 50):5.3f} / {p(c.hang_up_cpu, 99):5.3f}"
        )
    print("ratios 10,000 / 100 waiting (p99 kick→Originate, p99 bind, CPU per call, p99 dispatch CPU):")
    for path in sorted({c.path for c in cells}):
        for seats in sorted({c.seats for c in cells}):
            by_w = {c.waiting: c for c in cells if c.path == path and c.seats == seats}
            if 100 in by_w and 10_000 in by_w:
                lo, hi = by_w[100], by_w[10_000]
                print(
                    f"  {path:<11} {seats:>5} seats: {p(hi.kick_to_originate, 99) / p(lo.kick_to_originate, 99):5.2f}"
                    f"  {p(hi.bind, 99) / p(lo.bind, 99):5.2f}  {(hi.cpu_s / hi.cycles) / (lo.cpu_s / lo.cycles):5.2f}"
                    f"  {p(hi.dispatch_cpu, 99) / p(lo.dispatch_cpu, 99):5.2f}"
                )


async def main_async(args: argparse.Namespace) -> None:
    seat_counts = [int(v) for v in args.seats.split(",")]
    waiting_counts = [int(v) for v in args.waiting.split(",")]
    paths = args.paths.split(",")
    with tempfile.TemporaryDirectory() as folder:
        redis_server = RedisProcess(Path(folder) / "redis", free_port())
        redis_server.start()
        try:
            probe = aioredis.Redis.from_url(redis_server.url)
            redis_pid = int((await probe.info("server"))["process_id"])
            await probe.aclose()
            cells = []
            for seats in seat_counts:
                for waiting in waiting_counts:
                    for path in paths:  # both paths back to back, so they share the machine's state
                        cell = await run_cell(
                            redis_server.url, redis_pid, path, seats=seats, waiting=waiting, cycles=args.cycles
                        )
                        print(f"done {path} {seats}×{waiting}", flush=True)
                        cells.append(cell)
            report(cells)
        finally:
            redis_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seats", default="40,500,2000")
    parser.add_argument("--waiting", default="100,1000,10000")
    parser.add_argument("--cycles", type=int, default=400)
    parser.add_argument("--paths", default="incremental,reference")
    args = parser.parse_args()
    configure_logging("info", "json")  # rendered as in production, written nowhere
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=open(os.devnull, "w")))  # noqa: SIM115
    print(f"cpus={os.cpu_count()} loadavg={os.getloadavg()}")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
