"""The FastAGI entry point for 12345 calls.

Today it greets the caller and releases the call; the YAML dialplan interpreter (issue 3)
replaces the fixed steps. What stays: the call record is opened, every step is on it, the
outcome is set, and HOTLINE_IVR_DONE tells the dialplan not to take the fallback route.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from calls.model import CallOutcome
from calls.tracker import CallTracker
from telephony.agi_server import AgiHangup, AgiSession
from telephony.asterisk_conf import IVR_DONE_VARIABLE

log = structlog.get_logger(__name__)


class IvrEntry:
    """Handles the ``ivr`` FastAGI script."""

    def __init__(self, tracker: CallTracker, prompts_dir: Path) -> None:
        self._tracker = tracker
        self._prompts_dir = prompts_dir

    def _prompt(self, name: str) -> str:
        return str(self._prompts_dir / name)

    async def __call__(self, session: AgiSession) -> None:
        env = session.env
        call_id = env.get("uniqueid")
        with structlog.contextvars.bound_contextvars(call_id=call_id, channel=env.get("channel")):
            await self._tracker.ivr_started(
                call_id,
                channel=env.get("channel"),
                caller=env.get("callerid"),
                caller_name=env.get("calleridname"),
                called=env.get("dnid"),
            )
            try:
                await self._greet_and_release(session, call_id)
            except AgiHangup:
                log.info("ivr.caller_hung_up")
                raise
            except Exception:
                await self._tracker.ivr_step(call_id, "error")
                raise

    async def _greet_and_release(self, session: AgiSession, call_id: str) -> None:
        await session.answer()
        await self._tracker.answered(call_id)
        for step in ("greeting", "goodbye"):
            await self._tracker.ivr_step(call_id, step)
            await session.stream_file(self._prompt(step))
        await self._tracker.set_outcome(call_id, CallOutcome.IVR_COMPLETED)
        await session.set_variable(IVR_DONE_VARIABLE, "1")
        log.info("ivr.completed")
