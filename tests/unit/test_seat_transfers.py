"""A seat's transfer of its caller on a fake AMI link and a real redis-server: a double click on a
blind emergency transfer redirects the caller once (issue 11, defect 10)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from calls.handoff import RedisHandoffs
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from ivr.consult import Consultations
from ivr.dialplan.loader import Dialplan
from ivr.dialplan.registry import DialplanRegistry
from ivr.dialplan.schema import TransferMode
from ivr.transfer import SeatTransfers, TransferInProgress, TransferRefused
from tests.support.fake_ami_link import FakeAmiLink
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
CALLER, SEAT = "PJSIP/trunk-00000001", "PJSIP/1001-00000002"
CALL = "kunming-1.1"
NOW = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)
BLIND = TransferMode.BLIND


class NoPlatformFull:
    async def has_free_seat(self, platform: str) -> bool | None:
        return True


@dataclass
class Rig:
    ami: FakeAmiLink
    tracker: CallTracker
    transfers: SeatTransfers

    async def seat_answers(self, seat: str = "1001", at: datetime = NOW) -> None:
        await self.tracker.amend(CALL, {"seat": seat, "seat_answered_at": at})

    def redirects(self) -> list[dict[str, str]]:
        return self.ami.sent("Redirect")


@pytest.fixture
async def rig(client: aioredis.Redis) -> AsyncIterator[Rig]:
    async def prepare(_plan: Dialplan) -> None:
        return None

    dialplans = DialplanRegistry(REPO / "dialplans" / "kunming.yaml", REPO / "prompts", "kunming", prepare)
    await dialplans.load_initial()  # the shipped dialplan: the directory's 110 (blind or three-way)
    ami = FakeAmiLink()
    tracker = CallTracker(RedisCallStore(client, timedelta(days=1), "kunming"), "kunming", lambda: NOW)
    await tracker.channel_created(CALL, CALLER, "13800000000", "", "12345")
    handoffs = RedisHandoffs(client)
    transfers = SeatTransfers(
        platform="kunming",
        tracker=tracker,
        dialplans=dialplans,
        ami=ami,
        handoffs=handoffs,
        platform_trunks={},
        trunks=frozenset({"carrier"}),
        availability=NoPlatformFull(),
        consultations=Consultations(ami=ami, tracker=tracker, handoffs=handoffs),
        clock=lambda: NOW,
    )
    rig = Rig(ami, tracker, transfers)
    await rig.seat_answers()
    yield rig


async def test_a_double_click_while_the_first_is_being_sent_is_refused(rig: Rig) -> None:
    rig.ami.gates["redirect"] = gate = asyncio.Event()  # Asterisk has not answered the Redirect yet
    first = asyncio.create_task(rig.transfers.transfer(CALL, "police", "1001", ""))
    await wait_until(rig.redirects, timeout_s=30)
    second = asyncio.create_task(rig.transfers.transfer(CALL, "police", "1001", ""))
    for _ in range(10):  # refused at once: it never waits on Asterisk
        await asyncio.sleep(0)
    refused_at_once = second.done()
    gate.set()
    started = await first
    assert refused_at_once
    with pytest.raises(TransferInProgress, match="being made now"):
        await second
    assert started.dial == "PJSIP/110@carrier"
    assert len(rig.redirects()) == 1
    dials = [a for a in rig.ami.sent("Setvar") if a["Variable"] == "HOTLINE_TRANSFER_DIAL"]
    assert len(dials) == 1


async def test_a_double_click_after_the_first_went_through_is_refused(rig: Rig) -> None:
    await rig.transfers.transfer(CALL, "police", "1001", "")
    with pytest.raises(TransferInProgress, match="handed this caller on already"):
        await rig.transfers.transfer(CALL, "police", "1001", "")
    with pytest.raises(TransferInProgress):  # nor anywhere else, in any mode
        await rig.transfers.transfer(CALL, "fire", "1001", "", TransferMode.THREE_WAY)
    assert len(rig.redirects()) == 1
    assert rig.ami.sent("Atxfer") == []


async def test_many_clicks_at_once_redirect_once(rig: Rig) -> None:
    results = await asyncio.gather(
        *(rig.transfers.transfer(CALL, "police", "1001", "") for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(result, BaseException) for result in results) == 1
    assert sum(isinstance(result, TransferInProgress) for result in results) == 4
    assert len(rig.redirects()) == 1


async def test_a_refused_transfer_does_not_block_the_next_one(rig: Rig) -> None:
    rig.ami.failing.add("redirect")
    with pytest.raises(TransferRefused, match="Asterisk did not take the transfer"):
        await rig.transfers.transfer(CALL, "police", "1001", "")
    rig.ami.failing.clear()
    await rig.transfers.transfer(CALL, "police", "1001", "")  # the seat tries again: it goes
    assert len(rig.redirects()) == 2


async def test_a_seat_that_has_the_caller_again_may_transfer_again(rig: Rig) -> None:
    """The transfer failed (nobody answered) and the dialplan queued the caller to a seat again."""
    await rig.transfers.transfer(CALL, "police", "1001", "")
    await rig.seat_answers("1002", NOW + timedelta(minutes=1))
    await rig.transfers.transfer(CALL, "police", "1002", "")
    assert len(rig.redirects()) == 2


async def test_an_ended_call_is_forgotten(rig: Rig) -> None:
    await rig.transfers.transfer(CALL, "police", "1001", "")
    await rig.tracker.hung_up(CALL, "Normal Clearing")
    with pytest.raises(TransferRefused, match="only a call in progress"):
        await rig.transfers.transfer(CALL, "police", "1001", "")
    assert rig.transfers._handed_on == {}  # nothing kept for calls that are gone
