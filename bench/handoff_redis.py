"""Hand-off records through Redis: how many create + get + picked_up cycles per second.

``calls.handoff.RedisHandoffs`` against a real redis-server (started here on a free port in a
temp folder, AOF ``appendfsync everysec`` as in production: ``hotline.redis_process``), with
1, 4 and 16 asyncio tasks sharing one client (its connection pool), as the controllers do.

A cycle is what one transfer between platforms costs Redis: the sending platform's ``create``
(MULTI SET+ZADD EXEC), the receiving platform's ``picked_up`` (GET, then MULTI SET+ZREM EXEC)
and one ``get`` (the seat's screen / the API). The baseline, measured in the same run and
alternating with ours round by round: a plain SET (with the same TTL) + GET of a JSON blob of
the same size, no pydantic, no pending index.

Run: .venv/bin/python -m bench.handoff_redis [--quick] [--cycles 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis

from bench.e2e_stack import cpu_seconds
from calls.handoff import PENDING, TTL_S, Handoff, RedisHandoffs, new_token
from hotline.redis_process import RedisProcess
from tests.support.ports import free_port

BASELINE_PREFIX = "bench:blob:"
PLATFORMS = ("kunming", "dali", "qujing", "yuxi", "honghe")


def sample_handoff(index: int) -> Handoff:
    """A realistic case: an IVR path, a few tags, a seat's note in Chinese."""
    return Handoff(
        token=new_token(),
        from_platform=PLATFORMS[index % len(PLATFORMS)],
        from_call_id=f"kunming-{1764300000 + index}.{index % 977}",
        to="province",
        caller=f"139{index:08d}",
        ivr_path=("welcome", "language", "menu", "complaint", "seat"),
        tags={"category": "complaint", "lang": "zh", "menu": "3", "queue": "general", "transfer_by": "1001"},
        seat="1001",
        note="市民反映跨市公交线路调整问题，涉及省交通运输厅职责，请省级坐席继续处理。",
        ticket_id=f"KM-20261128-{index:05d}",
        created_at=datetime.now(UTC),
    )


@dataclass
class Cell:
    """One system at one concurrency, summed over rounds."""

    system: str
    tasks: int
    cycles: int = 0
    seconds: float = 0.0
    create_ms: list[float] = field(default_factory=list)  # ours: create; baseline: SET
    cycle_ms: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0

    @property
    def per_second(self) -> float:
        return self.cycles / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# one cycle: returns (first step ms, whole cycle ms)
Cycle = Callable[[int], Awaitable[tuple[float, float]]]


def ours(handoffs: RedisHandoffs) -> Cycle:
    async def cycle(index: int) -> tuple[float, float]:
        handoff = sample_handoff(index)
        start = time.perf_counter()
        await handoffs.create(handoff)
        created = time.perf_counter()
        got = await handoffs.get(handoff.token)
        done = await handoffs.picked_up(handoff.token, "province", f"province-{index}", datetime.now(UTC))
        end = time.perf_counter()
        if got is None or done is None or not done.picked_up_call_id:
            raise RuntimeError(f"hand-off {handoff.token} lost")
        return (created - start) * 1000, (end - start) * 1000

    return cycle


def baseline(client: aioredis.Redis, size: int) -> Cycle:
    async def cycle(index: int) -> tuple[float, float]:
        # same size as our JSON (the token varies, so build it per cycle like ours does)
        key = BASELINE_PREFIX + new_token()
        blob = f'{{"i":{index},"pad":"'.ljust(size - 2, "x") + '"}'
        start = time.perf_counter()
        await client.set(key, blob, ex=TTL_S)
        written = time.perf_counter()
        raw = await client.get(key)
        end = time.perf_counter()
        if raw is None or len(raw) != len(blob.encode()):
            raise RuntimeError(f"blob {key} lost")
        return (written - start) * 1000, (end - start) * 1000

    return cycle


async def run_cell(cell: Cell, cycle: Cycle, cycles: int, redis_pid: int | None, offset: int) -> None:
    """``cycles`` cycles shared by ``cell.tasks`` tasks (each takes the next index)."""
    counter = iter(range(offset, offset + cycles))

    async def worker() -> None:
        for index in counter:
            first, whole = await cycle(index)
            cell.create_ms.append(first)
            cell.cycle_ms.append(whole)

    cpu0, redis0 = time.process_time(), cpu_seconds(redis_pid)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(cell.tasks)))
    cell.seconds += time.perf_counter() - start
    cell.client_cpu_s += time.process_time() - cpu0
    cell.redis_cpu_s += cpu_seconds(redis_pid) - redis0
    cell.cycles += cycles


HEADER = (
    f"{'system':<34}{'tasks':>6}{'cycles':>8}{'records/s':>11}{'first p50':>10}{'first p99':>10}"
    f"{'cycle p50':>10}{'cycle p99':>10}{'client µs':>10}{'redis µs':>9}"
)


def row(cell: Cell) -> str:
    per = 1e6 / cell.cycles if cell.cycles else 0.0
    return (
        f"{cell.system:<34}{cell.tasks:>6}{cell.cycles:>8}{cell.per_second:>11.0f}"
        f"{percentile(cell.create_ms, 50):>10.3f}{percentile(cell.create_ms, 99):>10.3f}"
        f"{percentile(cell.cycle_ms, 50):>10.3f}{percentile(cell.cycle_ms, 99):>10.3f}"
        f"{cell.client_cpu_s * per:>10.0f}{cell.redis_cpu_s * per:>9.0f}"
    )


def ratio_row(mine: Cell, base: Cell) -> str:
    def r(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "n/a"

    return (
        f"{'ratio ours/baseline':<34}{mine.tasks:>6}{'':>8}{r(mine.per_second, base.per_second):>11}"
        f"{r(percentile(mine.create_ms, 50), percentile(base.create_ms, 50)):>10}"
        f"{r(percentile(mine.create_ms, 99), percentile(base.create_ms, 99)):>10}"
        f"{r(percentile(mine.cycle_ms, 50), percentile(base.cycle_ms, 50)):>10}"
        f"{r(percentile(mine.cycle_ms, 99), percentile(base.cycle_ms, 99)):>10}"
        f"{r(mine.client_cpu_s / mine.cycles, base.client_cpu_s / base.cycles):>10}"
        f"{r(mine.redis_cpu_s / mine.cycles, base.redis_cpu_s / base.cycles):>9}"
    )


async def bench(port: int, concurrency: list[int], cycles: int, rounds: int, warmup: int) -> None:
    client = aioredis.Redis(port=port, max_connections=max(concurrency) + 4)
    try:
        redis_pid = int((await client.info("server"))["process_id"])
        handoffs = RedisHandoffs(client)
        size = len(sample_handoff(0).model_dump_json().encode())
        picked = sample_handoff(0).model_copy(
            update={
                "picked_up_platform": "province",
                "picked_up_call_id": "province-0",
                "picked_up_at": datetime.now(UTC),
            }
        )
        systems: dict[str, Cycle] = {
            "baseline: SET+GET same-size JSON": baseline(client, size),
            "ours: create+get+picked_up": ours(handoffs),
        }
        for name, cycle in systems.items():  # connections opened, code paths warm
            await run_cell(Cell(name, max(concurrency)), cycle, warmup, redis_pid, 10_000_000)
        cells: dict[tuple[str, int], Cell] = {}
        offset = 0
        for tasks in concurrency:
            for round_no in range(rounds):
                order = list(systems.items())
                if round_no % 2:
                    order.reverse()  # neither system always runs on the warmer machine
                for name, cycle in order:
                    cell = cells.setdefault((name, tasks), Cell(name, tasks))
                    await run_cell(cell, cycle, cycles, redis_pid, offset)
                    offset += cycles
        pending = await client.zcard(PENDING)
        print()
        print(
            f"Hand-off records through Redis: {size} B JSON per record ({len(picked.model_dump_json().encode())} B "
            f"once picked up), {cycles} cycles × {rounds} rounds per cell; first = create (ours) / SET (baseline)"
        )
        print("latencies in ms; client µs / redis µs = CPU per cycle of this process / of redis-server")
        print(HEADER)
        for tasks in concurrency:
            base, mine = cells[(next(iter(systems)), tasks)], cells[(list(systems)[1], tasks)]
            print(row(base))
            print(row(mine))
            print(ratio_row(mine, base))
        print(f"hand-offs left pending after the run (should be 0): {pending}")
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1000 cycles × 2 rounds per cell (< 1 min)")
    parser.add_argument("--cycles", type=int, default=4000, help="cycles per cell and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell, systems alternating")
    parser.add_argument("--concurrency", default="1,4,16", help="asyncio tasks, comma separated")
    parser.add_argument("--workdir", type=Path, help="Redis data folder (default: a new temp folder)")
    args = parser.parse_args()
    cycles, rounds = (1000, 2) if args.quick else (args.cycles, args.rounds)
    concurrency = [int(n) for n in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-handoff-redis-") as tmp:
        folder = args.workdir or Path(tmp)
        redis_server = RedisProcess(folder / "redis", free_port())
        redis_server.start()
        try:
            asyncio.run(bench(redis_server.port, concurrency, cycles, rounds, warmup=min(500, cycles)))
        finally:
            redis_server.stop()


if __name__ == "__main__":
    main()
