"""The FastAGI script an answered outbound call runs (``agi://…/<key>/outbound``).

A reminder: the case number and the sign-for deadline read in Mandarin (telephony/say_zh.py),
"1 to sign for, 2 to hear it again"; key 1 signs the ticket for the unit. A 回访: "resolved?
1 yes 2 no", "how satisfied? 1/2/3", an optional short comment recorded into the spool; the ticket moves to visited.
Every path settles the try (outbound/service.py's finish), a hang-up included."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog

from outbound.model import COMMENTS_DIR, Job, JobState, Kind, Result, is_job_id
from outbound.service import OutboundService
from telephony import say_zh
from telephony.agi_server import AgiHangup, AgiSession
from telephony.dialplan_names import OUTBOUND_VARIABLE
from tickets.model import Ticket, Visit

log = structlog.get_logger(__name__)

KEY_WAIT_S = 6.0
REPEATS = 3  # a reminder is read at most this often (key 2 repeats it)
ON_CALL = (JobState.ANSWERED,)


def prompt_names() -> tuple[str, ...]:
    return (
        "reminder_intro",
        "reminder_deadline",
        "reminder_keys",
        "reminder_signed",
        "visit_intro",
        "visit_resolved",
        "visit_satisfaction",
        "visit_comment",
        "visit_thanks",
    )


MATTER_PROMPT_PREFIX = "matter_"  # matter_<matter type id>: built per platform from its desk codes


_MATTER = re.compile(r"[a-z0-9_-]{1,64}")


class OutboundCall:
    """The AGI route; ``prompts_dir`` holds the built prompts (prompt_names()), ``sounds_dir``
    the Mandarin sound set numbers and times are read with."""

    def __init__(
        self, service: OutboundService, prompts_dir: Path, spool_dir: Path, timezone: str, *, sounds_dir: Path
    ) -> None:
        self._service = service
        self._prompts = prompts_dir
        self._sounds = sounds_dir
        self._comments = spool_dir / COMMENTS_DIR
        self._timezone = timezone

    def _prompt(self, name: str) -> str:
        return str(self._prompts / name)

    async def __call__(self, session: AgiSession) -> None:
        job_id = await session.get_variable(OUTBOUND_VARIABLE) or ""
        if not is_job_id(job_id):
            log.warning("outbound.agi_without_job")
            await session.hangup()
            return
        job = await self._service.answered(job_id)
        ticket = await self._service.ticket(job.ticket_id) if job is not None else None
        if job is None or ticket is None:
            log.info("outbound.agi_not_ours", job=job_id)
            await session.hangup()
            return
        result, detail = Result.NO_KEY, ""
        try:
            if job.kind is Kind.REMINDER:
                result = await self._remind(session, job, ticket)
            else:
                result = await self._visit(session, job, ticket)
        except AgiHangup:
            detail = "hung up"
        finally:
            await self._service.finish(job.id, result, expected=ON_CALL, detail=detail)
        await session.hangup()

    async def _say_case(self, session: AgiSession, intro: str, ticket: Ticket) -> None:
        await session.stream_file(self._prompt(intro))
        spoken = "".join(ch for ch in ticket.id if ch.isascii() and ch.isalnum())
        if say_zh.SPELLABLE.fullmatch(spoken):
            await say_zh.say(session, self._sounds, say_zh.spell(spoken))

    async def _remind(self, session: AgiSession, job: Job, ticket: Ticket) -> Result:
        # the matter, when its prompt was built (a type added after the start is skipped)
        matter = self._prompts / f"{MATTER_PROMPT_PREFIX}{ticket.matter_type}.wav"
        for _ in range(REPEATS):
            await self._say_case(session, "reminder_intro", ticket)
            if ticket.matter_type and _MATTER.fullmatch(ticket.matter_type) and matter.is_file():
                await session.stream_file(str(matter.with_suffix("")))
            sign_by = ticket.deadlines.sign_by
            if sign_by is not None:
                await session.stream_file(self._prompt("reminder_deadline"))
                local = sign_by.astimezone(ZoneInfo(self._timezone))
                await say_zh.say(session, self._sounds, say_zh.clock_time(local))  # 3月9日14点05分
            key = await session.get_data(self._prompt("reminder_keys"), KEY_WAIT_S)
            if key == "1":
                if not await self._service.signed_by_phone(job):
                    return Result.NOT_NEEDED
                await session.stream_file(self._prompt("reminder_signed"))
                return Result.SIGNED
            if key != "2":
                return Result.NO_KEY
        return Result.NO_KEY

    async def _ask(self, session: AgiSession, prompt: str, keys: str) -> str:
        for _ in range(2):
            key = await session.get_data(self._prompt(prompt), KEY_WAIT_S)
            if key and key in keys:
                return key
        return ""

    async def _visit(self, session: AgiSession, job: Job, ticket: Ticket) -> Result:
        await self._say_case(session, "visit_intro", ticket)
        resolved_key = await self._ask(session, "visit_resolved", "12")
        score_key = await self._ask(session, "visit_satisfaction", "123")
        if not resolved_key and not score_key:
            return Result.NO_KEY
        comment = ""
        seconds = self._service.config.visit_comment_s
        if seconds:
            await session.stream_file(self._prompt("visit_comment"))
            self._comments.mkdir(parents=True, exist_ok=True)
            recorded = await session.record_file(str(self._comments / job.id), seconds, 3)
            if recorded.samples > 0:
                comment = f"{job.id}.wav"
        visit = Visit(
            at=self._service.now(),
            resolved=None if not resolved_key else resolved_key == "1",
            satisfaction=int(score_key) if score_key else None,
            comment_recording=comment,
        )
        if not await self._service.visited(job, visit):
            return Result.NOT_NEEDED
        if not session.hung_up:
            await session.stream_file(self._prompt("visit_thanks"))
        return Result.VISITED
