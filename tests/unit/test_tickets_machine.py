"""The ticket state machine: the legal path, typed refusals, extension limit, overdue clocks, and
provisional deadlines counted again once the calendar knows their year."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ivr.calendar import DayInfo, DayType, PlatformCalendar
from tickets.machine import (
    ExtensionLimitReached,
    IllegalTicketTransition,
    ReturnWindowClosed,
    accept,
    link_repeat_call,
    overdue,
    recompute_deadlines,
    transition,
)
from tickets.model import DeadlineKind, Ticket, TicketCategory, TicketSource, TicketState, Transcript

CST = ZoneInfo("Asia/Shanghai")
CALENDAR = PlatformCalendar()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
S = TicketState


def new_ticket(category: TicketCategory = TicketCategory.CONSULTATION, at: datetime = T0) -> Ticket:
    return accept(
        platform="kunming",
        sequence=7,
        source=TicketSource.VOICEMAIL,
        accepted_at=at,
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


# chinesecalendar 1.11 ends with 2026; the extension is fictional (tests never invent the real 2027)
WITH_2027 = PlatformCalendar(extension={date(2027, 1, 1): DayInfo(DayType.HOLIDAY, "fictional holiday")})
DEC_11 = datetime(2026, 12, 11, 21, 0, tzinfo=CST)


def test_a_complaint_past_the_calendar_is_filed_with_provisional_deadlines() -> None:
    ticket = new_ticket(TicketCategory.COMPLAINT, at=DEC_11)
    assert ticket.id == "KM-20261211-0007"
    assert ticket.deadlines_provisional
    assert ticket.deadlines.resolve_by == datetime(2027, 1, 1, 23, 59, 59, tzinfo=CST)
    assert not new_ticket(TicketCategory.CONSULTATION, at=DEC_11).deadlines_provisional  # ends 18 Dec


def test_recomputing_once_the_year_is_known_confirms_the_deadline_on_the_timeline() -> None:
    ticket = new_ticket(TicketCategory.COMPLAINT, at=DEC_11)
    later = datetime(2026, 12, 20, 9, 0, tzinfo=CST)
    assert recompute_deadlines(ticket, CALENDAR, later) is None  # still no 2027: nothing to do
    confirmed = recompute_deadlines(ticket, WITH_2027, later)
    assert confirmed is not None
    assert not confirmed.deadlines_provisional
    assert confirmed.deadlines.resolve_by == datetime(2027, 1, 4, 23, 59, 59, tzinfo=CST)
    assert confirmed.deadlines.dispatch_by == ticket.deadlines.dispatch_by
    assert confirmed.state is ticket.state
    entry = confirmed.timeline[-1]
    assert (entry.at, entry.actor, entry.state) == (later, "system", S.ACCEPTED)
    assert entry.note == "deadlines confirmed by the calendar: resolve by 2027-01-04 (was 2027-01-01, provisional)"
    assert recompute_deadlines(confirmed, WITH_2027, later) is None  # firm deadlines are left alone


def test_an_unchanged_date_is_still_confirmed() -> None:
    ticket = new_ticket(TicketCategory.COMPLAINT, at=DEC_11)
    plain_2027 = PlatformCalendar(extension={date(2027, 6, 1): DayInfo(DayType.WORKDAY, "fictional")})
    confirmed = recompute_deadlines(ticket, plain_2027, DEC_11)
    assert confirmed is not None and not confirmed.deadlines_provisional
    assert confirmed.deadlines.resolve_by == ticket.deadlines.resolve_by
    assert confirmed.timeline[-1].note.endswith("(unchanged)")


def test_an_extension_into_a_missing_year_is_provisional_and_recounted_with_its_extensions() -> None:
    working = move(new_ticket(TicketCategory.COMPLAINT, at=datetime(2026, 11, 16, 9, 0, tzinfo=CST)), S.DISPATCHED)
    working = move(working, S.SIGNED, S.IN_PROGRESS, S.EXTENDED)
    assert not working.deadlines_provisional  # 15 + 10 working days: 21 Dec 2026
    twice = move(working, S.EXTENDED)
    assert twice.deadlines_provisional
    assert twice.deadlines.resolve_by == datetime(2027, 1, 4, 23, 59, 59, tzinfo=CST)
    confirmed = recompute_deadlines(twice, WITH_2027, datetime(2026, 12, 30, tzinfo=CST))
    assert confirmed is not None and not confirmed.deadlines_provisional
    assert confirmed.deadlines.resolve_by == datetime(2027, 1, 5, 23, 59, 59, tzinfo=CST)
    assert confirmed.extensions == 2 and confirmed.state is S.EXTENDED
