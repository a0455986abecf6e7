"""The ACD's FastAGI scripts: a seat answered an offer, a waiting caller's announcement, and a
seat's feature codes (*21 login, *22 logout, *23[reason] pause, *24 ready)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import structlog

from acd.engine import AcdEngine
from acd.seat import IllegalSeatTransition
from acd.seats import SeatService, UnknownSeat
from telephony.agi_server import AgiSession
from telephony.dialplan_names import CALLER_VARIABLE, DIAL_VARIABLE, OFFER_VARIABLE, RECORDING_VARIABLE

log = structlog.get_logger(__name__)

COUNT_WORDS = ("零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十")
MAX_SPOKEN_COUNT = len(COUNT_WORDS) - 1  # above it: "more than ten"
MANY = "十多"
_REASON_CODE = re.compile(r"[0-9]{1,4}")  # *23NN: the dialplan lets only digits through, we check again


class UnknownReason(ValueError):
    """A pause reason code that is not a short run of digits."""


def count_prompt(name: str, n: int) -> str:
    """The prompt that says ``n`` (1…10, or 'many' above): queue_ahead_3, queue_wait_many."""
    return f"{name}_{n}" if n <= MAX_SPOKEN_COUNT else f"{name}_many"


def count_prompt_texts(name: str, template: str) -> dict[str, str]:
    """Every prompt ``count_prompt`` can name, for the prompt builder."""
    texts = {f"{name}_{n}": template.format(n=COUNT_WORDS[n]) for n in range(1, MAX_SPOKEN_COUNT + 1)}
    texts[f"{name}_many"] = template.format(n=MANY)
    return texts


# chan_pjsip names its channels "PJSIP/<endpoint id>-<8 hex digits>" (ast_channel_alloc's "%08x")
_PJSIP_CHANNEL = re.compile(r"PJSIP/(.+)-[0-9a-f]{8}")


async def seat_endpoint(session: AgiSession) -> str:
    """The seat a channel belongs to (its PJSIP endpoint is the seat id): read from the channel's
    name in the AGI environment, or asked of Asterisk (a round trip) for any other name."""
    found = _PJSIP_CHANNEL.fullmatch(session.env.get("channel"))
    if found is not None:
        return found.group(1)
    return await session.get_variable("CHANNEL(endpoint)") or ""


async def set_bound(session: AgiSession, values: dict[str, str]) -> None:
    """Set the variables that name what the seat is bound to, in one round trip when they are
    plain (MSet), else one each. Empty ones are skipped: the offer context clears them just
    before the AGI (acd's hotline-offer: ``Set(NAME=)`` for each, on every attempt)."""
    values = {name: value for name, value in values.items() if value}
    if len(values) > 1:
        try:
            await session.set_variables(values)
            return
        except ValueError:  # not plain (a dial string with '@', a path with spaces): one by one
            pass
    for name, value in values.items():
        await session.set_variable(name, value)


class SeatAnswered:
    """``seat``: the seat's phone answered an offer; name the caller to bridge to."""

    def __init__(self, engine: AcdEngine) -> None:
        self._engine = engine

    async def __call__(self, session: AgiSession) -> None:
        offer_id = await session.get_variable(OFFER_VARIABLE) or ""
        seat_id = await seat_endpoint(session)
        with structlog.contextvars.bound_contextvars(seat=seat_id, offer=offer_id):
            binding = await self._engine.bind(offer_id, seat_id)
            if binding is None:
                return
            other = {DIAL_VARIABLE: binding.dial} if binding.dial else {CALLER_VARIABLE: binding.caller_channel}
            await set_bound(session, {RECORDING_VARIABLE: binding.recording, **other})


class CallbackDone:
    """``callback-done``: the seat's call to a caller who asked for a callback has ended."""

    def __init__(self, engine: AcdEngine) -> None:
        self._engine = engine

    async def __call__(self, session: AgiSession) -> None:
        offer_id = await session.get_variable(OFFER_VARIABLE) or ""
        status = await session.get_variable("DIALSTATUS") or ""
        await self._engine.callback_finished(offer_id, status)


class QueueAnnouncement:
    """``announce``: tell a waiting caller their place and the expected wait (from now, so it
    is right after callers ahead have left)."""

    def __init__(self, engine: AcdEngine, prompts_dir: Path) -> None:
        self._engine = engine
        self._prompts = prompts_dir

    async def __call__(self, session: AgiSession) -> None:
        where = self._engine.position(session.env.get("uniqueid"))
        if where is None:
            return
        minutes = max(1, math.ceil(where.expected_wait_s / 60))
        log.info("acd.announcement", position=where.position, expected_wait_min=minutes)
        if where.position == 1:
            await session.stream_file(str(self._prompts / "queue_next"))
        else:
            await session.stream_file(str(self._prompts / count_prompt("queue_ahead", where.position - 1)))
        await session.stream_file(str(self._prompts / count_prompt("queue_wait", minutes)))


class SeatFeature:
    """``feature?action=…``: a seat changes its own state from its phone."""

    def __init__(self, seats: SeatService, prompts_dir: Path) -> None:
        self._seats = seats
        self._prompts = prompts_dir

    async def __call__(self, session: AgiSession) -> None:
        action = session.env.arguments.get("action", "")
        seat_id = await seat_endpoint(session)
        ok = True
        try:
            if action == "login":
                await self._seats.login(seat_id)
            elif action == "logout":
                await self._seats.logout(seat_id)
            elif action == "pause":
                reason = session.env.arguments.get("reason", "")
                if reason and not _REASON_CODE.fullmatch(reason):
                    raise UnknownReason(f"reason code {reason[:20]!r} is not 1-4 digits")
                await self._seats.pause(seat_id, f"code {reason}" if reason else "not ready")
            elif action == "ready":
                await self._seats.ready(seat_id)
            else:
                ok = False
        except (UnknownSeat, IllegalSeatTransition, UnknownReason) as exc:
            log.info("acd.feature_refused", seat=seat_id, action=action, error=str(exc))
            ok = False
        log.info("acd.feature", seat=seat_id, action=action, ok=ok)
        await session.answer()
        await session.stream_file(str(self._prompts / ("feature_ok" if ok else "feature_failed")))
        await session.hangup()
