"""Faults that used to lose work silently: a spool that cannot keep a message, a recording that
did not land, the callback list and the ASR worker across a Redis outage (real redis-server,
real filesystems: tiny tmpfs mounts where root may mount them)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import textwrap
import threading
import wave
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from calls.callbacks import RedisCallbackList
from calls.model import CallOutcome, CallRecord, CallState
from hotline.redis_process import RedisProcess
from ivr.calendar import PlatformCalendar
from ivr.dialplan.loader import DialplanInvalid, parse_dialplan
from tests.support.ports import free_port
from tickets.model import Transcript
from tickets.store import RedisTicketStore
from voicemail import spool as spool_module
from voicemail.jobs import VoicemailMeta
from voicemail.queue import AsrQueue
from voicemail.sink import TicketStoreSink
from voicemail.spool import (
    PARTIAL_SUFFIX,
    SpoolMonitor,
    SpoolState,
    check_spool,
    recording_failure,
    set_aside,
    settle_recording,
)
from voicemail.worker import AsrWorker, WorkerSettings, WorkerState

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


# --- the spool and the recording


@contextlib.contextmanager
def tmpfs(folder: Path, size_kb: int, read_only: bool = False) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size_kb}k" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\0\0" * int(8000 * seconds))
    return path


def test_a_recording_is_judged_by_what_the_file_holds() -> None:
    assert recording_failure(exists=True, duration_s=4.0, samples=32000, ended_by="silence") == ""
    assert recording_failure(exists=True, duration_s=3.8, samples=32000, ended_by="hangup") == ""  # rounding
    assert "0.0 s of 1.8 s" in recording_failure(exists=True, duration_s=0.0, samples=14700, ended_by="timeout")
    assert recording_failure(exists=False, duration_s=0.0, samples=0, ended_by="hangup") == ""  # left at the beep
    assert recording_failure(exists=False, duration_s=0.0, samples=8000, ended_by="dtmf") != ""


def test_settling_a_recording_fsyncs_it_and_finds_a_truncated_one(tmp_path: Path) -> None:
    assert settle_recording(wav(tmp_path / "whole.wav", 3), 24000, "silence") == ""
    assert "disk full" in settle_recording(wav(tmp_path / "cut.wav", 1), 24000, "timeout")
    assert "not written" in settle_recording(tmp_path / "missing.wav", 24000, "silence")
    set_aside(tmp_path / "cut.wav")
    assert not (tmp_path / "cut.wav").exists()
    assert (tmp_path / f"cut.wav{PARTIAL_SUFFIX}").exists()
    set_aside(tmp_path / "missing.wav")  # nothing to set aside: no error


def test_a_writable_spool_with_room_is_fit(tmp_path: Path) -> None:
    state = check_spool(tmp_path / "voicemail", min_free_mb=0)
    assert state.ok and state.free_mb is not None and state.free_mb > 0
    assert list((tmp_path / "voicemail").iterdir()) == []  # the probe leaves nothing behind
    low = check_spool(tmp_path / "voicemail", min_free_mb=state.free_mb * 10)
    assert not low.ok and "spool.min_free_mb" in low.reason


def test_a_full_spool_is_unfit_even_for_root(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "voicemail", 64) as folder:
        (folder / "filler").write_bytes(b"\0" * 64 * 1024)  # fills it (tmpfs rounds to pages)
        state = check_spool(folder, min_free_mb=0)
        assert not state.ok
        assert "No space left on device" in state.reason


def test_a_read_only_spool_is_unfit(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "voicemail", 64, read_only=True) as folder:
        state = check_spool(folder, min_free_mb=0)
        assert not state.ok and "read-only" in state.reason


async def test_the_monitor_counts_failed_messages_and_follows_the_spool(tmp_path: Path) -> None:
    monitor = SpoolMonitor(tmp_path / "voicemail", min_free_mb=1e9)
    assert "spool.min_free_mb" in await monitor.refusal()
    assert not monitor.state.ok
    monitor.message_failed("kunming-1.1", "spool full")
    assert monitor.messages_failed == 1
    recovered = SpoolMonitor(tmp_path / "voicemail", min_free_mb=0)
    assert await recovered.refusal() == ""


async def test_a_spool_that_hangs_is_unfit_and_checked_by_one_thread_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    started: list[int] = []

    def hanging(folder: Path, min_free_mb: float) -> SpoolState:  # a dead network mount
        started.append(1)
        release.wait(10)
        return SpoolState()

    monkeypatch.setattr(spool_module, "check_spool", hanging)
    monitor = SpoolMonitor(tmp_path / "voicemail", min_free_mb=0, timeout_s=0.1)
    try:
        assert "does not answer" in await monitor.refusal()
        assert "does not answer" in await monitor.refusal()
        assert len(started) == 1  # the second waited on the first, stuck, check
    finally:
        release.set()
    assert await monitor.refusal() == ""


async def test_a_fit_check_is_reused_for_a_second_only_and_an_unfit_one_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = [SpoolState(), SpoolState(reason="spool voicemail/ is full"), SpoolState(), SpoolState()]
    checks: list[int] = []

    def counted(folder: Path, min_free_mb: float) -> SpoolState:
        checks.append(1)
        return states[len(checks) - 1]

    monkeypatch.setattr(spool_module, "check_spool", counted)
    now = [100.0]
    monitor = SpoolMonitor(tmp_path / "voicemail", min_free_mb=0, fresh_s=1.0, monotonic=lambda: now[0])
    assert await monitor.refusal() == ""
    now[0] += 0.9
    assert await monitor.refusal() == ""  # the check of 0.9 s ago stands
    assert len(checks) == 1
    now[0] += 0.2
    assert await monitor.refusal() == "spool voicemail/ is full"  # 1.1 s: checked again
    assert await monitor.refusal() == ""  # unfit is never reused: checked at once, recovered
    assert len(checks) == 3
    now[0] += 5
    await monitor.check()  # the periodic check refreshes it too
    assert await monitor.refusal() == "" and len(checks) == 4


def test_a_voicemail_nodes_failed_route_must_exist() -> None:
    text = textwrap.dedent("""\
        platform: dali
        name: 大理州12345
        area_code: "0872"
        prompts: {leave: 请留言, bye: 再见}
        start: vm
        nodes:
          vm: {kind: voicemail, prompt: leave, next: bye, failed: nowhere, failed_prompt: sorry}
          bye: {kind: hangup, prompt: bye}
        """)
    with pytest.raises(DialplanInvalid) as caught:
        parse_dialplan(text, "dali.yaml", lambda name: False)
    found = [str(p) for p in caught.value.problems]
    assert any("nodes.vm.failed" in p and "'nowhere'" in p for p in found), found
    assert any("nodes.vm.failed_prompt" in p and "'sorry'" in p for p in found), found


# --- Redis away


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of the test's own, to stop and start."""
    server = RedisProcess(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_client(own_redis: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(own_redis.url, socket_timeout=2, socket_connect_timeout=1)
    yield client
    await client.aclose()


def ended(call_id: str, caller: str, outcome: CallOutcome, minutes: int, **tags: str) -> CallRecord:
    at = T0 + timedelta(minutes=minutes)
    return CallRecord(
        call_id=call_id,
        platform="kunming",
        caller=caller,
        state=CallState.ENDED,
        started_at=at,
        ended_at=at,
        outcome=outcome,
        tags=tags,
    )


async def test_a_message_not_kept_puts_the_caller_on_the_callback_list(redis_client: aioredis.Redis) -> None:
    callbacks = RedisCallbackList(redis_client, "kunming")
    await callbacks.on_call_ended(ended("k-1", "13800000001", CallOutcome.VOICEMAIL_FAILED, 0, voicemail="failed"))
    await callbacks.on_call_ended(ended("k-1", "13800000001", CallOutcome.VOICEMAIL_FAILED, 0, voicemail="failed"))
    (entry,) = await callbacks.pending(10)
    assert (entry.caller, entry.attempts) == ("13800000001", 1)  # the same call written twice counts once


async def test_callback_list_changes_wait_out_a_redis_outage_in_order(
    own_redis: RedisProcess, redis_client: aioredis.Redis
) -> None:
    callbacks = RedisCallbackList(redis_client, "kunming")
    own_redis.stop()
    await callbacks.on_call_ended(ended("k-1", "13800000001", CallOutcome.ABANDONED, 0))  # no exception
    await callbacks.add_missed(ended("k-2", "13800000002", CallOutcome.ABANDONED, 1))  # the ACD's own path
    await callbacks.on_call_ended(ended("k-3", "13800000003", CallOutcome.ABANDONED, 2))
    await callbacks.on_call_ended(ended("k-4", "13800000003", CallOutcome.ANSWERED, 3))  # served later
    assert callbacks.unsaved == 4
    assert await callbacks.flush() == 4  # still away
    own_redis.start()  # the same data folder (AOF), as after a restart
    assert await callbacks.flush() == 0
    assert sorted(c.caller for c in await callbacks.pending(10)) == ["13800000001", "13800000002"]


def state_of(worker: AsrWorker) -> WorkerState:
    return worker.state  # read through a call: another task changes it


async def test_the_asr_worker_waits_for_redis_at_start_and_then_works(
    own_redis: RedisProcess, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    calendar = PlatformCalendar()
    store = RedisTicketStore(redis_client, lambda _p: calendar)
    sink = TicketStoreSink(store, clock=lambda: T0)
    queue = AsrQueue(redis_client, sink, "kunming")

    class Silent:
        async def transcribe(self, path: Path) -> Transcript:
            return Transcript()

    settings = WorkerSettings(block_ms=50, retry_initial_s=0.05, retry_max_s=0.2)
    worker = AsrWorker(queue, Silent(), sink, tmp_path, consumer="w1", settings=settings)
    own_redis.stop()
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(10):
            while state_of(worker) is not WorkerState.WAITING_FOR_REDIS:  # noqa: ASYNC110 - another task's state
                await asyncio.sleep(0.02)
            # several retries while Redis is away: the backoff doubled up to its cap (0.05, 0.1, 0.2 s)
            while worker._retry_s < settings.retry_max_s:  # noqa: ASYNC110 - another task's state
                await asyncio.sleep(0.02)
        assert not task.done(), "the worker gave up"
        own_redis.start()
        await queue.enqueue("voicemail/k-1.wav", VoicemailMeta(platform="kunming", call_id="k-1", caller="13800000001"))
        async with asyncio.timeout(10):
            while not await store.has_ticket("voicemail/k-1.wav"):  # noqa: ASYNC110 - polling Redis
                await asyncio.sleep(0.02)
        assert state_of(worker) is WorkerState.RUNNING
    finally:
        worker.stop()
        await task
    assert state_of(worker) is WorkerState.STOPPED
