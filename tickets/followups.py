"""The ticket's side after its steps: timeline notes, the 回访 (visit) and its comment's
transcript, and the needs-review index (``tickets:needs-review:<platform>``) of flagged visits."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from tickets import machine
from tickets.keys import needs_review_key, text
from tickets.model import Ticket, Transcript, Visit, is_ticket_id
from tickets.store_base import TicketStoreBase


class TicketFollowUps(TicketStoreBase):
    """Notes and visits (tickets/store.py's RedisTicketStore has them)."""

    async def add_note(self, ticket_id: str, *, at: datetime, actor: str, note: str) -> Ticket:
        """A timeline note on the ticket (its state unchanged); TicketNotFound."""
        return await self._update(ticket_id, lambda ticket: machine.note(ticket, at, actor, note))

    async def record_visit(self, ticket_id: str, visit: Visit, *, actor: str, note: str = "") -> Ticket:
        """The 回访's answers: resolved → visited; a flagged ticket goes on its platform's
        needs-review index (needs_review_key) for supervisors. Machine errors propagate."""
        moved = await self._update(
            ticket_id,
            lambda t: machine.visited(t, visit, actor=actor, calendar=self._calendar_for(t.platform), note=note),
        )
        if moved.needs_review:
            await self._redis.zadd(needs_review_key(moved.platform), {moved.id: visit.at.timestamp()})
        await self.notify_saved(moved)  # the reports count the visited step and its answers
        return moved

    async def record_visit_comment(
        self, ticket_id: str, recording: str, transcript: Transcript, *, at: datetime, actor: str
    ) -> Ticket:
        """The 回访 comment's transcript onto the ticket's visit (machine.visit_comment):
        idempotent; ValueError for a ticket without that comment, TicketNotFound."""
        return await self._update(
            ticket_id, lambda t: machine.visit_comment(t, recording, transcript, at=at, actor=actor)
        )

    async def has_visit_comment_transcript(self, ticket_id: str) -> bool:
        """Whether the ticket's 回访 comment was transcribed (False for no ticket or no visit)."""
        ticket = await self.get(ticket_id) if is_ticket_id(ticket_id) else None
        return ticket is not None and ticket.visit is not None and ticket.visit.comment_transcript is not None

    async def needs_review(self, platform: str, limit: int = 100) -> list[str]:
        """The ids of ``platform``'s tickets flagged for a supervisor, newest first."""
        ids = cast(list[bytes | str], await self._redis.zrevrange(needs_review_key(platform), 0, limit - 1))
        return [text(i) for i in ids]
