"""Seats call missed callers back (dialback/): the gate (inbound first), the seat's and the
call's states, the record and the callback list after each ending, blended offers, and the HTTP
API's roles and scope. A real Redis and ACD engine; AMI is the fake link (Asterisk's part is
tests/integration/test_dialback.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from acd.seat import Seat, SeatState
from calls.ami_bridge import CallEventBridge
from calls.callbacks import RedisCallbackList
from calls.model import CallOutcome, CallRecord, CallState
from dialback.config import DialbackConfig
from dialback.model import DialbackState, due_for_blended, refusal
from dialback.routes import DialbackDesk
from dialback.service import CALL_PREFIX, DialbackRefused, DialbackService
from hotline.api import build_api
from tests.unit.test_acd_engine import MakeRig, Rig, make_rig, seat
from tests.unit.test_api import Backend, bearer
from tickets.model import Ticket
from web.auth import ApiToken, TokenRegistry, token_sha256
from web.openapi import openapi_document, undescribed

__all__ = ["make_rig"]

CITIZEN = "13912345678"
T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


# the gate (pure)


def test_the_gate_puts_inbound_first_and_names_every_reason() -> None:
    ready = Seat("1001", SeatState.READY)
    ok: dict[str, Any] = {
        "seat": ready, "inbound_waiting": 0, "number": CITIZEN, "numbers_in_progress": set(),
        "seats_in_progress": set(), "connected": True,
    }  # fmt: skip
    assert refusal(**ok) is None
    for seat_state in (SeatState.NOT_READY, SeatState.WRAP_UP):
        assert refusal(**{**ok, "seat": Seat("1001", seat_state)}) is None  # the seat chose to call
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"inbound_waiting": 2}, 409, "callers are waiting"),
        ({"connected": False}, 503, "not connected"),
        ({"number": "alice"}, 422, "cannot be dialled"),
        ({"number": "138&PJSIP/9"}, 422, "cannot be dialled"),
        ({"number": "12"}, 422, "cannot be dialled"),
        ({"seats_in_progress": {"1001"}}, 409, "already calling"),
        ({"seat": Seat("1001", SeatState.ON_CALL)}, 409, "on_call"),
        ({"seat": Seat("1001", SeatState.RINGING)}, 409, "ringing"),
        ({"seat": Seat("1001", SeatState.LOGGED_OUT)}, 409, "logged_out"),
        (
            {"seat": Seat("1001", SeatState.WRAP_UP, disposition_due=True, last_call="c1")},
            409,
            "disposition of call c1",
        ),
        ({"numbers_in_progress": {CITIZEN}}, 409, "being called back"),
    ]
    for change, status, words in cases:
        refused = refusal(**{**ok, **change})
        assert refused is not None and refused.status == status and words in refused.reason, change


def test_blended_retries_wait_and_stop() -> None:
    assert due_for_blended(0, None, T, max_tries=3, retry_after_s=600)
    assert not due_for_blended(1, T - timedelta(seconds=599), T, max_tries=3, retry_after_s=600)
    assert due_for_blended(1, T - timedelta(seconds=600), T, max_tries=3, retry_after_s=600)
    assert not due_for_blended(3, None, T, max_tries=3, retry_after_s=600)


# the service on the ACD


@dataclass
class Desk:
    rig: Rig
    service: DialbackService
    entries: RedisCallbackList

    async def missed(self, number: str = CITIZEN, call_id: str = "missed-1") -> str:
        """``number`` hung up in the queue: it is on the callback list; returns the entry id."""
        record = CallRecord(
            call_id=call_id, platform="kunming", caller=number, state=CallState.ENDED, started_at=T, ended_at=T,
            outcome=CallOutcome.ABANDONED,
        )  # fmt: skip
        await self.entries.on_call_ended(record)
        return call_id

    def dialback_originates(self) -> list[dict[str, str]]:
        return [a for a in self.rig.ami.sent("Originate") if a["Context"] == "hotline-dialback"]

    async def seat_answers(self, call_id: str) -> None:
        await self.rig.ami.emit("OriginateResponse", Uniqueid=call_id, Response="Success", Reason="4")

    async def leg_ends(self, call_id: str, status: str, talk: str = "0") -> None:
        """The seat channel's h extension reports the citizen's leg, then the channel goes."""
        await self.rig.ami.emit("UserEvent", UserEvent="HotlineDialback", Id=call_id, Status=status, Talk=talk)
        await self.rig.ami.emit("Hangup", Uniqueid=call_id, Channel="PJSIP/1001-00000001", Cause="16")

    async def record(self, call_id: str) -> CallRecord:
        await self.rig.saved()
        record = await self.rig.store.get(call_id)
        assert record is not None
        return record


@pytest.fixture
async def make_desk(make_rig: MakeRig) -> Any:
    async def make(*, blended: bool = False, **acd: Any) -> Desk:
        rig = await make_rig(seat("1001"), seat("1002"), **acd)
        CallEventBridge(rig.ami, rig.tracker)  # ends records with their channel, as in the controller
        entries = RedisCallbackList(rig.client, "kunming")
        rig.tracker.on_ended(entries.on_call_ended)  # as the controller wires it
        service = DialbackService(
            config=DialbackConfig(retry_after_s=600), blended=blended, seat_ring_s=15, ami=rig.ami, acd=rig.engine,
            seats=rig.seats, tracker=rig.tracker, entries=entries, events=rig.engine._events, clock=rig.clock,
            recordings_dir=None, area_code="0871",
        )  # fmt: skip
        return Desk(rig, service, entries)

    return make


async def test_a_paused_seat_calls_back_and_the_answered_callback_clears_the_entry(make_desk: Any) -> None:
    desk: Desk = await make_desk(wrapup_s=30.0)
    await desk.rig.seats.login("1001", ready=False)  # paused: the ACD offers it nothing
    entry = await desk.missed()
    call = await desk.service.call_back("1001", CITIZEN, origin=f"entry {entry}")
    assert call.call_id.startswith(CALL_PREFIX) and call.state is DialbackState.SEAT_RINGING
    assert desk.rig.state("1001") is SeatState.RINGING  # reserved: no inbound offer while its phone rings
    (action,) = desk.dialback_originates()
    assert action["Channel"] == "PJSIP/1001" and action["ChannelId"] == call.call_id
    assert action["Variable"] == f"HOTLINE_DIAL=PJSIP/{CITIZEN}@carrier,HOTLINE_DIALBACK_RING=45"
    await desk.seat_answers(call.call_id)
    assert desk.rig.state("1001") is SeatState.ON_CALL
    assert desk.service.in_progress()[0].state is DialbackState.TALKING
    await desk.leg_ends(call.call_id, "ANSWER", talk="42")
    assert desk.rig.state("1001") is SeatState.WRAP_UP  # after-call work, as after an inbound call
    record = await desk.record(call.call_id)
    assert (record.direction, record.seat, record.outcome, record.caller) == (
        "outbound", "1001", CallOutcome.ANSWERED, CITIZEN,
    )  # fmt: skip
    assert record.called == "087112345" and record.state is CallState.ENDED
    assert record.tags["dial_status"] == "answer" and record.tags["talk_s"] == "42"
    assert record.tags["dialback_for"] == "entry missed-1"
    await desk.rig.saved()
    assert await desk.entries.pending(10) == []  # the citizen was reached: off the list
    assert desk.service.in_progress() == []
    figures = {m.name: m.value for m in desk.service.metrics()}
    assert figures == {
        "hotline_dialback_started_total": 1, "hotline_dialback_reached_total": 1, "hotline_dialback_in_progress": 0,
    }  # fmt: skip


async def test_a_callback_nobody_answers_keeps_the_entry_with_one_more_try(make_desk: Any) -> None:
    desk: Desk = await make_desk()
    await desk.rig.seats.login("1001")
    await desk.missed()
    call = await desk.service.call_back("1001", CITIZEN)
    await desk.seat_answers(call.call_id)
    await desk.leg_ends(call.call_id, "NOANSWER")
    record = await desk.record(call.call_id)
    assert (record.outcome, record.tags["dial_status"]) == (CallOutcome.NOT_REACHED, "noanswer")
    await desk.rig.saved()
    (entry,) = await desk.entries.pending(10)
    assert (entry.tries, entry.last_try_result, entry.attempts) == (1, "noanswer", 1)
    assert desk.rig.state("1001") is SeatState.READY  # wrapup_s 0


async def test_a_seat_that_does_not_answer_its_own_callback_is_released_and_nothing_is_counted(
    make_desk: Any,
) -> None:
    desk: Desk = await make_desk()
    await desk.rig.seats.login("1001")
    await desk.missed()
    call = await desk.service.call_back("1001", CITIZEN)
    await desk.rig.ami.emit("Hangup", Uniqueid=call.call_id, Channel="PJSIP/1001-00000001", Cause="19")
    await desk.rig.ami.emit("OriginateResponse", Uniqueid=call.call_id, Response="Failure", Reason="3")
    seat_now = desk.rig.seats.get("1001")
    assert (seat_now.state, seat_now.missed_in_a_row) == (SeatState.READY, 0)
    record = await desk.record(call.call_id)
    assert record.outcome is CallOutcome.NOT_REACHED and record.state is CallState.ENDED
    (entry,) = await desk.entries.pending(10)
    assert entry.tries == 0  # the citizen was never dialled


async def test_no_callback_while_a_caller_waits_and_one_number_at_a_time(make_desk: Any) -> None:
    desk: Desk = await make_desk()
    await desk.rig.seats.login("1001", ready=False)
    await desk.rig.seats.login("1002", ready=False)
    await desk.rig.caller("inbound-1")  # nobody ready: the caller waits
    with pytest.raises(DialbackRefused, match="callers are waiting") as refused:
        await desk.service.call_back("1001", CITIZEN)
    assert refused.value.refusal.status == 409 and desk.dialback_originates() == []
    assert desk.rig.state("1001") is SeatState.NOT_READY  # nothing changed
    await desk.rig.engine.leave("inbound-1", "caller hung up")
    await desk.service.call_back("1001", CITIZEN)
    with pytest.raises(DialbackRefused, match="being called back already"):
        await desk.service.call_back("1002", CITIZEN)
    with pytest.raises(DialbackRefused, match="already calling"):
        await desk.service.call_back("1001", "13900000000")


async def test_two_clicks_at_once_call_the_number_once(make_desk: Any) -> None:
    desk: Desk = await make_desk()
    await desk.rig.seats.login("1001", ready=False)
    await desk.rig.seats.login("1002", ready=False)
    results = await asyncio.gather(
        desk.service.call_back("1001", CITIZEN), desk.service.call_back("1002", CITIZEN), return_exceptions=True
    )
    assert sum(isinstance(r, DialbackRefused) for r in results) == 1
    assert len(desk.dialback_originates()) == 1


async def test_asterisk_refusing_the_originate_frees_the_seat(make_desk: Any) -> None:
    desk: Desk = await make_desk()
    await desk.rig.seats.login("1001")
    desk.rig.ami.failing.add("originate")
    with pytest.raises(DialbackRefused) as refused:
        await desk.service.call_back("1001", CITIZEN)
    assert refused.value.refusal.status == 503
    assert desk.rig.state("1001") is SeatState.READY and desk.service.in_progress() == []


async def test_blended_offers_go_to_idle_seats_only_while_nobody_waits(make_desk: Any) -> None:
    desk: Desk = await make_desk(blended=True)
    await desk.missed("13900000001", "m1")
    await desk.missed("13900000002", "m2")
    await desk.missed("alice", "m3")  # no number to dial: never offered
    await desk.rig.seats.login("1001", ready=False)
    await desk.rig.seats.login("1002", ready=False)
    await desk.rig.caller("inbound-1")
    await desk.rig.seats.ready("1001")  # the ACD offers it the caller …
    offer_id = await desk.rig.offer_to("1001")
    assert await desk.service.offer_blended() == []  # … and no callback is offered meanwhile
    await desk.rig.engine.leave("inbound-1", "caller hung up")  # the offer is withdrawn …
    await desk.rig.ami.emit("OriginateResponse", Uniqueid=offer_id, Response="Failure", Reason="1")
    assert desk.rig.state("1001") is SeatState.READY  # … and settled: the seat is idle
    await desk.rig.seats.ready("1002")
    offered = await desk.service.offer_blended()
    assert sorted(c.seat_id for c in offered) == ["1001", "1002"]
    assert {c.number for c in offered} == {"13900000001", "13900000002"}
    assert all(c.blended for c in offered)
    assert {desk.rig.state("1001"), desk.rig.state("1002")} == {SeatState.RINGING}
    # a blended offer the seat lets ring out counts as a missed offer
    first = offered[0]
    await desk.rig.ami.emit("OriginateResponse", Uniqueid=first.call_id, Response="Failure", Reason="3")
    assert desk.rig.seats.get(first.seat_id).missed_in_a_row == 1
    # the citizen was never dialled: the number is offered again; the other one is in progress
    (again,) = await desk.service.offer_blended()
    assert (again.seat_id, again.number) == (first.seat_id, first.number)
    # a number tried lately (acd retry_after_s) is not offered again before its time
    await desk.seat_answers(again.call_id)
    await desk.leg_ends(again.call_id, "BUSY")
    assert desk.rig.state(first.seat_id) is SeatState.READY
    assert await desk.service.offer_blended() == []
    desk.rig.clock.advance(601)
    assert [c.number for c in await desk.service.offer_blended()] == [first.number]


async def test_blended_is_off_by_default(make_desk: Any) -> None:
    desk: Desk = await make_desk()
    await desk.missed()
    await desk.rig.seats.login("1001")
    assert await desk.service.offer_blended() == []


# the HTTP API


TOKENS = TokenRegistry(
    [
        ApiToken(name="sup", role="supervisor", sha256=token_sha256("sup-token")),
        ApiToken(name="seat", role="seat", sha256=token_sha256("seat-token"), seat="1001"),
        ApiToken(name="dali-seat", role="seat", sha256=token_sha256("dali-token"), seat="1001", platform="dali"),
        ApiToken(name="prov", role="supervisor", sha256=token_sha256("prov-token"), platform="province"),
    ]
)


class Tickets:
    async def get(self, ticket_id: str) -> Ticket | None:
        found = {
            "KM-20260302-0001": Ticket.model_construct(id="KM-20260302-0001", platform="kunming", caller=CITIZEN),
            "DL-20260302-0001": Ticket.model_construct(id="DL-20260302-0001", platform="dali", caller="13700000000"),
            "KM-20260302-0002": Ticket.model_construct(id="KM-20260302-0002", platform="kunming", caller=""),
        }
        return found.get(ticket_id)


@pytest.fixture
async def api(make_desk: Any) -> AsyncIterator[tuple[Desk, Backend, TestClient[Any, Any]]]:
    desk: Desk = await make_desk()
    backend = Backend()
    app = build_api(backend, TOKENS, dialback=DialbackDesk(desk.service, Tickets()))
    assert undescribed(app) == []  # both routes in the OpenAPI document
    paths = openapi_document(app, title="t", version="0")["paths"]
    assert "post" in paths["/api/v1/seats/{seat_id}/callback"] and "get" in paths["/api/v1/seats/{seat_id}/callbacks"]
    client = TestClient(TestServer(app))
    await client.start_server()
    yield desk, backend, client
    await client.close()


async def test_the_desk_list_masks_numbers_and_is_the_seats_own(
    api: tuple[Desk, Backend, TestClient[Any, Any]],
) -> None:
    desk, _backend, client = api
    await desk.missed()
    response = await client.get("/api/v1/seats/1001/callbacks", headers=bearer("seat-token"))
    assert response.status == 200
    body = await response.json()
    (entry,) = body["callbacks"]
    assert entry["caller"] == "139****5678" and entry["entry"] == "missed-1"
    assert CITIZEN not in await response.text()
    assert (body["inbound_waiting"], body["blended"], body["in_progress"]) == (0, False, [])
    assert (await client.get("/api/v1/seats/1002/callbacks", headers=bearer("seat-token"))).status == 403
    assert (await client.get("/api/v1/seats/1002/callbacks", headers=bearer("sup-token"))).status == 200
    assert (await client.get("/api/v1/seats/1001/callbacks")).status == 401
    for token in ("dali-token", "prov-token"):  # another platform's seat; the province's supervisor
        assert (await client.get("/api/v1/seats/1001/callbacks", headers=bearer(token))).status == 403, token


async def test_click_to_call_roles_scope_and_inbound_first(api: tuple[Desk, Backend, TestClient[Any, Any]]) -> None:
    desk, backend, client = api
    await desk.rig.seats.login("1001", ready=False)
    await desk.rig.seats.login("1002", ready=False)
    entry = await desk.missed()
    url = "/api/v1/seats/{}/callback"
    # another seat's phone: 403; another platform's token: 403 (the middleware); bad bodies: 400
    assert (await client.post(url.format("1002"), json={"entry": entry}, headers=bearer("seat-token"))).status == 403
    assert (await client.post(url.format("1001"), json={"entry": entry}, headers=bearer("dali-token"))).status == 403
    for body in ({}, {"entry": entry, "ticket_id": "KM-20260302-0001"}, {"entry": 5}, {"entry": "x" * 500}):
        assert (await client.post(url.format("1001"), json=body, headers=bearer("seat-token"))).status == 400, body
    assert (await client.post(url.format("1001"), json={"entry": "nope"}, headers=bearer("seat-token"))).status == 404
    # a case of another platform, a case without a number
    other = await client.post(url.format("1001"), json={"ticket_id": "DL-20260302-0001"}, headers=bearer("seat-token"))
    assert other.status == 403
    bare = await client.post(url.format("1001"), json={"ticket_id": "KM-20260302-0002"}, headers=bearer("seat-token"))
    assert bare.status == 409
    # a caller waits: inbound first
    await desk.rig.caller("inbound-1")
    waiting = await client.post(url.format("1001"), json={"entry": entry}, headers=bearer("seat-token"))
    assert waiting.status == 409 and "callers are waiting" in (await waiting.json())["error"]
    await desk.rig.engine.leave("inbound-1", "caller hung up")
    started = await client.post(url.format("1001"), json={"entry": entry}, headers=bearer("seat-token"))
    assert started.status == 202
    view = await started.json()
    assert view["caller"] == "139****5678" and view["seat"] == "1001" and CITIZEN not in await started.text()
    assert desk.dialback_originates()[0]["Variable"].startswith(f"HOTLINE_DIAL=PJSIP/{CITIZEN}@carrier")
    # a supervisor calls a case's citizen back from seat 1002
    by_case = await client.post(url.format("1002"), json={"ticket_id": "KM-20260302-0001"}, headers=bearer("sup-token"))
    assert by_case.status == 409  # that number is being called already (one call at a time per number)
    # every attempt is on the audit trail, allowed or not
    results = [e.result for e in backend.audited if e.action == "callbacks.dial"]
    assert len(results) == 12
    assert sum(r.startswith("started") for r in results) == 1
    assert any("callers are waiting" in r for r in results)
    assert all(CITIZEN not in r for r in results)
