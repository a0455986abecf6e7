"""The ticket state machine: the legal path, typed refusals, extension limit, overdue clocks."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr.calendar import PlatformCalendar
from tickets.machine import (
    ExtensionLimitReached,
    IllegalTicketTransition,
    ReturnWindowClosed,
    accept,
    link_repeat_call,
    overdue,
    transition,
)
from tickets.model import DeadlineKind, Ticket, TicketCategory, TicketSource, TicketState, Transcript

CST = ZoneInfo("Asia/Shanghai")
CALENDAR = PlatformCalendar()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
S = TicketState


def new_ticket(category: TicketCategory = TicketCategory.CONSULTATION) -> Ticket:
    return accept(
        platform="kunming",
        sequence=7,
        source=TicketSource.VOICEMAIL,
        accepted_at=T0,
        category=category,
        calendar=CALENDAR,
        caller="13812345678",
        call_id="kunming-1.1",
        recording="kunming-1_1.wav",
        transcript=Transcript(text="路灯坏了"),
    )


def move(ticket: Ticket, *states: TicketState, hours: float = 1) -> Ticket:
    at = ticket.timeline[-1].at
    for state in states:
        at += timedelta(hours=hours)
        ticket = transition(ticket, state, at=at, actor="tester", calendar=CALENDAR)
    return ticket


def test_a_new_ticket_is_numbered_and_its_clocks_started() -> None:
    ticket = new_ticket()
    assert ticket.id == "KM-20260302-0007"
    assert ticket.state is S.ACCEPTED
    assert ticket.deadlines.dispatch_by == datetime(2026, 3, 2, 23, 59, 59, tzinfo=CST)
    assert ticket.deadlines.resolve_by == datetime(2026, 3, 9, 23, 59, 59, tzinfo=CST)
    assert [entry.state for entry in ticket.timeline] == [S.ACCEPTED]


def test_the_whole_path_with_a_return_and_a_redispatch() -> None:
    ticket = move(new_ticket(), S.DISPATCHED, S.SIGNED, S.RETURNED, S.DISPATCHED, S.SIGNED, S.IN_PROGRESS)
    ticket = move(ticket, S.RESOLVED, S.VISITED)
    assert ticket.state is S.VISITED and not ticket.is_open
    assert len(ticket.timeline) == 9
    assert ticket.timeline[1].actor == "tester"


def test_dispatch_and_sign_for_start_their_windows() -> None:
    dispatched = move(new_ticket(), S.DISPATCHED)
    assert dispatched.deadlines.sign_by == T0 + timedelta(hours=3)
    signed = move(dispatched, S.SIGNED)
    assert signed.deadlines.return_by == T0 + timedelta(hours=26)


def test_an_illegal_move_names_both_states_and_what_is_allowed() -> None:
    with pytest.raises(IllegalTicketTransition) as caught:
        move(new_ticket(), S.SIGNED)
    assert caught.value.from_state is S.ACCEPTED and caught.value.to_state is S.SIGNED
    assert caught.value.allowed == {S.DISPATCHED, S.RESOLVED}
    assert "accepted → signed is not allowed (allowed: dispatched, resolved)" in str(caught.value)
    closed = move(new_ticket(), S.RESOLVED, S.VISITED)
    with pytest.raises(IllegalTicketTransition, match="the ticket is closed"):
        move(closed, S.IN_PROGRESS)


def test_two_extensions_allowed_the_third_refused() -> None:
    working = move(new_ticket(), S.DISPATCHED, S.SIGNED, S.IN_PROGRESS)
    once = move(working, S.EXTENDED)
    twice = move(once, S.EXTENDED)
    assert (once.extensions, twice.extensions) == (1, 2)
    assert once.deadlines.resolve_by == datetime(2026, 3, 23, 23, 59, 59, tzinfo=CST)
    assert twice.deadlines.resolve_by == datetime(2026, 4, 7, 23, 59, 59, tzinfo=CST)  # Qingming 4-6 April
    with pytest.raises(ExtensionLimitReached, match="at most 2"):
        move(twice, S.EXTENDED)
    assert move(twice, S.RESOLVED).state is S.RESOLVED


def test_a_return_after_24_hours_is_refused() -> None:
    signed = move(new_ticket(), S.DISPATCHED, S.SIGNED)
    with pytest.raises(ReturnWindowClosed):
        move(signed, S.RETURNED, hours=25)
    assert move(signed, S.RETURNED, hours=23).state is S.RETURNED


def test_overdue_names_the_missed_deadlines() -> None:
    ticket = new_ticket()
    assert overdue(ticket, T0 + timedelta(hours=14)) == ()
    assert overdue(ticket, T0 + timedelta(hours=15)) == (DeadlineKind.DISPATCH,)
    dispatched = move(ticket, S.DISPATCHED)
    assert overdue(dispatched, T0 + timedelta(hours=3, seconds=1)) == (DeadlineKind.SIGN,)
    signed = move(dispatched, S.SIGNED)
    assert overdue(signed, T0 + timedelta(hours=27)) == (DeadlineKind.RETURN,)
    working = move(signed, S.IN_PROGRESS)
    assert overdue(working, T0 + timedelta(days=7)) == ()
    assert overdue(working, T0 + timedelta(days=8)) == (DeadlineKind.RESOLVE,)
    assert overdue(move(working, S.RESOLVED), T0 + timedelta(days=30)) == ()


def test_a_repeat_call_is_linked_once() -> None:
    ticket = new_ticket()
    linked = link_repeat_call(ticket, "kunming-2.2", "kunming-2_2.wav", T0 + timedelta(hours=2))
    again = link_repeat_call(linked, "kunming-2.2", "kunming-2_2.wav", T0 + timedelta(hours=3))
    assert again.linked_call_ids == ("kunming-2.2",)
    assert linked.state is S.ACCEPTED
    assert "repeat request: call kunming-2.2, message kunming-2_2.wav" in linked.timeline[-1].note
