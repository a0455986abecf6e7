"""Saving call records: the compare-and-set script vs the plain MULTI pipeline it replaced.

``calls.store.RedisCallStore.save_many`` (one MULTI/EXEC around one Lua script: per record a
GET and a cjson decode of the stored record, then its writes only where the stored revision is
not newer) against the pipeline it replaced (``PipelineCallStore`` below: the same writes
queued in one MULTI/EXEC, no check), on a real redis-server (started here on a free port in a
temp folder, AOF ``appendfsync everysec`` as in production: ``hotline.redis_process``). One
writer task, as the tracker's writer is one queue; batches of 1, 10 and 100 records (an idle
hour, a busy second, a burst after an outage). The records are the nine versions of a call
through IVR steps, a queue, a seat, its end and a case (tests/unit/test_call_store_writes.py),
saved step by step for all calls, revision by revision; the two stores alternate round by round.

Run: .venv/bin/python -m bench.call_store_cas [--quick] [--calls 600] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench.e2e_stack import cpu_seconds
from calls.caller_index import HISTORY_WINDOW, MAX_CALLS_PER_CALLER, CallerKeys
from calls.model import CallRecord
from calls.store import INDEXED_CALLS_MAX, CountOnce, RedisCallStore
from hotline.redis_process import RedisProcess
from tests.support.ports import free_port
from tests.unit.test_call_store_writes import versions

RETENTION = timedelta(days=30)
KEYS = CallerKeys("bench-secret")


class PipelineCallStore(RedisCallStore):
    """The writes before revisions, as calls/store.py had them (commit a0763fb): the same keys
    queued in one MULTI/EXEC, nothing checked."""

    async def save_many(self, records: Sequence[CallRecord], counts: Sequence[CountOnce] = ()) -> dict[str, int]:
        """Save ``records`` in one round trip (one MULTI/EXEC: all or none); no counts then."""
        assert not counts, "the old writes had no counts"
        if not records:
            return {}
        written: list[tuple[CallRecord, frozenset[str]]] = []
        async with self._redis.pipeline(transaction=True) as pipe:
            for record in records:
                written.append((record, self._queue_save(pipe, record)))
            await pipe.execute()
        for record, entries in written:
            if record.is_open:
                self._indexed[record.call_id] = entries
                self._indexed.move_to_end(record.call_id)
                while len(self._indexed) > INDEXED_CALLS_MAX:
                    self._indexed.popitem(last=False)
            else:
                self._indexed.pop(record.call_id, None)  # an amendment after the end writes them again
        return {}

    def _queue_save(self, pipe: Any, record: CallRecord) -> frozenset[str]:
        """Queue one record's writes on ``pipe``; returns the index entries it then has."""
        started_ms = int(record.started_at.timestamp() * 1000)
        cutoff_ms = started_ms - int(self._retention.total_seconds() * 1000)
        done = self._indexed.get(record.call_id, frozenset())
        entries = {f"started={started_ms}"}
        if record.is_open:
            pipe.set(self._key(record.call_id), record.model_dump_json())
            if "open" not in done:
                pipe.sadd(self._open_key(record.platform), record.call_id)
            entries.add("open")
        else:
            pipe.set(self._key(record.call_id), record.model_dump_json(), ex=self._retention)
            pipe.srem(self._open_key(record.platform), record.call_id)
        if f"started={started_ms}" not in done:
            pipe.zadd(self._recent_key(record.platform), {record.call_id: started_ms})
            pipe.zremrangebyscore(self._recent_key(record.platform), "-inf", cutoff_ms)
        for by, value in self.search_fields(record).items():
            entry = f"{by}={value}"
            entries.add(entry)
            if entry in done and f"started={started_ms}" in done:
                continue
            index = self.index_key(record.platform, by, value)
            pipe.zadd(index, {record.call_id: started_ms})
            pipe.zremrangebyscore(index, "-inf", cutoff_ms)
            pipe.pexpire(index, int(self._retention.total_seconds() * 1000))
        if self._caller_keys is not None and record.caller:
            entry = f"caller={record.caller}"
            entries.add(entry)
            if entry not in done or f"started={started_ms}" not in done:
                by_caller = self._caller_keys.calls_key(record.platform, record.caller)
                window_ms = int(HISTORY_WINDOW.total_seconds() * 1000)
                pipe.zadd(by_caller, {record.call_id: started_ms})
                pipe.zremrangebyscore(by_caller, "-inf", started_ms - window_ms)
                pipe.zremrangebyrank(by_caller, 0, -(MAX_CALLS_PER_CALLER + 1))
                pipe.pexpire(by_caller, window_ms)  # 90 days after its latest call
        return frozenset(entries)


@dataclass
class Cell:
    system: str
    batch: int
    records: int = 0
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def population(calls: int, offset: int) -> list[list[CallRecord]]:
    """``calls`` calls' versions, numbered 1… as the tracker numbers them."""
    out = []
    for n in range(calls):
        steps = versions(f"kunming-{offset + n}.1", f"139{(offset + n) % 10**8:08d}")
        out.append([v.model_copy(update={"revision": i + 1}) for i, v in enumerate(steps)])
    return out


async def run_cell(cell: Cell, store: RedisCallStore, calls: list[list[CallRecord]], redis_pid: int) -> None:
    cpu0, redis0, wall0 = time.process_time(), cpu_seconds(redis_pid), time.perf_counter()
    for step in range(len(calls[0])):
        for start in range(0, len(calls), cell.batch):
            batch = [call[step] for call in calls[start : start + cell.batch]]
            t0 = time.perf_counter()
            await store.save_many(batch)
            cell.latencies_ms.append((time.perf_counter() - t0) * 1000)
            cell.records += len(batch)
    cell.wall_s += time.perf_counter() - wall0
    cell.client_cpu_s += time.process_time() - cpu0
    cell.redis_cpu_s += cpu_seconds(redis_pid) - redis0


HEADER = (
    f"{'system':<34}{'batch':>6}{'records':>9}{'records/s':>11}"
    f"{'p50 ms':>9}{'p99 ms':>9}{'client µs':>10}{'redis µs':>9}"
)


def row(cell: Cell) -> str:
    per = 1e6 / cell.records
    return (
        f"{cell.system:<34}{cell.batch:>6}{cell.records:>9}{cell.records / cell.wall_s:>11.0f}"
        f"{percentile(cell.latencies_ms, 50):>9.3f}{percentile(cell.latencies_ms, 99):>9.3f}"
        f"{cell.client_cpu_s * per:>10.1f}{cell.redis_cpu_s * per:>9.1f}"
    )


def ratio_row(mine: Cell, base: Cell) -> str:
    def r(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    return (
        f"{'ratio script/pipeline':<34}{mine.batch:>6}{'':>9}"
        f"{r(mine.records / mine.wall_s, base.records / base.wall_s):>11}"
        f"{r(percentile(mine.latencies_ms, 50), percentile(base.latencies_ms, 50)):>9}"
        f"{r(percentile(mine.latencies_ms, 99), percentile(base.latencies_ms, 99)):>9}"
        f"{r(mine.client_cpu_s / mine.records, base.client_cpu_s / base.records):>10}"
        f"{r(mine.redis_cpu_s / mine.records, base.redis_cpu_s / base.records):>9}"
    )


async def bench(port: int, batches: list[int], calls: int, rounds: int) -> None:
    client = aioredis.Redis(port=port)
    try:
        redis_pid = int((await client.info("server"))["process_id"])
        systems: dict[str, type[RedisCallStore]] = {
            "pipeline (before)": PipelineCallStore,
            "compare-and-set script (now)": RedisCallStore,
        }
        for kind in systems.values():  # warm: connections, code paths, the script cached
            await run_cell(Cell("warm", 10), kind(client, RETENTION, "kunming", KEYS), population(50, 0), redis_pid)
        cells: dict[tuple[str, int], Cell] = {}
        offset = 1000
        for batch in batches:
            for round_no in range(rounds):
                order = list(systems.items())
                if round_no % 2:
                    order.reverse()  # neither always runs on the warmer machine
                for name, kind in order:
                    cell = cells.setdefault((name, batch), Cell(name, batch))
                    store = kind(client, RETENTION, "kunming", KEYS)
                    await run_cell(cell, store, population(calls, offset), redis_pid)
                    offset += calls
        size = len(population(1, 0)[0][-1].model_dump_json().encode())
        print()
        print(f"Call record saves: {calls} calls × 9 versions × {rounds} rounds per cell, one writer; {size} B ended")
        print(
            "p50/p99: per batch (one round trip); client µs / redis µs: CPU per record of this process / redis-server"
        )
        print(HEADER)
        for batch in batches:
            base, mine = (cells[(name, batch)] for name in systems)
            print(row(base))
            print(row(mine))
            print(ratio_row(mine, base))
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200 calls × 2 rounds per cell")
    parser.add_argument("--calls", type=int, default=600, help="calls per cell and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell, systems alternating")
    parser.add_argument("--batches", default="1,10,100", help="records per save_many, comma separated")
    args = parser.parse_args()
    calls, rounds = (200, 2) if args.quick else (args.calls, args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-call-store-") as tmp:
        redis_server = RedisProcess(Path(tmp) / "redis", free_port())
        redis_server.start()
        try:
            asyncio.run(bench(redis_server.port, [int(n) for n in args.batches.split(",")], calls, rounds))
        finally:
            redis_server.stop()


if __name__ == "__main__":
    main()
