"""An outbound job (one reminder or one 回访 of one ticket) and its state machine (pure).

A job is tried up to its kind's ``max_attempts`` times. Each try: ``queued`` → ``dialling``
(claimed atomically in Redis before the Originate) → ``answered`` (our AGI script has the call)
→ a result; then the job is ``done``, ``failed`` (no try left) or ``queued`` again for a retry.
``cancelled``: nothing to call about any more (the ticket moved on, the number is on the
do-not-call list). One table says which moves are legal; ``move`` is the only way a state changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

import structlog

log = structlog.get_logger(__name__)

COMMENTS_DIR = "outbound"  # under the spool: the 回访 comments (<job id>.wav)


class Kind(StrEnum):
    REMINDER = "reminder"  # 电话提醒: the unit is asked to sign for a dispatched case
    VISIT = "visit"  # 回访: the citizen is asked whether it was resolved and how satisfied


class JobState(StrEnum):
    QUEUED = "queued"
    DIALLING = "dialling"
    ANSWERED = "answered"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)

    @property
    def on_a_channel(self) -> bool:
        return self in (JobState.DIALLING, JobState.ANSWERED)


class Result(StrEnum):
    """How one try ended."""

    SIGNED = "signed"  # reminder: key 1
    VISITED = "visited"  # 回访: answers given
    NO_KEY = "no_key"  # answered, no (valid) key
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    DIAL_FAILED = "dial_failed"  # Asterisk could not place it (trunk down, refused)
    INTERRUPTED = "interrupted"  # the controller restarted, or the call vanished, mid-try
    NOT_NEEDED = "not_needed"  # the ticket moved on before the call (signed otherwise, closed)
    DNC = "dnc"  # the number is on the do-not-call list


# results after which the job is over whatever tries are left
FINAL_RESULTS = frozenset({Result.SIGNED, Result.VISITED, Result.NOT_NEEDED, Result.DNC})

S = JobState
ALLOWED: dict[JobState, frozenset[JobState]] = {
    S.QUEUED: frozenset({S.DIALLING, S.CANCELLED}),
    S.DIALLING: frozenset({S.ANSWERED, S.QUEUED, S.FAILED, S.DONE, S.CANCELLED}),
    S.ANSWERED: frozenset({S.QUEUED, S.FAILED, S.DONE, S.CANCELLED}),
    S.DONE: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}

_JOB_ID = re.compile(r"[A-Z][A-Z0-9_]{0,31}-[0-9]{8}-[0-9]{4,9}\.(reminder|visit)\.[0-9]{1,3}\.[0-9]{1,2}")


def job_id(ticket_id: str, kind: Kind, dispatch: int, round_: int) -> str:
    """``KM-20261128-0001.reminder.1.2``: the ticket, the kind, which dispatch (a returned case is
    dispatched again), which round (the second reminder before the sign-for deadline)."""
    return f"{ticket_id}.{kind}.{dispatch}.{round_}"


def is_job_id(text: str) -> bool:
    """Whether ``text`` is shaped like a job id (it arrives from Asterisk: checked before use)."""
    return _JOB_ID.fullmatch(text) is not None


class IllegalJobMove(ValueError):
    def __init__(self, job: str, old: JobState, new: JobState) -> None:
        super().__init__(f"outbound job {job}: {old} → {new} is not allowed")


@dataclass(frozen=True)
class Job:
    """One job as stored (store.py keeps it as a Redis hash)."""

    id: str
    platform: str
    ticket_id: str
    kind: Kind
    number: str  # stored whole (it is dialled); masked everywhere it is shown or logged
    state: JobState = JobState.QUEUED
    tries: int = 0
    due_at: float = 0.0  # epoch seconds of the next try (queued)
    created_at: float = 0.0
    updated_at: float = 0.0
    last_result: str = ""
    history: tuple[str, ...] = field(default=())  # "epoch result" per try


def move(job: Job, to: JobState, at: float) -> Job:
    """``job`` in state ``to``, or IllegalJobMove."""
    if to not in ALLOWED[job.state]:
        raise IllegalJobMove(job.id, job.state, to)
    log.info("outbound.job_state", job=job.id, old=str(job.state), new=str(to))
    return replace(job, state=to, updated_at=at)


def after_try(job: Job, result: Result, at: float, max_attempts: int, retry_after_s: tuple[int, ...]) -> Job:
    """The job after one try ended with ``result``: done, failed, cancelled or queued again."""
    history = (*job.history, f"{int(at)} {result}")
    if result in (Result.SIGNED, Result.VISITED):
        to = S.DONE
    elif result in (Result.NOT_NEEDED, Result.DNC):
        to = S.CANCELLED
    elif job.tries >= max_attempts:
        to = S.FAILED
    else:
        to = S.QUEUED
    moved = move(job, to, at)
    due = at + retry_gap(job.tries, retry_after_s) if to is S.QUEUED else 0.0
    return replace(moved, last_result=str(result), history=history, due_at=due)


def retry_gap(tries_done: int, retry_after_s: tuple[int, ...]) -> int:
    """The wait after try number ``tries_done`` (1-based); the last gap repeats."""
    return retry_after_s[min(max(tries_done, 1), len(retry_after_s)) - 1]
