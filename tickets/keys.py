"""The ticket store's Redis keys and the small helpers its modules share.

Keys (all under ``hotline:``):

- ``ticket:<id>``: the ticket as JSON.
- ``ticket:by-recording:<file>``: the ticket a message became. It is written in the same
  MULTI as the ticket, so a message never yields two tickets, however often it is processed.
- ``tickets:open-by-caller:<platform>:<digest>``: the caller's open ticket (repeat requests
  merge into it; 国办函〔2025〕66号 asks for one ticket per matter). ``digest`` is the caller
  index's HMAC of the number (calls/caller_index.py), so no key name carries a number; the
  ``tickets:open:<platform>:<caller>`` keys of earlier versions are renamed in the background
  after the controller's start (tickets/open_keys.py); until then they are read, and deleted
  with the new key.
- ``tickets:seq:<platform>:<yyyymmdd>``: the day's ticket counter (INCR; a lost race leaves a gap
  in the numbers, never a duplicate). It never expires: a message of that day handled days later
  (a parked job retried, workers down) must not start the day at ``0001`` again.
- ``tickets:by-accepted``: every ticket id, scored by acceptance time (listing by date).
- ``tickets:new``: a stream with one entry per new ticket for exporters; the entry's
  ``idempotency_key`` is ``<ticket id>:<uid>`` (``export_key``), so a consumer that sees it twice
  can drop the copy, and a number given out again after Redis was restored from an older backup
  is never taken for a copy of the first case (its uid differs). A
  ticket whose provisional deadlines were recomputed is sent again (``event:
  deadlines_recomputed``, key ``<id>:deadlines:<timeline length>``).
- ``tickets:provisional:<platform>``: tickets whose resolve deadline counted days of a year the
  calendar did not know (ZSET, scored by that deadline's year); ``confirm_provisional`` counts
  them again once the calendar reaches that year.
- ``tickets:needs-review:<platform>``: tickets a 回访 flagged (重办/督办), scored by when.
"""

from __future__ import annotations

from datetime import date

import redis.asyncio as aioredis

from tickets.deadlines import CHINA
from tickets.model import Ticket


def export_key(ticket: Ticket) -> str:
    """The idempotency key of a new ticket's export: its id and its random uid (tickets made
    before uids existed: the id alone)."""
    return f"{ticket.id}:{ticket.uid}" if ticket.uid else ticket.id


PREFIX = "hotline:"
EXPORT_STREAM = f"{PREFIX}tickets:new"


def export_stream(platform: str) -> str:
    return f"{EXPORT_STREAM}:{platform}"


INDEX = f"{PREFIX}tickets:by-accepted"
EXPORT_MAXLEN = 100_000
RETRIES = 20


def ticket_key(ticket_id: str) -> str:
    return f"{PREFIX}ticket:{ticket_id}"


def recording_key(recording: str) -> str:
    return f"{PREFIX}ticket:by-recording:{recording}"


OLD_OPEN_PREFIX = f"{PREFIX}tickets:open:"  # + <platform>:<whole number>: before the number left the name


def open_ticket_key(platform: str, caller_digest: str) -> str:
    """The caller's open ticket (voicemail repeat requests merge into it), by the caller index's
    digest of the number (TicketStoreBase.open_key makes it from a number)."""
    return f"{PREFIX}tickets:open-by-caller:{platform}:{caller_digest}"


def provisional_key(platform: str) -> str:
    return f"{PREFIX}tickets:provisional:{platform}"


def needs_review_key(platform: str) -> str:
    """ZSET of ``platform``'s tickets flagged by a 回访 (重办/督办), by when."""
    return f"{PREFIX}tickets:needs-review:{platform}"


def resolve_year(ticket: Ticket) -> int:
    """The index score of a provisional ticket: the calendar must know up to this year."""
    return ticket.deadlines.resolve_by.astimezone(CHINA).year


def sequence_key(platform: str, day: date) -> str:
    return f"{PREFIX}tickets:seq:{platform}:{day:%Y%m%d}"


def begin(pipe: aioredis.client.Pipeline) -> None:
    """Start the MULTI block of a watched pipeline (redis-py leaves ``multi`` untyped)."""
    pipe.multi()  # type: ignore[no-untyped-call]


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
