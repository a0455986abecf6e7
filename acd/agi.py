"""The ACD's FastAGI scripts: a seat answered an offer, a waiting caller's announcement, and a
seat's feature codes (*21 login, *22 logout, *23[reason] pause, *24 ready)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Protocol

import structlog

from acd.engine import AcdEngine
from acd.model import Binding, QueuePosition
from acd.seat import IllegalSeatTransition
from acd.seats import SeatService, UnknownSeat
from telephony.agi_protocol import AgiEnvironment
from telephony.agi_server import AgiSession
from telephony.dialplan_names import AFTER_SEAT_VARIABLE, CALLER_VARIABLE, DIAL_VARIABLE, RECORDING_VARIABLE

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


async def seat_endpoint(session: AgiSession) -> str:
    """The seat a channel belongs to (its PJSIP endpoint is the seat id)."""
    return await session.get_variable("CHANNEL(endpoint)") or ""


def offer_of(session: AgiSession) -> str:
    """The offer a seat's channel answered: the channel's uniqueid, which the Originate set to the
    offer's id (ChannelId; no channel variable, no Getvar)."""
    return session.env.get("uniqueid")


class OfferBinder(Protocol):
    """What the seat scripts ask of the ACD (acd/engine.py AcdEngine)."""

    async def bind(self, offer_id: str, seat_id: str) -> Binding | None: ...


class AfterSeat(Protocol):
    """Whether anything may run after this seat for this caller (ivr/after_seat.py: the
    dialplan's after_seat entry, or a browser phone whose loss requeues the caller)."""

    def needed(self, call_id: str, seat_id: str) -> bool: ...


class SeatAnswered:
    """``seat``: the seat's phone answered an offer; name the caller to bridge to. The dialplan
    passes the seat (its endpoint) as the first argument: one Getvar fewer; a dialplan rendered
    before it did is asked. Asterisk round trips are Asterisk's CPU: the answers go in one
    (MSet) when they are plain, and an empty recording is not set (the dialplan clears it).
    When nothing can run after this seat for this caller (``after_seat``), the answers say so
    (HOTLINE_AFTER_SEAT=0): if the seat hangs up first, Asterisk ends the call without an
    after-seat FastAGI session."""

    def __init__(self, engine: OfferBinder, after_seat: AfterSeat | None = None) -> None:
        self._engine = engine
        self._after_seat = after_seat

    async def __call__(self, session: AgiSession) -> None:
        offer_id = offer_of(session)
        seat_id = session.env.arguments.get("arg1") or await seat_endpoint(session)
        with structlog.contextvars.bound_contextvars(seat=seat_id, offer=offer_id):
            binding = await self._engine.bind(offer_id, seat_id)
            if binding is None:
                return
            answers = {DIAL_VARIABLE: binding.dial} if binding.dial else {CALLER_VARIABLE: binding.caller_channel}
            if binding.recording:
                answers[RECORDING_VARIABLE] = binding.recording
            after = self._after_seat
            if not binding.dial and after is not None and not after.needed(binding.call_id, seat_id):
                answers[AFTER_SEAT_VARIABLE] = "0"  # the caller is not sent to the after-seat AGI
            await session.set_variables(answers)  # one MSet when plain, else one each


class CallbackDone:
    """``callback-done``: the seat's call to a caller who asked for a callback has ended."""

    def __init__(self, engine: AcdEngine) -> None:
        self._engine = engine

    async def __call__(self, session: AgiSession) -> None:
        offer_id = offer_of(session)
        status = await session.get_variable("DIALSTATUS") or ""
        await self._engine.callback_finished(offer_id, status)


class QueuePositions(Protocol):
    """Where a waiting caller stands (acd/engine.py AcdEngine.position): None once it no longer
    waits (bound to a seat, or gone)."""

    def position(self, call_id: str) -> QueuePosition | None: ...


class PromptSession(Protocol):
    """What the announcement needs of a FastAGI session (telephony/agi_server.py AgiSession)."""

    @property
    def env(self) -> AgiEnvironment: ...

    async def stream_file(self, path: str, escape_digits: str = "") -> str: ...


class QueueAnnouncement:
    """``announce``: tell a waiting caller their place and the expected wait (from now, so it
    is right after callers ahead have left). A caller bound to a seat meanwhile (no longer
    waiting) hears no more: the seat waits for it to be back in its holding bridge
    (hotline-offer), and it gets there sooner."""

    def __init__(self, engine: QueuePositions, prompts_dir: Path) -> None:
        self._engine = engine
        self._prompts = prompts_dir

    async def __call__(self, session: PromptSession) -> None:
        where = self._engine.position(session.env.get("uniqueid"))
        if where is None:  # not waiting (any more)
            return
        minutes = max(1, math.ceil(where.expected_wait_s / 60))
        log.info("acd.announcement", position=where.position, expected_wait_min=minutes)
        if where.position == 1:
            await session.stream_file(str(self._prompts / "queue_next"))
        else:
            await session.stream_file(str(self._prompts / count_prompt("queue_ahead", where.position - 1)))
        call_id = session.env.get("uniqueid")
        if self._engine.position(call_id) is None:  # bound to a seat (or gone) during the first
            log.info("acd.announcement_cut", call_id=call_id)
            return
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
