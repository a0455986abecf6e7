"""What a transcription job is: a caller's message with what the IVR knew about it.

The queue (``voicemail.queue``) carries jobs on Redis Streams; the worker
(``voicemail.worker``) turns them into tickets through a ``TicketSink``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from tickets.model import Transcript


class VoicemailMeta(BaseModel):
    """What the IVR knew about a message. ``tags['category']`` may name a ticket category."""

    model_config = ConfigDict(frozen=True)

    platform: str
    call_id: str = ""
    caller: str = ""
    recorded_at: datetime | None = None
    tags: dict[str, str] = {}


@dataclass(frozen=True)
class AsrJob:
    entry_id: str
    recording: str  # file name in the voicemail spool
    meta: VoicemailMeta


@dataclass(frozen=True)
class ParkedJob:
    recording: str
    meta: VoicemailMeta
    error: str
    attempts: int
    parked_at: datetime


class TicketSink(Protocol):
    """Where transcripts go (``voicemail.sink.TicketStoreSink``); both calls are idempotent."""

    async def has_ticket(self, recording: str) -> bool: ...

    async def accept(self, recording: str, meta: VoicemailMeta, transcript: Transcript) -> str: ...


MetaFor = Callable[[Path], Awaitable[VoicemailMeta | None]]
