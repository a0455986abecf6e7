"""The default end of the transcription queue: a transcript becomes a ticket in the store."""

from __future__ import annotations

from pathlib import PurePosixPath

from common.clock import Clock, system_clock
from tickets.model import Transcript, category_from_tags
from tickets.store import RedisTicketStore
from voicemail.jobs import VoicemailMeta

ASR_ACTOR = "asr"  # who writes a transcript onto an existing case


class TicketStoreSink:
    """Messages to tickets through ``RedisTicketStore`` (idempotent per message file).

    The ticket is accepted when the message was recorded, if known: the caller's clock starts
    when they asked, not when a worker got to it.
    """

    def __init__(self, store: RedisTicketStore, clock: Clock = system_clock) -> None:
        self._store = store
        self._clock = clock

    async def has_ticket(self, recording: str) -> bool:
        return await self._store.has_ticket(recording)

    async def accept(self, recording: str, meta: VoicemailMeta, transcript: Transcript) -> str:
        result = await self._store.create_from_voicemail(
            recording=recording,
            platform=meta.platform,
            caller=meta.caller,
            call_id=meta.call_id,
            accepted_at=meta.recorded_at or self._clock(),
            transcript=transcript,
            category=category_from_tags(meta.tags),
            tags=meta.tags,
        )
        return result.ticket.id

    async def has_transcript(self, ticket_id: str, recording: str) -> bool:
        del recording  # a visit has one comment
        return await self._store.has_visit_comment_transcript(ticket_id)

    async def attach(self, ticket_id: str, recording: str, transcript: Transcript) -> str:
        """A 回访 comment (``<folder>/<file>.wav`` in the spool) onto its case's visit."""
        name = PurePosixPath(recording).name
        await self._store.record_visit_comment(ticket_id, name, transcript, at=self._clock(), actor=ASR_ACTOR)
        return ticket_id
