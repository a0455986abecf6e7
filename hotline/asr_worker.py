"""``hotline12345 asr-worker``: one process, one vosk model, jobs from Redis until SIGTERM;
and ``hotline12345 transcribe FILE…`` for ad-hoc runs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from calls.caller_index import CallerKeys
from hotline.config import Config, ConfigError
from hotline.local_secrets import redis_client, redis_where
from hotline.wiring.calls import CALLER_INDEX_KEY_FILE
from ivr.calendar import PlatformCalendar
from ivr.dialplan.directory import dialplan_files, load_platform_dialplan
from tickets.store import RedisTicketStore, export_stream
from voicemail.asr import AudioUnreadable, ModelUnavailable, VoskTranscriber
from voicemail.queue import AsrQueue
from voicemail.sink import TicketStoreSink
from voicemail.worker import AsrWorker, WorkerSettings

log = structlog.get_logger(__name__)


def platform_calendars(config: Config) -> dict[str, PlatformCalendar]:
    """Working-day calendars of every platform whose dialplan this host can read: a worker may
    file tickets for any platform sharing the Redis."""
    calendars = {}
    for path in dialplan_files(config.paths.dialplans_dir):
        calendars[path.stem] = load_platform_dialplan(path).calendar
    return calendars


def load_transcriber(config: Config) -> VoskTranscriber:
    """The configured model, or ConfigError saying what is expected (a worker without one is useless)."""
    if config.asr.model_path is None:
        raise ConfigError(
            "asr.model_path is not set: an ASR worker needs a vosk model folder "
            "(vosk-model-cn-0.22 or vosk-model-small-cn-0.22, unpacked)"
        )
    try:
        return VoskTranscriber(config.asr.model_path, grammar=config.asr.grammar or None)
    except ModelUnavailable as exc:
        raise ConfigError(f"asr.model_path: {exc}") from None


def worker_caller_keys(config: Config) -> CallerKeys:
    """The caller index's secret of the platform's controller (a caller's open ticket is named
    with it): read, never made here — a secret of the worker's own would name other keys, and
    repeat messages would silently stop merging into the open ticket."""
    path = config.paths.runtime_dir / CALLER_INDEX_KEY_FILE
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError:
        secret = ""
    if not secret:
        raise ConfigError(
            f"{path} is missing or empty: start the platform's controller once (it makes it), or copy "
            "its file to this host (owner hotline, mode 0600)"
        )
    return CallerKeys(secret)


async def run_worker(config: Config) -> None:
    transcriber = load_transcriber(config)
    caller_keys = worker_caller_keys(config)
    client = redis_client(config, socket_timeout=5, socket_connect_timeout=3)
    calendars = platform_calendars(config)
    default = calendars.get(config.platform.id, PlatformCalendar())
    platform = config.platform.id  # a worker serves one platform's spool
    store = RedisTicketStore(
        client, lambda p: calendars.get(p, default), export_stream(platform), caller_keys=caller_keys
    )
    sink = TicketStoreSink(store)
    worker = AsrWorker(
        AsrQueue(client, sink, platform),
        transcriber,
        sink,
        config.paths.spool_dir,
        consumer=f"{socket.gethostname()}-{os.getpid()}",
        settings=WorkerSettings(
            visibility_timeout_s=config.asr.visibility_timeout_s, max_attempts=config.asr.max_attempts
        ),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    log.info(
        "asr.worker_started",
        consumer=worker.consumer,
        model=config.asr.model_path.name if config.asr.model_path else "",
        redis=redis_where(config),
    )
    try:
        await worker.run()
    finally:
        transcriber.close()
        await client.aclose()
        log.info("asr.worker_stopped", consumer=worker.consumer)


def transcribe_files(config: Config, files: Sequence[Path]) -> int:
    """Transcribe files one by one with a progress line; a summary at the end. Exit 1 if any failed."""
    transcriber = load_transcriber(config)
    failed = 0
    audio_s = 0.0
    started = time.monotonic()
    try:
        for index, path in enumerate(files, 1):
            print(f"[{index}/{len(files)}] {path}", file=sys.stderr)
            try:
                transcript = transcriber.transcribe_file(path)
            except AudioUnreadable as exc:
                failed += 1
                print(f"  error: {exc}", file=sys.stderr)
                continue
            if transcript.words:
                audio_s += transcript.words[-1].end
            print(f"{path}\t{transcript.confidence:.2f}\t{transcript.text}")
    finally:
        transcriber.close()
    elapsed = time.monotonic() - started
    print(
        f"{len(files) - failed} transcribed, {failed} failed, {elapsed:.1f} s"
        + (f", {audio_s / elapsed:.1f}× real time" if audio_s and elapsed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0
