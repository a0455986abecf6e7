"""The FastAGI entry point for 12345 calls: open the call record, run the platform's dialplan."""

from __future__ import annotations

import structlog

from calls.tracker import CallTracker
from ivr.dialplan.registry import DialplanRegistry
from ivr.interpreter import IvrContext, IvrRun
from telephony.agi_server import AgiHangup, AgiSession

log = structlog.get_logger(__name__)


class IvrEntry:
    """Handles the ``ivr`` FastAGI script."""

    def __init__(self, tracker: CallTracker, dialplans: DialplanRegistry, context: IvrContext) -> None:
        self._tracker = tracker
        self._dialplans = dialplans
        self._context = context

    async def __call__(self, session: AgiSession) -> None:
        env = session.env
        call_id = env.get("uniqueid")
        plan = self._dialplans.current  # this call keeps this version, whatever reloads happen
        with structlog.contextvars.bound_contextvars(call_id=call_id, channel=env.get("channel")):
            await self._tracker.ivr_started(
                call_id,
                channel=env.get("channel"),
                caller=env.get("callerid"),
                caller_name=env.get("calleridname"),
                called=env.get("dnid"),
            )
            try:
                await session.answer()
                await self._tracker.answered(call_id)
                await IvrRun(session, plan, self._context, call_id).run()
            except AgiHangup:
                log.info("ivr.caller_hung_up")
                raise
            except Exception:
                # the dialplan's fallback route takes the call; the record says where it broke
                await self._tracker.ivr_step(call_id, "error")
                raise
