"""ASR bench part 2: messages to tickets with N ``asr-worker`` processes — a burst's latency,
throughput, CPU and memory per worker count."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import redis.asyncio as aioredis
import yaml

from bench.asr_speech import Speech
from bench.e2e_stack import cpu_seconds
from ivr.calendar import PlatformCalendar
from tests.support.speech import korean_model_folder
from tickets.store import RedisTicketStore, export_stream
from voicemail.intake import MessageIntake, RecordedMessage
from voicemail.queue import PARKED, AsrQueue
from voicemail.sink import TicketStoreSink

REPO = Path(__file__).resolve().parent.parent
PLATFORM = "kunming"
POLL_S = 0.05
READY_TIMEOUT_S = 180.0


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class BurstResult:
    workers: int
    round: int
    messages: int
    audio_s: float
    latencies_s: list[float] = field(default_factory=list)
    enqueue_s: float = 0.0  # t0 → every job queued (intake: sidecar fsync + enqueue)
    wall_s: float = 0.0  # t0 → last ticket
    cpu_s: list[float] = field(default_factory=list)  # per worker, during the burst
    hwm_mb: list[float] = field(default_factory=list)  # per worker, peak RSS since start
    ready_s: float = 0.0  # start → every worker ready (model loaded)
    parked: int = 0
    load: tuple[float, float] = (0.0, 0.0)  # 1-min load average at t0 and at the last ticket

    @property
    def speed(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    @property
    def per_second(self) -> float:
        return self.messages / self.wall_s if self.wall_s else 0.0


def peak_rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else float("nan")


def write_config(folder: Path, redis_url: str, spool: Path, model: Path | None = None) -> Path:
    config = {
        "platform": {"id": PLATFORM},
        "redis": {"url": redis_url},
        "paths": {
            "runtime_dir": str(folder / "var"),
            "spool_dir": str(spool),
            "dialplans_dir": str(REPO / "dialplans"),
        },
        "asr": {"model_path": str(model or korean_model_folder())},  # free speech, as in production
        "logging": {"level": "info", "format": "json"},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"asr-worker exited with {self.process.returncode}; see {self.log}")
        return "asr.worker_started" in self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_workers(
    count: int, config: Path, folder: Path, tag: str, command: tuple[str, ...] = ("-m", "hotline.cli")
) -> list[Worker]:
    workers = []
    for index in range(count):
        log_path = folder / f"asr-worker-{tag}-{index}.log"
        log: IO[bytes] = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, *command, "asr-worker", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        log.close()
        workers.append(Worker(process, log_path))
    return workers


async def wait_ready(workers: list[Worker]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all(worker.ready() for worker in workers):
        if time.monotonic() > deadline:
            raise RuntimeError(f"asr-workers not ready within {READY_TIMEOUT_S:g} s")
        await asyncio.sleep(POLL_S)


async def ticket_times(client: aioredis.Redis, stream: str) -> dict[str, float]:
    """recording → epoch seconds its ticket was created (the export entry's id, Redis's ms clock)."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(stream))
    times = {}
    for entry_id, fields in entries:
        ticket = json.loads(fields[b"ticket"])
        times[str(ticket["recording"])] = int(entry_id.split(b"-")[0]) / 1000
    return times


@dataclass(frozen=True)
class Setup:
    client: aioredis.Redis
    config: Path
    folder: Path  # worker logs
    spool: Path
    speeches: list[Speech]
    messages: int
    timeout_s: float
    command: tuple[str, ...] = ("-m", "hotline.cli")  # how a worker process is started


async def burst(setup: Setup, workers_count: int, round_: int) -> BurstResult:
    client, spool, speeches, messages = setup.client, setup.spool, setup.speeches, setup.messages
    await client.flushdb()
    shutil.rmtree(spool / "voicemail", ignore_errors=True)
    (spool / "voicemail").mkdir(parents=True)
    # the bench only asks the store whether a message has a ticket; the workers file them
    store = RedisTicketStore(client, lambda _platform: PlatformCalendar(), export_stream(PLATFORM))
    queue = AsrQueue(client, TicketStoreSink(store), PLATFORM)
    intake = MessageIntake(spool, queue)
    chosen = [speeches[index % len(speeches)] for index in range(messages)]
    result = BurstResult(workers_count, round_, messages, sum(speech.seconds for speech in chosen))

    started = time.monotonic()
    workers = start_workers(workers_count, setup.config, setup.folder, f"r{round_}-w{workers_count}", setup.command)
    try:
        await wait_ready(workers)
        result.ready_s = time.monotonic() - started
        await queue.ensure_group()
        # the messages are on disk before t0, as Asterisk wrote them during the calls
        recorded = []
        for index, speech in enumerate(chosen):
            call_id = f"{PLATFORM}-r{round_}w{workers_count}-{index:04d}"
            recording = f"voicemail/{call_id}.wav"
            shutil.copyfile(speech.path, spool / recording)
            recorded.append(
                RecordedMessage(
                    call_id=call_id,
                    recording=recording,
                    platform=PLATFORM,
                    caller=f"1395{round_:02d}{workers_count:01d}{index:04d}",  # distinct: no repeat-call merging
                    tags={"category": "complaint"},
                    duration_s=speech.seconds,
                )
            )
        cpu0 = [cpu_seconds(worker.process.pid) for worker in workers]
        load0 = os.getloadavg()[0]
        t0 = time.time()
        await asyncio.gather(*(intake.message_recorded(message) for message in recorded))
        result.enqueue_s = time.time() - t0
        stream = export_stream(PLATFORM)
        deadline = time.monotonic() + setup.timeout_s
        while await client.xlen(stream) < messages:
            parked = await client.hlen(f"{PARKED}:{PLATFORM}")
            if parked or time.monotonic() > deadline:
                done = await client.xlen(stream)
                raise RuntimeError(f"burst stalled: {done}/{messages} tickets, {parked} parked; logs in {setup.folder}")
            for worker in workers:
                worker.ready()  # raises if one died
            await asyncio.sleep(POLL_S)
        result.cpu_s = [cpu_seconds(worker.process.pid) - before for worker, before in zip(workers, cpu0, strict=True)]
        result.hwm_mb = [peak_rss_mb(worker.process.pid) for worker in workers]
        result.load = (load0, os.getloadavg()[0])
        times = await ticket_times(client, stream)
        missing = {message.recording for message in recorded} - set(times)
        if missing:
            raise RuntimeError(f"no ticket for {sorted(missing)[:3]} …")
        result.latencies_s = [times[message.recording] - t0 for message in recorded]
        result.wall_s = max(result.latencies_s)
        result.parked = int(await client.hlen(f"{PARKED}:{PLATFORM}"))
    finally:
        for worker in workers:
            worker.stop()
    return result


def print_bursts(results: list[BurstResult], messages: int, audio_s: float) -> None:
    cores = os.cpu_count() or 1
    print(
        f"\nMessages to tickets: a burst of {messages} messages ({audio_s:.0f} s of audio) queued at t0; "
        f"asr-worker processes (each: {cores} decode threads, batch {cores}), free speech"
    )
    print(
        f"{'workers':<9}{'round':>6}{'ready s':>8}{'queue ms':>9}{'p50 s':>8}{'p99 s':>8}{'max s':>8}"
        f"{'burst s':>9}{'msg/s':>7}{'× real time':>12}{'CPU s/audio s':>14}{'cores':>6}"
        f"{'load':>10}{'peak RSS MB per worker':>24}"
    )
    for r in results:
        hwm = " ".join(f"{mb:.0f}" for mb in r.hwm_mb)
        print(
            f"{r.workers:<9}{r.round:>6}{r.ready_s:>8.1f}{r.enqueue_s * 1000:>9.0f}"
            f"{percentile(r.latencies_s, 50):>8.2f}{percentile(r.latencies_s, 99):>8.2f}{max(r.latencies_s):>8.2f}"
            f"{r.wall_s:>9.2f}{r.per_second:>7.2f}{r.speed:>12.1f}{sum(r.cpu_s) / r.audio_s:>14.3f}"
            f"{sum(r.cpu_s) / r.wall_s:>6.2f}"
            f"{f'{r.load[0]:.1f}→{r.load[1]:.1f}':>10}{hwm:>24}"
        )
    counts = sorted({r.workers for r in results})
    if len(counts) < 2:
        return
    base = counts[0]
    for count in counts[1:]:
        pairs = [
            (one, many)
            for one in results
            for many in results
            if one.workers == base and many.workers == count and one.round == many.round
        ]
        if not pairs:
            continue
        speedups = [one.wall_s / many.wall_s for one, many in pairs]
        p50s = [percentile(many.latencies_s, 50) / percentile(one.latencies_s, 50) for one, many in pairs]
        cpus = [(sum(many.cpu_s) / many.audio_s) / (sum(one.cpu_s) / one.audio_s) for one, many in pairs]
        print(
            f"ratio {count}/{base} workers: speed-up (burst wall {base} / {count}) "
            + ", ".join(f"{s:.2f}" for s in speedups)
            + f" (mean {statistics.fmean(speedups):.2f}); p50 latency "
            + ", ".join(f"{p:.2f}" for p in p50s)
            + "; CPU per audio s "
            + ", ".join(f"{c:.2f}" for c in cpus)
            + " (per round)"
        )


async def workers_bench(
    folder: Path, redis_url: str, speeches: list[Speech], *, messages: int, counts: list[int], rounds: int
) -> list[BurstResult]:
    spool = folder / "spool"
    config = write_config(folder, redis_url, spool)
    client = aioredis.Redis.from_url(redis_url)
    audio_s = sum(speeches[index % len(speeches)].seconds for index in range(messages))
    timeout_s = 120.0 + 2.0 * audio_s  # half real time on one core: something is wrong
    setup = Setup(client, config, folder, spool, speeches, messages, timeout_s)
    results = []
    try:
        for round_ in range(1, rounds + 1):
            order = counts if round_ % 2 else list(reversed(counts))
            for count in order:
                result = await burst(setup, count, round_)
                print(
                    f"  round {round_}, {count} worker(s): burst {result.wall_s:.1f} s, "
                    f"p50 {percentile(result.latencies_s, 50):.1f} s",
                    file=sys.stderr,
                )
                results.append(result)
    finally:
        await client.aclose()
    results.sort(key=lambda r: (r.workers, r.round))
    print_bursts(results, messages, audio_s)
    return results
