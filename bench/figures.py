"""The cost of one `/api/v1/seats` and one `/metrics` request with 100 seats polling, at 1,000,
10,000 and 50,000 calls in the last 24 h: before (hotline/figures.py as it was at ``--before``,
loaded side by side from git: it reads up to 10,000 call records per request) and after (the
rolling 24 h figures, acd/window.py, seeded once from the stored records).

Both run in the same process against the same real redis-server (``hotline.redis_process``)
holding the same generated records (100 seats, 8 queues, waits, abandons, surveys). Measured per
request: wall time (median, p99) and Redis commands (INFO commandstats, summed, before and after
the requests). `/api/v1/seats` = ``Figures.seat_figures()``; `/metrics` = ``Figures.metrics()`` —
what those handlers ask of the figures (the HTTP framing is the same for both).

Run: .venv/bin/python -m bench.figures [--requests 30] [--before 1423435]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import redis.asyncio as aioredis

from acd.seat import Seat, SeatState
from calls.model import CallOutcome, CallRecord, CallState
from calls.store import RedisCallStore
from hotline.figures import Figures
from hotline.redis_process import RedisProcess
from tests.support.ports import free_port

PLATFORM = "kunming"
QUEUES = ("general", "dialect", "complaint", "enterprise", "english", "housing", "social", "transport")
SEATS = [f"{1001 + i}" for i in range(100)]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SIZES = (1_000, 10_000, 50_000)


def generate(rng: random.Random, n: int) -> list[CallRecord]:
    """``n`` ended calls queued within the last 24 h."""
    out = []
    for i in range(n):
        queued = NOW - timedelta(seconds=rng.uniform(60, 86_000))
        answered = rng.random() < 0.9
        wait = timedelta(seconds=rng.expovariate(1 / 12))
        talk = timedelta(seconds=rng.expovariate(1 / 150))
        out.append(
            CallRecord(
                call_id=f"b-{i}", platform=PLATFORM, caller=f"139{i:08d}", started_at=queued - timedelta(seconds=40),
                state=CallState.ENDED, ended_at=queued + wait + (talk if answered else timedelta()),
                queue=rng.choice(QUEUES), queued_at=queued, seat=rng.choice(SEATS) if answered else "",
                seat_answered_at=queued + wait if answered else None,
                survey_score=rng.choice((None, 1, 1, 2, 3)) if answered else None,
                outcome=CallOutcome.ANSWERED if answered else CallOutcome.ABANDONED,
            )
        )  # fmt: skip
    return out


async def fill(client: aioredis.Redis, records: list[CallRecord]) -> None:
    """As RedisCallStore.save writes them (record + the start index), in big pipelines."""
    await client.flushall()
    for first in range(0, len(records), 2000):
        async with client.pipeline(transaction=False) as pipe:
            for record in records[first : first + 2000]:
                pipe.set(f"hotline:call:{record.call_id}", record.model_dump_json())
                pipe.zadd(RedisCallStore.recent_index(PLATFORM), {record.call_id: record.started_at.timestamp() * 1000})
            await pipe.execute()


async def commands(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(value["calls"]) for name, value in stats.items() if name != "cmdstat_info")


def old_module(rev: str) -> ModuleType:
    """hotline/figures.py as it was at ``rev`` (git show), imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{rev}:hotline/figures.py"], check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader("bench_figures_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    exec(compile(source, f"{rev}:hotline/figures.py", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def parts() -> dict[str, Any]:
    """What Figures reads besides the records: 100 seats, 8 queues, an idle ACD (stand-ins)."""
    seats = [Seat(seat_id, SeatState.READY) for seat_id in SEATS]
    config = SimpleNamespace(platform=SimpleNamespace(id=PLATFORM), seats=[SimpleNamespace(queues=list(QUEUES))])
    acd = SimpleNamespace(
        waiting=lambda _name: [], offers_total=0, offers_missed=0, offers_not_started=0, offers_unconfirmed=0
    )
    tracker = SimpleNamespace(watch=lambda _watcher: None)
    return {
        "config": config, "seats": SimpleNamespace(all=lambda: seats), "acd": acd, "tracker": tracker,
        "handoffs": None, "clock": lambda: NOW,
    }  # fmt: skip


async def measure(
    client: aioredis.Redis, request: Callable[[], Awaitable[object]], requests: int
) -> tuple[float, float, float]:
    """(median ms, p99 ms, Redis commands) per request."""
    await request()  # warm (the new figures seed here, once)
    before = await commands(client)
    took = []
    for _ in range(requests):
        began = time.perf_counter()
        await request()
        took.append((time.perf_counter() - began) * 1000)
    per_request = (await commands(client) - before) / requests
    took.sort()
    return statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.99))], per_request


async def main(requests: int, rev: str) -> None:
    before_module = old_module(rev)
    rng = random.Random(12345)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        server = RedisProcess(Path(folder), free_port())
        server.start()
        client = aioredis.Redis.from_url(server.url)
        try:
            store = RedisCallStore(client, timedelta(days=30), PLATFORM)
            for size in SIZES:
                await fill(client, generate(rng, size))

                async def since(at: datetime) -> list[CallRecord]:
                    out: list[CallRecord] = []
                    offset = 0
                    while True:
                        ids, page = await store.started_since(int(at.timestamp() * 1000), offset, 2000)
                        out, offset = out + page, offset + ids
                        if ids < 2000:
                            return out

                old: Any = before_module.Figures(**parts(), recent_calls=store.recent)
                new = Figures(**parts(), stored_calls=since)
                seeded = time.perf_counter()
                await new.seed()
                seed_ms = (time.perf_counter() - seeded) * 1000
                for name, o, n in (
                    ("/api/v1/seats", old.seat_figures, new.seat_figures),
                    ("/metrics", old.metrics, new.metrics),
                ):
                    rows.append((name, size, await measure(client, o, requests), await measure(client, n, requests)))
                print(f"{size} calls: seeded once in {seed_ms:.0f} ms, {len(new.window)} window entries", flush=True)
        finally:
            await client.aclose()
            server.stop()
    print()
    print(f"100 seats, 8 queues; {requests} requests each; before = hotline/figures.py at {rev}")
    print()
    print("| request | calls in 24 h | before p50 ms | before p99 ms | before Redis cmds | after p50 ms | after p99 ms "
          "| after Redis cmds | p50 before/after |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, (b50, b99, bcmd), (a50, a99, acmd) in rows:
        print(
            f"| {name} | {size:,} | {b50:.1f} | {b99:.1f} | {bcmd:.0f} | {a50:.2f} | {a99:.2f} | {acmd:.0f} "
            f"| {b50 / a50:.0f}× |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--before", default="1423435", help="the git revision of the old hotline/figures.py")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.before))
