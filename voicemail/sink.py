"""The default end of the transcription queue: a transcript becomes a ticket in the store."""

from __future__ import annotations

from common.clock import Clock, system_clock
from tickets.model import Transcript, category_from_tags
from tickets.store import RedisTicketStore
from voicemail.jobs import VoicemailMeta


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
