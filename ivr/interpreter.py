"""Runs one call through a dialplan graph over a FastAGI session.

One handler per node kind; each returns the next node id, or None when the call is released.
Every step, key, tag, survey answer and outcome goes on the call record as it happens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog

from acd.model import CALLBACK_PREFIX, QueuedCall
from calls.handoff import RedisHandoffs, token_hint
from calls.model import CallOutcome, CallRecord
from calls.redis_budget import RedisBudget
from calls.tracker import CallTracker
from ivr.dialplan.loader import Dialplan
from ivr.dialplan.schema import (
    CallbackNode,
    CallerListNode,
    CaseNumberNode,
    HangupNode,
    HoursNode,
    MenuNode,
    Node,
    PlayNode,
    QueueNode,
    SetNode,
    SurveyNode,
    TransferNode,
    VoicemailNode,
)
from ivr.hours import service_state
from ivr.routing import caller_list_step, queue_priority, queue_skills
from ivr.transfer import PlatformAvailability, create_handoff
from ivr.voicemail_node import RECORDINGS_DIR, VOICEMAIL_DIR, MessageSink, SpoolGuard, voicemail_step
from telephony import say_zh
from telephony.agi_server import AgiSession
from telephony.dialplan_names import (
    HANDOFF_VARIABLE,
    HOLD_VARIABLE,
    IVR_DONE_VARIABLE,
    MAX_WAIT_VARIABLE,
    OVERFLOW_VARIABLE,
    PREDIAL_CONTEXT,
)
from telephony.links import LinkState, link_state

log = structlog.get_logger(__name__)

# the spool folders are named in ivr/voicemail_node.py; the app shell finds them here
__all__ = ["RECORDINGS_DIR", "VOICEMAIL_DIR", "CallQueue", "IvrContext", "IvrRun"]

MAX_STEPS = 200  # a runaway graph (impossible after the checker) still ends
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")
_DIALLABLE = re.compile(r"\+?[0-9]{5,20}")  # goes into a dial string: digits only


class SurveyAnswers(Protocol):
    """Told of each survey answer once it is on the record (ivr/after_seat.py's SurveySink)."""

    async def survey_answered(self, record: CallRecord, score: int) -> None: ...


class CallQueue(Protocol):
    """Where the queue node hands callers (the ACD engine)."""

    async def enqueue(self, call: QueuedCall) -> None: ...

    def staffed(self, queue: str) -> bool: ...


@dataclass(frozen=True, kw_only=True)
class IvrContext:
    """What the interpreter needs besides the session: where things are, what time it is."""

    tracker: CallTracker
    prompts_dir: Path
    spool_dir: Path
    timezone: str
    clock: Callable[[], datetime]
    acd: CallQueue
    messages: MessageSink
    platform: str = ""  # this platform's id (hand-offs name it)
    handoffs: RedisHandoffs | None = None
    platform_trunks: Mapping[str, str] = field(default_factory=dict)  # trunk name → platform it reaches
    availability: PlatformAvailability | None = None
    spool: SpoolGuard | None = None  # None: no checks before recording (the file is still checked after)
    voicemail_failed_prompt: str = ""  # the system apology (prompts.voicemail_failed), path without extension
    budget: RedisBudget = field(default_factory=RedisBudget)  # how long a step may wait on Redis
    surveys: tuple[SurveyAnswers, ...] = ()  # told of every survey answer (metrics, the case)
    sounds_dir: Path | None = None  # the Mandarin sound set (telephony/say_zh.py); None: numbers are not read

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class IvrRun:
    """One call's walk through one dialplan version."""

    def __init__(self, session: AgiSession, plan: Dialplan, ctx: IvrContext, call_id: str) -> None:
        self.session = session
        self.plan = plan
        self.ctx = ctx
        self.call_id = call_id

    def prompt_path(self, name: str) -> str:
        return str(self.ctx.prompts_dir / name)

    async def run(self, start: str | None = None) -> None:
        """Walk from ``start`` (default: the plan's start node) until a node releases the call
        or hands it to the ACD."""
        tracker = self.ctx.tracker
        record = tracker.get_live(self.call_id)
        if record is not None and record.dialplan_version != self.plan.version:  # the entry named it already
            await tracker.amend(self.call_id, {"dialplan_version": self.plan.version})
        node_id: str | None = start or self.plan.spec.start
        for _ in range(MAX_STEPS):
            if node_id is None:
                return
            node = self.plan.node(node_id)
            await tracker.ivr_step(self.call_id, node_id)
            log.debug("ivr.node", node=node_id, kind=node.kind)
            with self.ctx.budget.step():  # its Redis reads share one budget; writes never wait
                node_id = await self._step(node_id, node)
        log.error("ivr.too_many_steps", dialplan=self.plan.source)
        await self.release()

    async def _step(self, node_id: str, node: Node) -> str | None:  # noqa: PLR0911 - one case per kind
        match node:
            case PlayNode():
                return await self._play(node)
            case MenuNode():
                return await self._menu(node_id, node)
            case HoursNode():
                return await self._hours(node)
            case QueueNode():
                return await self._queue(node)
            case TransferNode():
                return await self._transfer(node)
            case VoicemailNode():
                return await voicemail_step(self, node)
            case CallbackNode():
                return await self._callback(node_id, node)
            case SurveyNode():
                return await self._survey(node_id, node)
            case CaseNumberNode():
                return await self._case_number(node)
            case SetNode():
                return await self._set(node)
            case CallerListNode():
                return await caller_list_step(self, node_id, node)
            case HangupNode():
                await self._hangup(node)
                return None

    async def release(self) -> None:
        """Tell the dialplan we are done (no fallback route) and end the call."""
        await self.session.set_variable(IVR_DONE_VARIABLE, "1")
        await self.session.hangup()

    async def _play(self, node: PlayNode) -> str:
        for prompt in node.prompts:
            await self.session.stream_file(self.prompt_path(prompt))
        return node.next

    async def _menu(self, node_id: str, node: MenuNode) -> str:
        for attempt in range(node.retries + 1):
            key = await self.session.get_data(self.prompt_path(node.prompt), node.timeout_s)
            if key in node.options:
                await self.ctx.tracker.ivr_digit(self.call_id, node_id, key)
                return node.options[key]
            await self.ctx.tracker.ivr_digit(self.call_id, node_id, key or "timeout")
            log.info("ivr.menu_retry", node=node_id, key=key or "timeout", attempt=attempt + 1)
            retry_prompt = node.invalid_prompt if key else node.timeout_prompt
            if retry_prompt and attempt < node.retries:
                await self.session.stream_file(self.prompt_path(retry_prompt))
        return node.default

    async def _hours(self, node: HoursNode) -> str:
        local_now = self.ctx.clock().astimezone(self.ctx.zone)
        state = service_state(self.plan.spec.hours, self.plan.calendar, local_now)
        tags = {"service": "open" if state.open else "closed", "day_type": state.day.day_type.value}
        if state.calendar_missing:
            log.error("ivr.calendar_missing", error=state.calendar_missing, dialplan=self.plan.source)
            tags["calendar"] = "missing"
        await self.ctx.tracker.amend(self.call_id, {"tags": tags})
        if not state.open:
            return node.closed
        if state.day.day_type.value == "holiday" and node.holiday:
            return node.holiday
        return node.open

    async def _queue(self, node: QueueNode) -> str | None:
        """Hand the caller to the ACD: Asterisk holds the call (music, max wait), a seat that
        answers is bridged to it; after max wait the call comes back at ``node.next``."""
        record = self.ctx.tracker.get_live(self.call_id)
        called = record.tags if record else {}
        skills, priority = queue_skills(node, called), queue_priority(node, called)  # set nodes, caller lists
        tags = {"priority": str(priority)}
        if skills:
            tags["skills"] = ",".join(skills)
        now = self.ctx.clock()
        await self.ctx.tracker.amend(self.call_id, {"queue": node.queue, "queued_at": now, "tags": tags})
        if not self.ctx.acd.staffed(node.queue):
            await self.ctx.tracker.amend(self.call_id, {"tags": {"queue_status": "joinempty"}})
            log.info("ivr.queue_unstaffed", queue=node.queue)
            return node.next
        await self.session.set_variables(
            {MAX_WAIT_VARIABLE: str(int(node.max_wait_s)), OVERFLOW_VARIABLE: node.next, HOLD_VARIABLE: "1"}
        )  # one round trip (node ids are plain: the dialplan checker)
        await self.ctx.acd.enqueue(
            QueuedCall(
                call_id=self.call_id,
                channel=self.session.env.get("channel"),
                queue=node.queue,
                skills=skills,
                priority=priority,
                entered_at=now.timestamp(),
                caller=record.caller if record else "",
                max_wait_s=node.max_wait_s,
            )
        )
        return None  # the FastAGI session ends; the dialplan takes the caller to the hold context

    async def _link_down(self, trunk: str) -> bool:
        """Whether Asterisk knows the link (a trunk to another platform, qualified) is down."""
        state = await self.session.get_variable(f"DEVICE_STATE(PJSIP/{trunk})")
        return link_state(state or "") is LinkState.DOWN

    async def _transfer(self, node: TransferNode) -> str | None:
        destination = self.plan.destinations[node.to]
        await self.ctx.tracker.amend(
            self.call_id,
            {"transfer_to": f"{node.to}:{destination.number}", "tags": {"transfer_kind": str(destination.kind)}},
        )
        target = self.ctx.platform_trunks.get(destination.trunk)
        if target and await self._link_down(destination.trunk):
            await self.ctx.tracker.amend(self.call_id, {"tags": {"transfer_status": "link_down"}})
            log.info("ivr.transfer_skipped", destination=node.to, reason=f"the link to {target} is down")
            return node.next  # at once, not after the ring timeout: the caller stays on this platform
        if target and self.ctx.availability and await self.ctx.availability.has_free_seat(target) is False:
            await self.ctx.tracker.amend(self.call_id, {"tags": {"transfer_status": "no_free_seat"}})
            log.info("ivr.transfer_skipped", destination=node.to, reason=f"{target} has no free seat")
            return node.next  # the caller stays here (queue, voicemail or callback per the dialplan)
        options = ""
        token = await self.hand_off(node.to, destination.trunk)
        if token:
            options = f",b({PREDIAL_CONTEXT}^s^1)"  # puts the token in a SIP header on the new leg
        await self.session.exec_app(
            "Dial", f"PJSIP/{destination.number}@{destination.trunk},{int(node.ring_timeout_s)}{options}"
        )
        status = await self.session.get_variable("DIALSTATUS") or "unknown"
        if status == "ANSWER":
            await self.ctx.tracker.amend(self.call_id, {"outcome": CallOutcome.TRANSFERRED})
            await self.release()
            return None
        await self.ctx.tracker.amend(self.call_id, {"tags": {"transfer_status": status.lower()}})
        if token and self.ctx.handoffs is not None:
            self.ctx.handoffs.settle_later(token)  # the case stays here, with this call
        log.warning("ivr.transfer_failed", destination=node.to, status=status)
        return node.next

    async def hand_off(self, to: str, trunk: str, seat: str = "", note: str = "") -> str:
        """A transfer to another 12345 platform carries the case: write the hand-off record and
        put its token on the channel (inherited by the outgoing leg). Returns the token, or ""
        when the trunk does not lead to a platform."""
        if self.ctx.handoffs is None or trunk not in self.ctx.platform_trunks:
            return ""
        handoff = await create_handoff(
            self.ctx.handoffs,
            platform=self.plan.spec.platform,
            record=self.ctx.tracker.get_live(self.call_id),
            call_id=self.call_id,
            to=to,
            at=self.ctx.clock(),
            seat=seat,
            note=note,
        )
        await self.session.set_variable(f"_{HANDOFF_VARIABLE}", handoff.token)
        await self.ctx.tracker.amend(self.call_id, {"tags": {"handoff": handoff.token}})
        log.info("ivr.handoff", to=to, token=token_hint(handoff.token))
        return handoff.token

    async def _callback(self, node_id: str, node: CallbackNode) -> str | None:
        """Offer to call back, keeping the caller's place in the queue (their ``queued_at``); on
        the key, the ACD holds a callback entry and the caller may hang up."""
        record = self.ctx.tracker.get_live(self.call_id)
        if record is None or not _DIALLABLE.fullmatch(record.caller):
            log.info("ivr.callback_impossible", reason="no number to call back")
            return node.next  # anonymous or odd caller id: nobody to call back
        key = await self.session.get_data(self.prompt_path(node.prompt), node.timeout_s)
        await self.ctx.tracker.ivr_digit(self.call_id, node_id, key or "timeout")
        if key != node.key:
            return node.next
        skills = record.tags.get("skills", "")
        await self.ctx.acd.enqueue(
            QueuedCall(
                call_id=f"{CALLBACK_PREFIX}{self.call_id}",
                channel="",
                queue=record.queue or "general",
                skills=tuple(s for s in skills.split(",") if s),
                priority=int(record.tags.get("priority", "0") or 0),
                entered_at=(record.queued_at or self.ctx.clock()).timestamp(),
                caller=record.caller,
                callback_trunk=node.trunk,
                origin_call_id=self.call_id,
            )
        )
        await self.ctx.tracker.amend(self.call_id, {"outcome": CallOutcome.CALLBACK, "tags": {"callback": "waiting"}})
        if node.confirm_prompt:
            await self.session.stream_file(self.prompt_path(node.confirm_prompt))
        await self.release()
        return None

    async def _survey(self, node_id: str, node: SurveyNode) -> str:
        key = await self.session.get_data(self.prompt_path(node.prompt), node.timeout_s)
        await self.ctx.tracker.ivr_digit(self.call_id, node_id, key or "timeout")
        if key.isdigit() and 1 <= int(key) <= node.scale:
            await self.ctx.tracker.amend(self.call_id, {"survey_score": int(key)})
            await self._survey_answered(int(key))
            if node.thanks_prompt:
                await self.session.stream_file(self.prompt_path(node.thanks_prompt))
        return node.next

    async def _survey_answered(self, score: int) -> None:
        record = self.ctx.tracker.get_live(self.call_id)
        if record is None:
            return
        for sink in self.ctx.surveys:
            try:
                await sink.survey_answered(record, score)
            except Exception:  # a sink (the case store) failing never costs the caller the call
                log.exception("ivr.survey_sink_failed", sink=type(sink).__name__)

    async def _case_number(self, node: CaseNumberNode) -> str:
        """The case number as the record has it now (a seat may have registered it a moment
        ago); letters and digits only reach Asterisk. No case: nothing to read."""
        record = self.ctx.tracker.get_live(self.call_id)
        spoken = "".join(ch for ch in (record.case_id if record else "") if ch.isascii() and ch.isalnum())
        if not say_zh.SPELLABLE.fullmatch(spoken):
            log.info("ivr.no_case_number", has_case=bool(record and record.case_id))
            return node.next
        await self.session.stream_file(self.prompt_path(node.prompt))
        await say_zh.say(self.session, self.ctx.sounds_dir, say_zh.spell(spoken))  # in Mandarin, never en
        return node.next

    async def _set(self, node: SetNode) -> str:
        await self.ctx.tracker.amend(self.call_id, {"tags": {str(k): v for k, v in node.tags.items()}})
        return node.next

    async def _hangup(self, node: HangupNode) -> None:
        if node.prompt:
            await self.session.stream_file(self.prompt_path(node.prompt))
        record = self.ctx.tracker.get_live(self.call_id)
        if record is not None and record.outcome is None:
            await self.ctx.tracker.set_outcome(self.call_id, CallOutcome.IVR_COMPLETED)
        await self.release()
