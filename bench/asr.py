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

Parts: ``asr_speech`` (the sentences as WAVs), ``asr_stream`` (part 1), ``asr_workers`` (part 2);
this module runs them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import structlog

from bench.asr_speech import GRAMMAR, speech_files
from bench.asr_stream import one_stream, print_streams
from bench.asr_workers import workers_bench
from hotline.redis_process import RedisProcess
from tests.support.ports import free_port
from tests.support.speech import korean_model_folder


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
