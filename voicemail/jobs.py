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
    # the job's kind: empty, a message that becomes a new ticket; a ticket id, a recording whose
    # transcript goes onto that existing case (the 回访 comment, outbound/)
    onto_ticket: str = ""


@dataclass(frozen=True)
class AsrJob:
    entry_id: str
    recording: str  # file name in the voicemail spool
    meta: VoicemailMeta

    @property
    def onto_ticket(self) -> str:
        """The existing case the transcript goes onto ("" : a new ticket)."""
        return self.meta.onto_ticket


@dataclass(frozen=True)
class ParkedJob:
    recording: str
    meta: VoicemailMeta
    error: str
    attempts: int
    parked_at: datetime


class TicketSink(Protocol):
    """Where transcripts go (``voicemail.sink.TicketStoreSink``); every call is idempotent.

    ``has_ticket``/``accept``: a message becomes a new ticket. ``has_transcript``/``attach``: a
    recording's transcript goes onto an existing case (``VoicemailMeta.onto_ticket``)."""

    async def has_ticket(self, recording: str) -> bool: ...

    async def accept(self, recording: str, meta: VoicemailMeta, transcript: Transcript) -> str: ...

    async def has_transcript(self, ticket_id: str, recording: str) -> bool: ...

    async def attach(self, ticket_id: str, recording: str, transcript: Transcript) -> str: ...


MetaFor = Callable[[Path], Awaitable[VoicemailMeta | None]]
