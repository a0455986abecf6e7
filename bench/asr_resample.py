"""8 → 16 kHz resampling for the ASR: libsoxr (``voicemail.asr.resample``) against the former
pure-Python linear interpolation (``resample_linear``), side by side in one run.

1. **Alone**: both resample each of the bench's 10 Korean messages (``bench/asr_speech.py``,
   8 kHz) ``--repeat`` times; ms of CPU per second of audio, p50 over files and repeats.
2. **Quality**: a "strict" copy of the Korean model (its ``mfcc.conf`` without
   ``--allow-upsample``: the shape of vosk-model-small-cn, so every message is resampled)
   transcribes each message in free speech after each resampler, and the model's own 8 kHz
   path is the third column; character error rate against the sentence spoken (spaces
   ignored), summed over the messages.
3. **Inside a worker, messages to tickets**: the burst of ``bench/asr_workers.py`` (a real
   redis-server, one ``asr-worker`` process, ``--messages`` at t0) on the strict model, once
   per resampler (the linear one through ``bench/asr_linear_worker.py``). Per message:
   (ticket time − end of recording) ÷ message length, p50/p99; all messages were recorded
   before t0, so the end of recording is t0.
4. **Workers to reach the target** (p99 ≤ 1.5× the message length): the burst replayed in a
   first-in-first-out model with k decode threads, each message taking the measured CPU
   seconds per audio second × its length; the smallest k that meets it.

Run: .venv/bin/python -m bench.asr_resample [--messages 50] [--repeat 5] [--skip-burst]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from bench.asr_speech import Speech, speech_files
from bench.asr_workers import BurstResult, Setup, burst, percentile, write_config
from hotline.redis_process import RedisProcess
from tests.support.ports import free_port
from tests.support.speech import korean_model_folder
from voicemail import asr

Resampler = Callable[[asr.Pcm, int], asr.Pcm]
RESAMPLERS: dict[str, Resampler] = {"linear": asr.resample_linear, "soxr": asr.resample}
TARGET = 1.5  # p99 of (ticket time - end of recording) / message length


def strict_model(folder: Path) -> Path:
    """The Korean model, its mfcc.conf refusing 8 kHz (so kaldi is fed resampled audio)."""
    source = korean_model_folder()
    strict = folder / "strict-model"
    strict.mkdir(parents=True, exist_ok=True)
    for part in source.iterdir():
        if part.name != "conf" and not (strict / part.name).exists():
            (strict / part.name).symlink_to(part)
    shutil.copytree(source / "conf", strict / "conf", dirs_exist_ok=True)
    mfcc = strict / "conf/mfcc.conf"
    mfcc.write_text("".join(line for line in mfcc.read_text().splitlines(True) if "allow-upsample" not in line))
    return strict


def alone(speeches: list[Speech], repeat: int) -> dict[str, float]:
    """ms of CPU per second of audio, p50 over every file and repeat."""
    figures = {}
    pcms = [asr.read_wav(speech.path) for speech in speeches]
    for name, resampler in RESAMPLERS.items():
        per_second = []
        for _ in range(repeat):
            for pcm, speech in zip(pcms, speeches, strict=True):
                started = time.process_time()
                resampler(pcm, 16000)
                per_second.append(1000 * (time.process_time() - started) / speech.seconds)
        figures[name] = statistics.median(per_second)
    return figures


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def error_rate(expected: list[list[str]], heard: list[list[str]]) -> float:
    """Edit distance over all messages ÷ the length of what was said (tokens: words or characters)."""
    return sum(edit_distance(e, h) for e, h in zip(expected, heard, strict=True)) / sum(len(e) for e in expected)


def quality(speeches: list[Speech], strict: Path) -> dict[str, tuple[float, float]]:
    """Per path — the model's own 8 kHz path, and each resampler into the strict model: the
    character error rate in free speech, and the word error rate with a grammar of every word
    the messages hold (a closed vocabulary: what the audio carries decides, not the language model)."""
    words = sorted({word for speech in speeches for word in speech.text.split()})
    original = asr.resample
    figures: dict[str, tuple[float, float]] = {}
    try:
        for label, folder, resampler in [
            ("model's own 8 kHz", korean_model_folder(), original),
            *((f"{name} → 16 kHz", strict, resampler) for name, resampler in RESAMPLERS.items()),
        ]:
            asr.resample = resampler  # type: ignore[assignment]  # what transcribe_file calls for a refused rate
            result = []
            for grammar in (None, words):
                transcriber = asr.VoskTranscriber(folder, grammar=grammar, workers=1)
                try:
                    heard = [transcriber.transcribe_file(speech.path).text for speech in speeches]
                finally:
                    transcriber.close()
                if grammar is None:
                    said = [list(speech.text.replace(" ", "")) for speech in speeches]
                    result.append(error_rate(said, [list(text.replace(" ", "")) for text in heard]))
                else:
                    said = [speech.text.split() for speech in speeches]
                    result.append(error_rate(said, [text.split() for text in heard]))
            figures[label] = (result[0], result[1])
    finally:
        asr.resample = original
    return figures


def threads_needed(lengths: list[float], cpu_per_audio_s: float, limit: int = 200) -> int:
    """The fewest decode threads (one core each) for which the burst's p99 ratio meets TARGET."""
    for threads in range(1, limit + 1):
        free_at = [0.0] * threads
        ratios = []
        for length in lengths:  # first in, first out, all queued at t0
            start = heapq.heappop(free_at)
            done = start + cpu_per_audio_s * length
            heapq.heappush(free_at, done)
            ratios.append(done / length)
        if percentile(ratios, 99) <= TARGET:
            return threads
    return limit


async def bursts(folder: Path, url: str, speeches: list[Speech], messages: int, strict: Path) -> list[BurstResult]:
    import redis.asyncio as aioredis

    spool = folder / "spool"
    config = write_config(folder, url, spool, strict)
    client = aioredis.Redis.from_url(url)
    audio_s = sum(speeches[index % len(speeches)].seconds for index in range(messages))
    results = []
    try:
        for round_, module in enumerate(("bench.asr_linear_worker", "hotline.cli"), 1):
            setup = Setup(client, config, folder, spool, speeches, messages, 120.0 + 3.0 * audio_s, ("-m", module))
            results.append(await burst(setup, 1, round_))
    finally:
        await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--cache", type=Path, help="speech WAV folder (default: <tmp>/hotline12345-bench-asr)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    speeches = speech_files(args.cache or Path(tempfile.gettempdir()) / "hotline12345-bench-asr")
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {len(speeches)} messages, 8 kHz")
    ms = alone(speeches, args.repeat)
    print("1. alone, ms CPU per audio s (p50):  " + "  ".join(f"{name} {value:.2f}" for name, value in ms.items()))
    print(f"   ratio linear / soxr: {ms['linear'] / ms['soxr']:.0f}×")
    with tempfile.TemporaryDirectory(prefix="bench-asr-resample-") as tmp:
        folder = Path(tmp)
        strict = strict_model(folder)
        print("2. error rates       free speech CER   grammar-of-the-messages WER")
        for label, (cer, wer) in quality(speeches, strict).items():
            print(f"   {label:<20} {cer:12.3f} {wer:16.3f}")
        if args.skip_burst:
            return
        redis_server = RedisProcess(folder / "redis", free_port())
        redis_server.start()
        try:
            results = asyncio.run(bursts(folder, redis_server.url, speeches, args.messages, strict))
        finally:
            redis_server.stop()
    lengths = [speeches[index % len(speeches)].seconds for index in range(args.messages)]
    print(f"3. burst of {args.messages} messages ({sum(lengths):.0f} s of audio), 1 asr-worker, resampling forced on")
    print("   resampler  p50 ratio  p99 ratio  burst s  CPU s/audio s  cores  load")
    for name, result in zip(RESAMPLERS, results, strict=True):
        ratios = [latency / length for latency, length in zip(result.latencies_s, lengths, strict=True)]
        cpu = sum(result.cpu_s) / result.audio_s
        print(
            f"   {name:<10} {percentile(ratios, 50):9.2f} {percentile(ratios, 99):10.2f} {result.wall_s:8.1f}"
            f" {cpu:14.3f} {sum(result.cpu_s) / result.wall_s:6.2f}  {result.load[0]:.1f}→{result.load[1]:.1f}"
        )
    cpu = sum(results[-1].cpu_s) / results[-1].audio_s
    threads = threads_needed(lengths, cpu)
    print(
        f"4. p99 ≤ {TARGET}× needs {threads} decode threads (cores) for this burst at {cpu:.3f} CPU s per audio s: "
        f"{(threads + 1) // 2} two-core worker hosts"
    )


if __name__ == "__main__":
    main()
