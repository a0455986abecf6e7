"""The voicemail node: greeting, beep, message (silence, ``#``, max length or hang-up ends it),
optional review and re-record; the message is made durable and handed over before the
confirmation, and a message that cannot be kept is said to the caller."""

from __future__ import annotations

import asyncio
import re
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from calls.model import CallOutcome
from ivr.dialplan.schema import VoicemailNode
from telephony.agi_server import AgiCommandError, AgiHangup
from voicemail.intake import RecordedMessage, wav_duration_s
from voicemail.spool import set_aside, settle_recording

if TYPE_CHECKING:
    from ivr.interpreter import IvrRun

log = structlog.get_logger(__name__)

VOICEMAIL_DIR = "voicemail"
RECORDINGS_DIR = "recordings"
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


class MessageSink(Protocol):
    """Where a recorded message goes (voicemail/intake.py: sidecar, then the ASR job)."""

    async def message_recorded(self, message: RecordedMessage) -> None: ...

    def recording(self, recording: str) -> AbstractContextManager[None]:
        """Held while the message is recorded and described: the spool rescan leaves it alone."""
        ...


class SpoolGuard(Protocol):
    """Whether the spool can take a message now; counts messages it could not keep
    (voicemail/spool.py's SpoolMonitor)."""

    async def refusal(self) -> str: ...

    def message_failed(self, call_id: str, reason: str) -> None: ...


async def voicemail_step(run: IvrRun, node: VoicemailNode) -> str | None:
    """Greeting, beep, message (silence, ``#``, max length or hang-up ends it), optional
    review and re-record; the message is durable and handed over before the confirmation.
    A spool that cannot take it, or a recording that did not land, is said to the caller."""
    refusal = await run.ctx.spool.refusal() if run.ctx.spool is not None else ""
    if refusal:  # do not ask for a message we would lose
        return await _message_not_kept(run, node, refusal, None, hung_up=False)
    await run.session.stream_file(run.prompt_path(node.prompt))
    folder = run.ctx.spool_dir / VOICEMAIL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / _SAFE_ID.sub("_", run.call_id)
    wav = base.parent / f"{base.name}.wav"  # not with_suffix: call ids contain dots
    relative = f"{VOICEMAIL_DIR}/{wav.name}"
    with run.ctx.messages.recording(relative):  # no rescan takes it before its sidecar is written
        return await _record(run, node, base, wav, relative)


async def _record(run: IvrRun, node: VoicemailNode, base: Path, wav: Path, relative: str) -> str | None:
    await run.ctx.tracker.amend(run.call_id, {"recording": relative, "outcome": CallOutcome.VOICEMAIL})
    hung_up = False
    failure = ""
    try:
        for attempt in range(node.max_rerecords + 1):
            try:
                result = await run.session.record_file(str(base), node.max_s, node.silence_s)
            except AgiCommandError as exc:  # e.g. "(writefile)": the file could not be opened
                failure = f"Asterisk could not record: {exc}"
                break
            failure = await asyncio.to_thread(settle_recording, wav, result.samples, result.ended_by)
            log.info("ivr.voicemail_recorded", ended_by=result.ended_by, samples=result.samples, attempt=attempt)
            hung_up = result.ended_by == "hangup"
            if failure or hung_up or not node.review_prompt or attempt == node.max_rerecords:
                break
            if await run.session.get_data(run.prompt_path(node.review_prompt), 5) != "2":
                break
    except AgiHangup:
        hung_up = True  # during the review: the message recorded so far stands
    if failure:
        return await _message_not_kept(run, node, failure, wav, hung_up=hung_up)
    duration = await asyncio.to_thread(wav_duration_s, wav)
    too_short = duration < node.min_s
    if too_short:
        await run.ctx.tracker.amend(run.call_id, {"tags": {"voicemail": "too_short"}})
    record = run.ctx.tracker.get_live(run.call_id)
    await run.ctx.messages.message_recorded(
        RecordedMessage(
            call_id=run.call_id,
            recording=relative,
            platform=run.plan.spec.platform,
            caller=record.caller if record else "",
            tags=dict(record.tags) if record else {},
            duration_s=duration,
            too_short=too_short,
            recorded_at=run.ctx.clock(),
        )
    )
    if hung_up:
        raise AgiHangup("caller hung up after leaving a message")
    if node.confirm_prompt:
        await run.session.stream_file(run.prompt_path(node.confirm_prompt))
    return node.next


async def _message_not_kept(
    run: IvrRun, node: VoicemailNode, reason: str, wav: Path | None, hung_up: bool
) -> str | None:
    """No message: the record says so (outcome ``voicemail_failed``: the callback list takes
    the caller), the caller hears the apology and goes on at ``failed`` (default ``next``)."""
    if run.ctx.spool is not None:
        run.ctx.spool.message_failed(run.call_id, reason)
    else:
        log.error("voicemail.not_kept", reason=reason)
    if wav is not None:  # what did land is no message: out of the rescan's way, kept for a person
        await asyncio.to_thread(set_aside, wav)
    await run.ctx.tracker.amend(
        run.call_id,
        {"recording": "", "outcome": CallOutcome.VOICEMAIL_FAILED, "tags": {"voicemail": "failed"}},
    )
    if hung_up:
        raise AgiHangup("caller hung up; the message could not be kept")
    prompt = run.prompt_path(node.failed_prompt) if node.failed_prompt else run.ctx.voicemail_failed_prompt
    if prompt:
        await run.session.stream_file(prompt)
    return node.failed or node.next
