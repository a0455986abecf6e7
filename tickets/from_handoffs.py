"""Hand-offs nobody picked up become tickets: a case sent to another platform whose call never
arrived there (dropped between platforms, the caller hung up during the transfer) must not be
lost. The sending platform files them, with the case as the hand-off record had it."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from calls.handoff import RedisHandoffs
from tickets.model import TicketSource, Transcript, category_from_tags
from tickets.store import RedisTicketStore

log = structlog.get_logger(__name__)


async def file_expired_handoffs(
    handoffs: RedisHandoffs, tickets: RedisTicketStore, platform: str, now: datetime, expiry: timedelta
) -> int:
    """Ticket every hand-off of ``platform`` older than ``expiry`` that nobody picked up."""
    filed = 0
    for handoff in await handoffs.expired(now - expiry):
        if handoff.from_platform != platform:
            continue  # its own platform files it
        result = await tickets.create_from_voicemail(
            recording="",
            origin=f"handoff/{handoff.token}",
            platform=platform,
            caller=handoff.caller,
            call_id=handoff.from_call_id,
            accepted_at=handoff.created_at,
            transcript=Transcript(text=handoff.note),
            category=category_from_tags(handoff.tags),
            tags={**handoff.tags, "handoff": handoff.token, "handoff_expired": handoff.to},
            source=TicketSource.TRANSFER,
        )
        await handoffs.settle(handoff.token)
        filed += 1
        log.warning("handoff.expired_into_ticket", token=handoff.token, to=handoff.to, ticket=result.ticket.id)
    return filed
