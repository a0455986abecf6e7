"""A message a caller left: made durable with what we know about it, then queued for ASR.

The spool is the source of truth. Next to every ``<call>.wav`` the intake writes
``<call>.json`` (call id, caller, platform, tags, duration, when) and fsyncs both before the
caller hears the confirmation; only then is the transcription job queued. If Redis is away at
that moment, nothing is lost: the periodic rescan (``AsrQueue.rescan_spool``) finds the
message and its sidecar later. A message shorter than the dialplan's minimum is marked so in
its sidecar: it goes on the callback list (calls/callbacks.py), not into a ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from calls.fallback import parse_fallback_name, read_fallback_caller
from calls.redis_budget import RedisBudget
from common.privacy import mask_number
from voicemail.jobs import MetaFor, VoicemailMeta
from voicemail.queue import AsrQueue, meta_from_file

log = structlog.get_logger(__name__)

SIDECAR_SUFFIX = ".json"
FALLBACK_DONE_SUFFIX = ".done"  # the fallback route's mark: the call that recorded it has ended
FALLBACK_ORPHAN_AFTER_S = 3600.0  # a message with no mark, untouched this long, is taken anyway


@dataclass(frozen=True)
class RecordedMessage:
    """What the IVR hands over once a message file is complete."""

    call_id: str
    recording: str  # path in the spool: voicemail/<call>.wav
    platform: str
    caller: str
    tags: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    too_short: bool = False
    recorded_at: datetime | None = None


def wav_duration_s(path: Path) -> float:
    """Length of a WAV file, 0 when it is missing or unreadable (it is still kept)."""
    try:
        with wave.open(str(path), "rb") as reader:
            return reader.getnframes() / float(reader.getframerate() or 1)
    except (OSError, wave.Error, EOFError):
        return 0.0


def _write_durably(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def sidecar_of(wav: Path) -> Path:
    return wav.with_name(wav.stem + SIDECAR_SUFFIX)


class MessageIntake:
    """Sidecar, then the ASR job (IvrContext.messages)."""

    def __init__(self, spool_dir: Path, queue: AsrQueue, budget: RedisBudget | None = None) -> None:
        self._spool = spool_dir
        self._queue = queue
        self._budget = budget or RedisBudget()  # the caller waits for the job no longer than this

    @contextlib.contextmanager
    def recording(self, recording: str) -> Iterator[None]:
        """While the IVR records, reviews and describes ``recording`` (``voicemail/<call>.wav``),
        the spool rescan leaves it alone: a rescan in between would queue it without its
        sidecar, and the ticket would lack the caller (whatever ``asr.rescan_min_age_s`` says)."""
        held = self._queue.in_progress
        held.add(recording)
        try:
            yield
        finally:
            held.discard(recording)

    async def message_recorded(self, message: RecordedMessage) -> None:
        wav = self._spool / message.recording
        meta = {
            "platform": message.platform,
            "call_id": message.call_id,
            "caller": message.caller,
            "recorded_at": (message.recorded_at or datetime.now(UTC)).isoformat(),
            "tags": message.tags,
            "duration_s": round(message.duration_s, 2),
            "too_short": message.too_short,
        }
        try:
            await asyncio.to_thread(_write_durably, sidecar_of(wav), json.dumps(meta, ensure_ascii=False))
        except OSError as exc:
            # the spool is full or failing: the message file Asterisk wrote is still there, and
            # the job below carries the same facts; say so loudly, never fail the call for it
            log.error(
                "voicemail.sidecar_not_written", call_id=message.call_id, error=exc.strerror or str(exc),
                note="message kept; its facts travel with the job",
            )  # fmt: skip
        if message.too_short:
            log.info("voicemail.too_short", call_id=message.call_id, duration_s=round(message.duration_s, 2))
            return
        job = await self._budget.read("asr job", lambda: self._queue.enqueue(message.recording, _meta(meta)), None)
        if job is None:  # Redis down or slow (the caller does not wait for it)
            log.warning(
                "voicemail.enqueue_deferred", call_id=message.call_id, caller=mask_number(message.caller),
                note="the spool rescan queues it when Redis is back",
            )  # fmt: skip


def _meta(data: dict[str, object]) -> VoicemailMeta:
    return VoicemailMeta.model_validate({k: data[k] for k in ("platform", "call_id", "caller", "recorded_at", "tags")})


def meta_from_sidecar(platform: str) -> MetaFor:
    """Metadata for a message found by the rescan: its sidecar, or (for a message whose sidecar
    never got written) the file's name and time. None for a message too short to be a ticket."""

    from_file = meta_from_file(platform)

    async def meta(path: Path) -> VoicemailMeta | None:
        sidecar = sidecar_of(path)
        try:
            data = json.loads(await asyncio.to_thread(sidecar.read_text, encoding="utf-8"))
        except FileNotFoundError:
            return await from_file(path)
        except (OSError, ValueError) as exc:
            log.error("voicemail.sidecar_unreadable", file=sidecar.name, error=str(exc))
            return VoicemailMeta(platform=platform, call_id=path.stem)
        if data.get("too_short"):
            return None
        return _meta(data)

    return meta


def meta_from_fallback_name(platform: str, min_s: float = 1.0) -> MetaFor:
    """Metadata of a message the fallback route kept (the controller was away): its file name
    carries the call, the file beside it the caller's number (calls/fallback.py). Near-empty
    files are not tickets.

    Only a whole message: the route marks it ``.done`` when the call ends (a caller may talk
    for minutes, or send no audio for a while, so a file's age proves nothing). A message with
    no mark (Asterisk died mid-message, or a file from before the mark) is taken once it has
    not changed for ``FALLBACK_ORPHAN_AFTER_S``."""

    async def meta(path: Path) -> VoicemailMeta | None:
        if not await asyncio.to_thread(_fallback_message_whole, path):
            return None  # not yet: the next rescan looks again
        caller = await asyncio.to_thread(read_fallback_caller, path)
        record = parse_fallback_name(path.name, platform, datetime.now(UTC), caller)
        if record is None or await asyncio.to_thread(wav_duration_s, path) < min_s:
            return None
        return VoicemailMeta(
            platform=platform,
            call_id=record.call_id,
            caller=record.caller,
            recorded_at=record.started_at,
            tags={"route": "fallback"},
        )

    return meta


def _fallback_message_whole(wav: Path, now: float | None = None) -> bool:
    if wav.with_suffix(FALLBACK_DONE_SUFFIX).exists():
        return True
    try:
        age = (time.time() if now is None else now) - wav.stat().st_mtime
    except OSError:
        return False
    return age >= FALLBACK_ORPHAN_AFTER_S
