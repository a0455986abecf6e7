"""Spool paths, recording retention, and the callback list (on a real redis-server)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from calls.callbacks import RedisCallbackList
from calls.model import CallOutcome, CallRecord, CallState
from hotline.redis_process import RedisProcess
from recordings.access import UnsafePath, spool_file
from recordings.retention import purge_expired

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_spool_paths_stay_inside_the_spool(tmp_path: Path) -> None:
    assert spool_file(tmp_path, "recordings/kunming-1.2.wav") == (tmp_path / "recordings/kunming-1.2.wav").resolve()
    for bad in ("/etc/passwd", "../secret.wav", "recordings/../../x.wav", ""):
        with pytest.raises(UnsafePath):
            spool_file(tmp_path, bad)
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(UnsafePath):
        spool_file(tmp_path, "link/passwd")


def test_purge_removes_only_expired_recordings(tmp_path: Path) -> None:
    old, new = tmp_path / "old.wav", tmp_path / "new.wav"
    for path in (old, new):
        path.write_bytes(b"RIFF")
    os.utime(old, ((T0 - timedelta(days=200)).timestamp(),) * 2)
    os.utime(new, ((T0 - timedelta(days=10)).timestamp(),) * 2)
    assert purge_expired(tmp_path, timedelta(days=180), T0) == [old]
    assert not old.exists()
    assert new.exists()
    assert purge_expired(tmp_path / "missing", timedelta(days=1), T0) == []


@pytest.fixture
async def callbacks(redis_server: RedisProcess) -> AsyncIterator[RedisCallbackList]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushdb()
    yield RedisCallbackList(client, "kunming")
    await client.aclose()


def ended(call_id: str, caller: str, outcome: CallOutcome, minutes: int) -> CallRecord:
    at = T0 + timedelta(minutes=minutes)
    return CallRecord(
        call_id=call_id,
        platform="kunming",
        caller=caller,
        state=CallState.ENDED,
        started_at=at,
        ended_at=at,
        outcome=outcome,
        ivr_path=("entry", "to_seat"),
    )


async def test_missed_calls_are_merged_per_number_and_cleared_when_served(callbacks: RedisCallbackList) -> None:
    await callbacks.on_call_ended(ended("k-1", "13800000001", CallOutcome.ABANDONED, 0))
    await callbacks.on_call_ended(ended("k-2", "13800000002", CallOutcome.ABANDONED, 1))
    await callbacks.on_call_ended(ended("k-3", "13800000001", CallOutcome.ABANDONED, 2))
    await callbacks.on_call_ended(ended("k-4", "", CallOutcome.ABANDONED, 3))  # anonymous: nobody to call
    pending = await callbacks.pending(10)
    assert [(c.caller, c.attempts, c.last_call_id) for c in pending] == [
        ("13800000001", 2, "k-3"),
        ("13800000002", 1, "k-2"),
    ]
    assert pending[0].first_missed_at == T0
    await callbacks.on_call_ended(ended("k-5", "13800000001", CallOutcome.ANSWERED, 4))
    await callbacks.on_call_ended(ended("k-6", "13800000002", CallOutcome.IVR_COMPLETED, 5))  # not served
    assert [c.caller for c in await callbacks.pending(10)] == ["13800000002"]


async def test_a_served_call_taken_late_does_not_undo_a_later_miss(callbacks: RedisCallbackList) -> None:
    """The clear of a served call that Redis takes after the add of a later missed call (a hung
    Redis serving a held write last) leaves the number listed; a clear of a later one removes it."""
    await callbacks.on_call_ended(ended("k-1", "13800000001", CallOutcome.ABANDONED, 10))
    await callbacks.on_call_ended(ended("k-0", "13800000001", CallOutcome.ANSWERED, 5))  # ended before the miss
    assert [(c.caller, c.last_call_id) for c in await callbacks.pending(10)] == [("13800000001", "k-1")]
    await callbacks.on_call_ended(ended("k-2", "13800000001", CallOutcome.ANSWERED, 10))  # the same second: served
    assert await callbacks.pending(10) == []
    assert callbacks.unsaved == 0
