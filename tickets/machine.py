"""The ticket state machine and the overdue check (pure: a ticket in, a new ticket out).

One table says which moves are legal; ``transition`` is the only way a ticket changes state,
and it starts the clocks each step owns (sign-for at dispatch, return at sign-for, a longer
resolve deadline at an extension). ``recompute_deadlines`` counts a provisional resolve
deadline again once the calendar knows its year.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from common.privacy import mask_fallback_names
from tickets.deadlines import (
    MAX_EXTENSIONS,
    WorkingDays,
    extended_resolve_deadline,
    initial_deadlines,
    local,
    resolve_deadline_after_extensions,
    return_deadline,
    sign_deadline,
)
from tickets.model import (
    DeadlineKind,
    Ticket,
    TicketCategory,
    TicketSource,
    TicketState,
    TimelineEntry,
    Transcript,
    Visit,
    ticket_id,
)

log = structlog.get_logger(__name__)

S = TicketState
ALLOWED: dict[TicketState, frozenset[TicketState]] = {
    # a seat may answer a consultation on the spot (当场办结) without dispatching it
    S.ACCEPTED: frozenset({S.DISPATCHED, S.RESOLVED}),
    S.DISPATCHED: frozenset({S.SIGNED}),
    S.SIGNED: frozenset({S.RETURNED, S.IN_PROGRESS}),
    S.RETURNED: frozenset({S.DISPATCHED}),  # the hotline sends it to the right unit
    S.IN_PROGRESS: frozenset({S.EXTENDED, S.RESOLVED}),
    S.EXTENDED: frozenset({S.EXTENDED, S.RESOLVED}),  # a second extension, or done
    S.RESOLVED: frozenset({S.VISITED}),
    S.VISITED: frozenset(),
}


class IllegalTicketTransition(ValueError):
    """A move the transition table does not allow; names both states and what was allowed."""

    def __init__(self, ticket_id: str, from_state: TicketState, to_state: TicketState) -> None:
        self.ticket_id = ticket_id
        self.from_state = from_state
        self.to_state = to_state
        self.allowed = ALLOWED[from_state]
        allowed = ", ".join(sorted(self.allowed)) or "none, the ticket is closed"
        super().__init__(f"ticket {ticket_id}: {from_state} → {to_state} is not allowed (allowed: {allowed})")


class ExtensionLimitReached(ValueError):
    """A third extension: the seed allows two."""


class ReturnWindowClosed(ValueError):
    """A unit tried to return a ticket more than 24 h after it signed for it."""


def accept(
    *,
    platform: str,
    sequence: int,
    source: TicketSource,
    accepted_at: datetime,
    category: TicketCategory,
    calendar: WorkingDays,
    caller: str = "",
    call_id: str = "",
    recording: str = "",
    transcript: Transcript | None = None,
    tags: dict[str, str] | None = None,
    actor: str = "system",
    uid: str = "",
) -> Ticket:
    """A new ticket in state accepted, numbered from the local acceptance date, clocks started
    (provisionally where the calendar lacks a year: a ticket is always filed)."""
    deadlines, provisional = initial_deadlines(accepted_at, category, calendar)
    return Ticket(
        id=ticket_id(platform, local(accepted_at).date(), sequence),
        platform=platform,
        source=source,
        caller=caller,
        category=category,
        tags=dict(tags or {}),
        transcript=transcript,
        recording=recording,
        call_id=call_id,
        accepted_at=accepted_at,
        deadlines=deadlines,
        deadlines_provisional=provisional,
        timeline=(TimelineEntry(state=S.ACCEPTED, at=accepted_at, actor=actor, note=f"source: {source}"),),
        uid=uid,
    )


def transition(
    ticket: Ticket,
    to: TicketState,
    *,
    at: datetime,
    actor: str,
    calendar: WorkingDays,
    note: str = "",
) -> Ticket:
    """``ticket`` moved to ``to`` at ``at`` by ``actor``, or a typed error saying why not."""
    if to not in ALLOWED[ticket.state]:
        raise IllegalTicketTransition(ticket.id, ticket.state, to)
    deadlines = ticket.deadlines
    extensions = ticket.extensions
    provisional = ticket.deadlines_provisional
    if to is S.DISPATCHED:
        deadlines = deadlines.model_copy(update={"sign_by": sign_deadline(at), "return_by": None})
    elif to is S.SIGNED:
        deadlines = deadlines.model_copy(update={"return_by": return_deadline(at)})
    elif to is S.RETURNED:
        if deadlines.return_by is not None and local(at) > deadlines.return_by:
            raise ReturnWindowClosed(
                f"ticket {ticket.id}: the return window closed at {deadlines.return_by.isoformat()}"
            )
    elif to is S.EXTENDED:
        if extensions >= MAX_EXTENSIONS:
            raise ExtensionLimitReached(f"ticket {ticket.id}: already extended {extensions} times (at most 2)")
        extensions += 1
        extended = extended_resolve_deadline(deadlines.resolve_by, calendar)
        provisional = provisional or extended.provisional
        deadlines = deadlines.model_copy(update={"resolve_by": extended.at})
    entry = TimelineEntry(state=to, at=at, actor=actor, note=note)
    log.info("ticket.transition", ticket=ticket.id, old=str(ticket.state), new=str(to), actor=actor)
    return ticket.model_copy(
        update={
            "state": to,
            "deadlines": deadlines,
            "deadlines_provisional": provisional,
            "extensions": extensions,
            "timeline": (*ticket.timeline, entry),
        }
    )


def recompute_deadlines(ticket: Ticket, calendar: WorkingDays, at: datetime) -> Ticket | None:
    """A provisional resolve deadline counted again on ``calendar`` (with the ticket's extensions);
    the new ticket with a timeline note, or None when nothing changed (the year still unknown)."""
    if not ticket.deadlines_provisional:
        return None
    due = resolve_deadline_after_extensions(ticket.accepted_at, ticket.category, ticket.extensions, calendar)
    was = ticket.deadlines.resolve_by
    if due.provisional and due.at == was:
        return None
    new_day, old_day = local(due.at).date().isoformat(), local(was).date().isoformat()
    change = "unchanged" if due.at == was else f"was {old_day}, provisional"
    if due.provisional:
        note = f"provisional deadlines recomputed: resolve by {new_day} ({change}), still provisional"
    else:
        note = f"deadlines confirmed by the calendar: resolve by {new_day} ({change})"
    entry = TimelineEntry(state=ticket.state, at=at, actor="system", note=note)
    log.info(
        "ticket.deadlines_recomputed", ticket=ticket.id, resolve_by=due.at.isoformat(), provisional=due.provisional
    )
    return ticket.model_copy(
        update={
            "deadlines": ticket.deadlines.model_copy(update={"resolve_by": due.at}),
            "deadlines_provisional": due.provisional,
            "timeline": (*ticket.timeline, entry),
        }
    )


def link_repeat_call(ticket: Ticket, call_id: str, recording: str, at: datetime) -> Ticket:
    """A repeat request merged into this open ticket: remembered, the state is unchanged."""
    note = f"repeat request: call {call_id}" + (f", message {mask_fallback_names(recording)}" if recording else "")
    entry = TimelineEntry(state=ticket.state, at=at, actor="system", note=note)
    linked = ticket.linked_call_ids if call_id in ticket.linked_call_ids else (*ticket.linked_call_ids, call_id)
    return ticket.model_copy(update={"linked_call_ids": linked, "timeline": (*ticket.timeline, entry)})


def overdue(ticket: Ticket, now: datetime) -> tuple[DeadlineKind, ...]:
    """The deadlines ``ticket`` has missed at ``now`` (empty when it is on time or closed).

    Dispatch counts only while the ticket waits for its first dispatch; sign-for while it is
    dispatched; return while a signed ticket is neither returned nor taken up; resolve until
    it is resolved.
    """
    if not ticket.is_open:
        return ()
    late = local(now)
    due = ticket.deadlines
    missed: list[DeadlineKind] = []
    if ticket.state is S.ACCEPTED and late > due.dispatch_by:
        missed.append(DeadlineKind.DISPATCH)
    if ticket.state is S.DISPATCHED and due.sign_by is not None and late > due.sign_by:
        missed.append(DeadlineKind.SIGN)
    if ticket.state is S.SIGNED and due.return_by is not None and late > due.return_by:
        missed.append(DeadlineKind.RETURN)
    if late > due.resolve_by:
        missed.append(DeadlineKind.RESOLVE)
    return tuple(missed)


def note(ticket: Ticket, at: datetime, actor: str, text: str) -> Ticket:
    """A timeline note (an outbound attempt, a reminder): the state is unchanged."""
    entry = TimelineEntry(state=ticket.state, at=at, actor=actor, note=text)
    return ticket.model_copy(update={"timeline": (*ticket.timeline, entry)})


COMMENT_NOTE_CHARS = 200  # the timeline note quotes at most this much of the comment's transcript


def visit_comment(ticket: Ticket, recording: str, transcript: Transcript, *, at: datetime, actor: str) -> Ticket:
    """The 回访 comment's transcript onto the visit, with a timeline note (the state unchanged).

    ``recording`` is the comment's file name as the visit names it. Raises ValueError for a
    ticket whose visit has no such comment; a second transcript of the same comment is ignored."""
    visit = ticket.visit
    if visit is None or not visit.comment_recording or visit.comment_recording != recording:
        raise ValueError(f"ticket {ticket.id} has no 回访 comment {recording!r}")
    if visit.comment_transcript is not None:
        return ticket
    text = " ".join(transcript.text.split())
    if text:
        quoted = text if len(text) <= COMMENT_NOTE_CHARS else text[:COMMENT_NOTE_CHARS] + "…"
        line = f"回访 comment transcribed: {quoted}"
    else:
        line = "回访 comment: no transcript (listen to the recording)"
    noted = note(ticket, at, actor, line)
    return noted.model_copy(update={"visit": visit.model_copy(update={"comment_transcript": transcript})})


def visited(ticket: Ticket, visit: Visit, *, actor: str, calendar: WorkingDays, note: str = "") -> Ticket:
    """The 回访 made: resolved → visited with its answers; not resolved or not satisfied (3)
    flags the ticket for a supervisor (重办/督办)."""
    moved = transition(ticket, S.VISITED, at=visit.at, actor=actor, calendar=calendar, note=note)
    review = visit.resolved is False or visit.satisfaction == 3
    return moved.model_copy(
        update={
            "visit": visit,
            "needs_review": review,
        }
    )
