"""ASR: callers' messages to tickets — real-time factor per stream, throughput per worker process.

1. **One transcriber, one stream**: a ``voicemail.asr.VoskTranscriber`` decodes ~10 distinct
   8 kHz Korean sentences (espeak-ng ``-v ko`` + sox, 3–9 s each, cached in a temp folder)
   one after the other in this process, free speech and with the tests' small grammar.
   ``× real time`` = audio seconds / wall seconds; ``CPU s / audio s`` from this process.
2. **Messages to tickets with 1 and 2 worker processes**: a real redis-server
   (``hotline.redis_process``, free port, temp folder), a temp ``config.yaml`` (platform
   kunming, the repo's dialplans for calendars, the Korean model, free speech), N
   ``python -m hotline.cli asr-worker`` processes started and ready (``asr.worker_started``
   logged; model loading not counted), then a burst: every message copied into
   ``<spool>/voicemail/<call>.wav`` and handed to ``voicemail.intake.MessageIntake`` (sidecar
   fsynced, job queued) at t0, all at once. A message's latency = t0 → its ticket's creation,
   read from the ticket export stream's entry id (Redis's clock in ms, written in the same
   MULTI as the ticket; same host as ours). Burst wall = t0 → last ticket; aggregate ×
   real time = burst audio / burst wall. CPU and peak RSS (``VmHWM``) per worker from /proc.
   ``cores`` = the workers' CPU seconds / burst wall. Rounds alternate 1 and 2 workers; the
   ratio row compares them in the same run.

Run: .venv/bin/python -m bench.asr [--quick] [--messages 50] [--rounds 1] [--workers 1,2] [--passes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import redis.asyncio as aioredis
import structlog
import vosk
import yaml

from bench.e2e_stack import cpu_seconds
from hotline.redis_process import RedisProcess
from ivr.calendar import PlatformCalendar
from tests.support.ports import free_port
from tests.support.speech import korean_model_folder, korean_speech_wav
from tickets.store import RedisTicketStore, export_stream
from voicemail.asr import VoskTranscriber
from voicemail.intake import MessageIntake, RecordedMessage
from voicemail.jobs import PARKED, AsrQueue
from voicemail.sink import TicketStoreSink

REPO = Path(__file__).resolve().parent.parent
PLATFORM = "kunming"
GRAMMAR = ("안녕하세요", "감사합니다", "전화", "도로")  # the tests' (tests/unit/test_asr.py)
SENTENCES = (  # callers' requests, 3-9 s each when espeak-ng speaks them
    "안녕하세요 도로에 큰 구멍이 있습니다",
    "우리 동네 가로등이 일주일째 꺼져 있어서 밤에 너무 어둡습니다",
    "버스 노선이 바뀌어서 출근하기가 불편합니다 다시 확인해 주세요",
    "아파트 앞 공사 소음 때문에 아이가 잠을 못 잡니다 공사 시간을 지켜 주시기 바랍니다",
    "감사합니다 지난번에 신고한 쓰레기 문제가 아직 해결되지 않았습니다",
    "전화 드렸는데 연결이 안 돼서 메시지를 남깁니다",
    "시장 근처에 불법 주차된 차들 때문에 소방차가 들어갈 수 없습니다 빨리 단속해 주세요",
    "수도 요금이 지난달보다 세 배나 많이 나왔습니다 계량기를 점검해 주시면 감사하겠습니다",
    "공원 화장실이 고장 나서 사용할 수 없습니다",
    "학교 앞 횡단보도에 신호등이 없어서 아이들이 위험합니다 신호등 설치를 요청드립니다 연락 부탁드립니다",
)
POLL_S = 0.05
READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Speech:
    path: Path
    text: str
    seconds: float


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes() / float(reader.getframerate())


def speech_files(cache: Path) -> list[Speech]:
    """The sentences as 8 kHz 16-bit mono WAVs, synthesised once into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    speeches = []
    for text in SENTENCES:
        path = cache / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.wav"
        if not path.exists():
            partial = path.with_name(f"partial-{path.name}")
            korean_speech_wav(partial, text)
            partial.replace(path)
        speeches.append(Speech(path, text, wav_seconds(path)))
    return speeches


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# ---------------------------------------------------------------- part 1: one stream


@dataclass(frozen=True)
class StreamResult:
    mode: str
    files: int
    audio_s: float
    wall_s: float
    cpu_s: float
    load_s: float
    recognised: int  # files with some text
    confidence: float

    @property
    def speed(self) -> float:
        return self.audio_s / self.wall_s

    @property
    def cpu_per_audio(self) -> float:
        return self.cpu_s / self.audio_s


def one_stream(mode: str, grammar: tuple[str, ...] | None, speeches: list[Speech], repeats: int) -> StreamResult:
    started = time.perf_counter()
    transcriber = VoskTranscriber(korean_model_folder(), grammar=grammar, workers=1)
    load_s = time.perf_counter() - started
    vosk.SetLogLevel(-2)  # the transcriber's -1 still prints kaldi warnings (a grammar word missing)
    try:
        transcriber.transcribe_file(speeches[0].path)  # warm-up (first recognizer, page faults)
        files = [speech for _ in range(repeats) for speech in speeches]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        transcripts = [transcriber.transcribe_file(speech.path) for speech in files]
        wall_s, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        transcriber.close()
    return StreamResult(
        mode=mode,
        files=len(files),
        audio_s=sum(speech.seconds for speech in files),
        wall_s=wall_s,
        cpu_s=cpu_s,
        load_s=load_s,
        recognised=sum(1 for transcript in transcripts if transcript.text),
        confidence=statistics.fmean(transcript.confidence for transcript in transcripts),
    )


def print_streams(results: list[StreamResult], speeches: list[Speech]) -> None:
    lengths = [speech.seconds for speech in speeches]
    print(
        f"\nOne VoskTranscriber, one stream (sequential, in-process); {len(speeches)} sentences, "
        f"{min(lengths):.1f}-{max(lengths):.1f} s, {sum(lengths):.1f} s of 8 kHz audio per pass"
    )
    print(
        f"{'mode':<28}{'files':>6}{'audio s':>9}{'wall s':>8}{'× real time':>13}{'CPU s/audio s':>15}"
        f"{'load s':>8}{'with text':>11}{'mean conf':>11}"
    )
    for r in results:
        print(
            f"{r.mode:<28}{r.files:>6}{r.audio_s:>9.1f}{r.wall_s:>8.2f}{r.speed:>13.1f}{r.cpu_per_audio:>15.3f}"
            f"{r.load_s:>8.2f}{r.recognised:>11}{r.confidence:>11.2f}"
        )


# ---------------------------------------------------------------- part 2: worker processes


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


def write_config(folder: Path, redis_url: str, spool: Path) -> Path:
    config = {
        "platform": {"id": PLATFORM},
        "redis": {"url": redis_url},
        "paths": {
            "runtime_dir": str(folder / "var"),
            "spool_dir": str(spool),
            "dialplans_dir": str(REPO / "dialplans"),
        },
        "asr": {"model_path": str(korean_model_folder())},  # free speech, as in production
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


def start_workers(count: int, config: Path, folder: Path, tag: str) -> list[Worker]:
    workers = []
    for index in range(count):
        log_path = folder / f"asr-worker-{tag}-{index}.log"
        log: IO[bytes] = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "asr-worker", "--config", str(config)],
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
    workers = start_workers(workers_count, setup.config, setup.folder, f"r{round_}-w{workers_count}")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 pass per mode, 16 messages (< 3 min)")
    parser.add_argument("--passes", type=int, default=2, help="part 1: passes over the sentences per mode")
    parser.add_argument("--messages", type=int, default=50, help="part 2: messages per burst")
    parser.add_argument("--rounds", type=int, default=1, help="part 2: rounds, worker counts alternating")
    parser.add_argument("--workers", default="1,2", help="part 2: worker process counts, comma separated")
    parser.add_argument("--skip-stream", action="store_true", help="skip part 1")
    parser.add_argument("--cache", type=Path, help="speech WAV folder (default: <tmp>/hotline12345-bench-asr)")
    parser.add_argument("--workdir", type=Path, help="Redis, spool, config, worker logs (default: a new temp folder)")
    args = parser.parse_args()
    passes, messages, rounds = (1, 16, 1) if args.quick else (args.passes, args.messages, args.rounds)
    counts = [int(n) for n in args.workers.split(",")]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for tool in ("espeak-ng", "sox", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")

    began = time.monotonic()
    speeches = speech_files(args.cache or Path(tempfile.gettempdir()) / "hotline12345-bench-asr")
    print(f"ASR bench, {os.cpu_count()} cores, model {korean_model_folder()}", file=sys.stderr)
    if not args.skip_stream:
        streams = [
            one_stream("free speech", None, speeches, passes),
            one_stream(f"grammar ({len(GRAMMAR)} words)", GRAMMAR, speeches, passes),
        ]
        print_streams(streams, speeches)
    with tempfile.TemporaryDirectory(prefix="bench-asr-") as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        redis_server = RedisProcess(folder / "redis", free_port())
        redis_server.start()
        try:
            asyncio.run(
                workers_bench(folder, redis_server.url, speeches, messages=messages, counts=counts, rounds=rounds)
            )
        finally:
            redis_server.stop()
    print(f"\nwall clock {time.monotonic() - began:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
