"""Hand-off records between platforms, and the ones nobody picked up becoming tickets (real Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from calls.handoff import Handoff, RedisHandoffs, handoff_view
from ivr.calendar import PlatformCalendar
from tickets.from_handoffs import file_expired_handoffs
from tickets.model import TicketSource
from tickets.store import RedisTicketStore

T0 = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)


def handoff(token: str, platform: str = "kunming", minutes_ago: int = 10) -> Handoff:
    return Handoff(
        token=token,
        from_platform=platform,
        from_call_id=f"{platform}-{token}",
        to="province",
        caller="13800000001",
        ivr_path=("welcome", "seat"),
        tags={"category": "complaint"},
        seat="1001",
        note="跨市事项",
        created_at=T0 - timedelta(minutes=minutes_ago),
    )


async def test_a_handoff_is_picked_up_once(client: aioredis.Redis) -> None:
    handoffs = RedisHandoffs(client)
    await handoffs.create(handoff("a"))
    first = await handoffs.picked_up("a", "province", "province-1.1", T0)
    again = await handoffs.picked_up("a", "province", "province-2.2", T0)
    assert first is not None and again is not None
    assert (again.picked_up_platform, again.picked_up_call_id) == ("province", "province-1.1")
    assert await handoffs.expired(T0) == []  # picked up: never expires
    assert handoff_view(again)["caller"] == "138****0001"
    assert await handoffs.picked_up("nope", "province", "x", T0) is None


async def test_handoffs_nobody_picked_up_become_one_ticket_each(client: aioredis.Redis) -> None:
    handoffs = RedisHandoffs(client)
    calendar = PlatformCalendar()
    tickets = RedisTicketStore(client, lambda _p: calendar)
    await handoffs.create(handoff("lost"))
    await handoffs.create(handoff("recent", minutes_ago=1))
    await handoffs.create(handoff("dalis", platform="dali"))
    await handoffs.create(handoff("arrived"))
    await handoffs.picked_up("arrived", "province", "province-3.3", T0)

    assert await file_expired_handoffs(handoffs, tickets, "kunming", T0, timedelta(minutes=5)) == 1
    (ticket,) = await tickets.list_tickets()
    assert ticket.source is TicketSource.TRANSFER
    assert ticket.platform == "kunming"
    assert ticket.call_id == "kunming-lost"
    assert ticket.category.value == "complaint"
    assert ticket.transcript is not None and ticket.transcript.text == "跨市事项"
    assert ticket.tags["handoff"] == "lost"
    assert ticket.tags["handoff_expired"] == "province"
    assert ticket.accepted_at == T0 - timedelta(minutes=10)
    # settled: not filed again; and filing it again anyway (a crash before settling) is a no-op
    assert await file_expired_handoffs(handoffs, tickets, "kunming", T0, timedelta(minutes=5)) == 0
    await handoffs.create(handoff("lost"))
    await file_expired_handoffs(handoffs, tickets, "kunming", T0, timedelta(minutes=5))
    assert len(await tickets.list_tickets()) == 1
