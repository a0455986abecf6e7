"""The hand-over of a recorded message: sidecar, then the job; never fails the call."""

from __future__ import annotations

import errno
import json
import os
import time
import wave
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as aioredis

from ivr.calendar import PlatformCalendar
from tests.support.ports import free_port
from tickets.store import RedisTicketStore
from voicemail import intake as intake_module
from voicemail.intake import (
    FALLBACK_ORPHAN_AFTER_S,
    MessageIntake,
    RecordedMessage,
    meta_from_fallback_name,
    meta_from_sidecar,
)
from voicemail.queue import QUEUED, STREAM, AsrQueue
from voicemail.sink import TicketStoreSink

AT = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


@pytest.fixture
def queue(client: aioredis.Redis) -> AsrQueue:
    calendar = PlatformCalendar()
    return AsrQueue(client, TicketStoreSink(RedisTicketStore(client, lambda _p: calendar)))


def message(spool: Path, call_id: str, too_short: bool = False) -> RecordedMessage:
    (spool / "voicemail").mkdir(parents=True, exist_ok=True)
    (spool / "voicemail" / f"{call_id}.wav").write_bytes(b"RIFF")
    return RecordedMessage(
        call_id=call_id,
        recording=f"voicemail/{call_id}.wav",
        platform="kunming",
        caller="13800000001",
        tags={"category": "complaint"},
        duration_s=0.4 if too_short else 12.0,
        too_short=too_short,
        recorded_at=AT,
    )


async def test_the_sidecar_is_written_before_the_job(queue: AsrQueue, client: aioredis.Redis, tmp_path: Path) -> None:
    await MessageIntake(tmp_path, queue).message_recorded(message(tmp_path, "kunming-1.1"))
    sidecar = json.loads((tmp_path / "voicemail" / "kunming-1.1.json").read_text(encoding="utf-8"))
    assert sidecar["caller"] == "13800000001"
    assert sidecar["tags"] == {"category": "complaint"}
    assert await client.sismember(QUEUED, "voicemail/kunming-1.1.wav")
    meta = await meta_from_sidecar("kunming")(tmp_path / "voicemail" / "kunming-1.1.wav")
    assert meta is not None and meta.recorded_at == AT and meta.tags["category"] == "complaint"


async def test_a_too_short_message_is_not_queued_now_or_by_the_rescan(
    queue: AsrQueue, client: aioredis.Redis, tmp_path: Path
) -> None:
    await MessageIntake(tmp_path, queue).message_recorded(message(tmp_path, "kunming-2.2", too_short=True))
    assert not await client.sismember(QUEUED, "voicemail/kunming-2.2.wav")
    assert await queue.rescan_spool(tmp_path, "voicemail", meta_from_sidecar("kunming"), min_age_s=0) == 0


async def test_a_full_spool_keeps_the_message_and_queues_it_anyway(
    queue: AsrQueue, client: aioredis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(intake_module, "_write_durably", disk_full)
    await MessageIntake(tmp_path, queue).message_recorded(message(tmp_path, "kunming-3.3"))
    assert (tmp_path / "voicemail" / "kunming-3.3.wav").exists()
    assert await client.sismember(QUEUED, "voicemail/kunming-3.3.wav")  # the facts travel with the job


async def test_redis_away_defers_the_job_to_the_rescan(tmp_path: Path) -> None:
    unreachable = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5)
    calendar = PlatformCalendar()
    queue = AsrQueue(unreachable, TicketStoreSink(RedisTicketStore(unreachable, lambda _p: calendar)))
    await MessageIntake(tmp_path, queue).message_recorded(message(tmp_path, "kunming-4.4"))  # no exception
    assert (tmp_path / "voicemail" / "kunming-4.4.json").exists()  # the rescan will find it with its facts
    await unreachable.aclose()


async def test_fallback_messages_are_described_by_their_file_name(tmp_path: Path) -> None:
    folder = tmp_path / "fallback"
    folder.mkdir()
    empty = folder / "fb-1773050400-13800000009-kunming-9.9.wav"
    empty.write_bytes(b"")
    assert await meta_from_fallback_name("kunming")(empty) is None  # nothing said: not a ticket
    not_ours = folder / "notes.wav"
    not_ours.write_bytes(b"")
    assert await meta_from_fallback_name("kunming")(not_ours) is None
    spoken = folder / "fb2-1773050400-kunming-8.8.wav"
    (folder / "fb2-1773050400-kunming-8.8.caller").write_text("13800000009")  # the route's FILE() write
    old_format = folder / "fb-1773050400-13800000007-kunming-7.7.wav"
    for path in (spoken, old_format):
        with wave.open(str(path), "wb") as writer:  # what Asterisk's Record() writes: 8 kHz 16-bit PCM
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(8000)
            writer.writeframes(b"\x10\x00" * 16000)
    # still recording (no mark yet): not taken, however old the file looks
    assert await meta_from_fallback_name("kunming")(spoken) is None
    (folder / "fb2-1773050400-kunming-8.8.done").write_text("done")  # the route's h extension, at hang-up
    meta = await meta_from_fallback_name("kunming")(spoken)
    assert meta is not None
    assert (meta.call_id, meta.caller, meta.tags) == ("kunming-8.8", "13800000009", {"route": "fallback"})
    assert meta.recorded_at == datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    assert await meta_from_fallback_name("kunming")(old_format) is None  # no mark, written just now
    long_ago = time.time() - FALLBACK_ORPHAN_AFTER_S - 1
    os.utime(old_format, (long_ago, long_ago))
    old = await meta_from_fallback_name("kunming")(old_format)  # still on disk from before: still read
    assert old is not None
    assert (old.call_id, old.caller) == ("kunming-7.7", "13800000007")


async def test_a_message_being_recorded_is_never_rescanned_whatever_the_min_age(
    queue: AsrQueue, client: aioredis.Redis, tmp_path: Path
) -> None:
    """asr.rescan_min_age_s: 0 — the rescan must not queue a message before its sidecar exists
    (the ticket would lack the caller): the IVR holds it from the beep to the sidecar."""
    intake = MessageIntake(tmp_path, queue)
    msg = message(tmp_path, "kunming-5.5")
    with intake.recording(msg.recording):
        # recorded, the caller is hearing the review prompt: no sidecar yet
        assert await queue.rescan_spool(tmp_path, "voicemail", meta_from_sidecar("kunming"), min_age_s=0) == 0
        assert not await client.sismember(QUEUED, msg.recording)
        await intake.message_recorded(msg)
    assert queue.in_progress == set()
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(STREAM))
    assert [json.loads(fields[b"meta"])["caller"] for _, fields in entries] == ["13800000001"]  # with its caller
    assert await queue.rescan_spool(tmp_path, "voicemail", meta_from_sidecar("kunming"), min_age_s=0) == 0
    # without the hold (the old race), the same rescan takes a message whose sidecar is missing
    bare = message(tmp_path, "kunming-6.6")
    assert await queue.rescan_spool(tmp_path, "voicemail", meta_from_sidecar("kunming"), min_age_s=0) == 1
    assert await client.sismember(QUEUED, bare.recording)
