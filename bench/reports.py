"""Report queries over a busy prefecture's month: 30 days × 20,000 calls a day.

The calls are generated (Erlang-ish: arrivals peaking by day, 8 queues, 100 seats, waits,
abandons, surveys, IVR paths), turned into their increments by the real counting code
(``reports.counting.call_increments``) and written straight into the rollup hashes (summed per
hour first, so filling takes seconds, not 600,000 Lua calls). Then each report is asked for the
month (``by=day``) and a 400-day range (the longest allowed, mostly empty hours) through
``ReportService.report`` against a real redis-server (``hotline.redis_process``), and the
latency percentiles are printed as a Markdown table. Also timed: the once-only apply of one
call's increments (the Lua script), as the call tracker's ended listener runs it.

Run: .venv/bin/python -m bench.reports [--days 30] [--calls-per-day 20000] [--queries 100]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from calls.model import CallOutcome, CallRecord, CallState
from hotline.redis_process import RedisProcess
from reports.buckets import Period
from reports.counting import KINDS, call_increments
from reports.service import ReportService
from reports.store import RedisRollups, rollup_key
from tests.support.ports import free_port

CHINA = ZoneInfo("Asia/Shanghai")
PLATFORM = "kunming"
QUEUES = ("general", "dialect", "complaint", "enterprise", "english", "housing", "social", "transport")
FIRST = date(2026, 10, 1)


def generate(rng: random.Random, day: date, n: int) -> list[CallRecord]:
    """``n`` calls of one local day, arrivals weighted to 08:00–22:00."""
    hours = [h for h in range(24) for _ in range(6 if 8 <= h < 22 else 1)]
    out = []
    for i in range(n):
        start = datetime(day.year, day.month, day.day, rng.choice(hours), tzinfo=CHINA) + timedelta(
            seconds=rng.uniform(0, 3600)
        )
        wait = timedelta(seconds=rng.expovariate(1 / 20))
        answered = rng.random() < 0.9
        seat = f"{1001 + rng.randrange(100)}"
        end = start + wait + (timedelta(seconds=rng.lognormvariate(5, 0.6)) if answered else timedelta(0))
        out.append(
            CallRecord(
                call_id=f"{day:%Y%m%d}-{i}", platform=PLATFORM, state=CallState.ENDED,
                started_at=start.astimezone(UTC), queue=rng.choice(QUEUES), queued_at=start.astimezone(UTC),
                seat=seat if answered else "", seat_answered_at=(start + wait).astimezone(UTC) if answered else None,
                ended_at=end.astimezone(UTC), outcome=CallOutcome.ANSWERED if answered else CallOutcome.ABANDONED,
                survey_score=rng.choice((None, 1, 1, 2, 3)) if answered else None,
                ivr_path=("greeting", "menu", "queue"), digits=(f"menu={rng.choice('1234')}",),
            )
        )  # fmt: skip
    return out


async def fill(client: aioredis.Redis, days: int, per_day: int) -> float:
    """Every day's calls into the hour hashes; returns seconds taken."""
    rng = random.Random(12345)
    began = time.perf_counter()
    for d in range(days):
        sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for record in generate(rng, FIRST + timedelta(days=d), per_day):
            for inc in call_increments(record, CHINA):
                for bucket in (inc.bucket, inc.bucket[:8]):  # the hour and its day, as RedisRollups.apply
                    sums[rollup_key(inc.kind, PLATFORM, bucket)][inc.field] += inc.amount
        async with client.pipeline(transaction=False) as pipe:
            for key, fields in sums.items():
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis-py's Mapping key type is a union
            await pipe.execute()
    return time.perf_counter() - began


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(days: int, per_day: int, queries: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        server = RedisProcess(Path(folder), free_port())
        server.start()
        client = aioredis.Redis.from_url(server.url)
        try:
            fill_s = await fill(client, days, per_day)
            rollups = RedisRollups(client, keep=timedelta(days=800), marker_ttl=timedelta(days=7))
            service = ReportService(rollups, PLATFORM, "Asia/Shanghai", lambda what, job: None)
            last = FIRST + timedelta(days=days - 1)
            print(f"filled {days} days × {per_day} calls in {fill_s:.1f} s; Redis keys: {await client.dbsize()}")
            print()
            print("| report | range | rows | p50 ms | p99 ms | max ms |")
            print("|---|---|---:|---:|---:|---:|")
            for kind in KINDS:
                for label, first, by in (
                    (f"{days} days by day", FIRST, Period.DAY),
                    (f"{min(days, 31)} days by hour", last - timedelta(days=min(days, 31) - 1), Period.HOUR),
                    ("400 days by month", last - timedelta(days=399), Period.MONTH),
                ):
                    took, rows = [], 0
                    for _ in range(queries):
                        began = time.perf_counter()
                        rows = len(await service.report(kind, PLATFORM, first, last, by))
                        took.append((time.perf_counter() - began) * 1000)
                    print(
                        f"| {kind} | {label} | {rows} | {statistics.median(took):.1f} | {pct(took, 0.99):.1f} "
                        f"| {max(took):.1f} |"
                    )
            rng = random.Random(7)
            records = generate(rng, FIRST, 2000)
            began = time.perf_counter()
            for record in records:
                await service.on_call_ended(record.model_copy(update={"call_id": "apply-" + record.call_id}))
            apply_ms = (time.perf_counter() - began) * 1000 / len(records)
            print()
            print(f"counting one ended call (Lua: marker + HINCRBYs + EXPIREs): {apply_ms:.2f} ms mean over 2000")
        finally:
            await client.aclose()
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--calls-per-day", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.days, args.calls_per_day, args.queries))
