"""The seat's case desk: the units directory and desk codes (units/), the knowledge base
(knowledge/), the cases (cases/) checked against both, the seat socket's events, and the
rule that a disposition needing a case waits for one."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from cases.routes import CaseDesk
from cases.seat_events import SeatEventHub
from cases.service import CaseService
from cases.store import CaseStore
from common.clock import Clock
from hotline.case_lookups import DirectoryReferences, DirectoryUnits, KnowledgeEntries
from hotline.config import Config
from hotline.wiring.calls import CallParts
from hotline.wiring.messages import MessageParts
from ivr.dialplan.registry import DialplanRegistry
from knowledge.service import KnowledgeService
from knowledge.uses import RedisUseStore
from telephony.dialplan_names import PROVINCE_PLATFORM
from units.registry import DeskRegistry
from web.auth import TokenRegistry

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CaseDeskParts:
    desk: DeskRegistry  # units directory and desk codes (units/)
    knowledge: KnowledgeService
    cases: CaseService
    seat_events: SeatEventHub
    routes: CaseDesk  # what cases/routes.py serves
    guard: DispositionGuard


class DispositionGuard:
    """A disposition that needs the call's case (``requires_case`` in the desk codes) before
    the seat registered or linked one is refused, so every such call has its case."""

    def __init__(self, desk: DeskRegistry, calls: CallParts, cases: CaseService) -> None:
        self._desk = desk
        self._calls = calls
        self._cases = cases

    async def refusal(self, platform: str, call_id: str, code: str) -> str:
        disposition = self._desk.codes.disposition(platform, code)
        if disposition is None or not disposition.requires_case:
            return ""
        try:
            record = self._calls.tracker.get_live(call_id) or await self._calls.store.get(call_id)
            if record is not None and await self._cases.case_of(record):
                return ""
        except Exception as exc:  # Redis away: the seat is not held in wrap-up by a check it cannot make
            log.warning("seat.disposition_case_unchecked", call_id=call_id, code=code, error=str(exc))
            return ""
        return f"disposition {code!r} needs the call's case: register it or link the call to an open case first"


def build_case_desk(
    config: Config,
    clock: Clock,
    *,
    tokens: TokenRegistry,
    calls: CallParts,
    messages: MessageParts,
    dialplans: DialplanRegistry,
) -> CaseDeskParts:
    platform = config.platform.id
    desk = DeskRegistry(config.units.dir)
    # the province's seats see every platform's entries; a prefecture's, its own and the province's
    knowledge = KnowledgeService(
        config.knowledge.dir,
        platform,
        RedisUseStore(calls.redis, config.redis.op_timeout_ms / 1000),
        load_platforms=None if config.platform.province else {platform, PROVINCE_PLATFORM},
        clock=clock,
        timezone=config.platform.timezone,
        references=DirectoryReferences(desk),  # entries name units and matter types it knows
    )
    cases = CaseService(
        store=CaseStore(calls.redis, messages.tickets, lambda _platform: dialplans.current.calendar, calls.caller_keys),
        live=calls.tracker,
        stored=calls.store,
        units=DirectoryUnits(desk),
        knowledge=KnowledgeEntries(knowledge),
        events=calls.events,
        clock=clock,
    )
    seat_events = SeatEventHub(calls.events, cases)
    return CaseDeskParts(
        desk=desk,
        knowledge=knowledge,
        cases=cases,
        seat_events=seat_events,
        routes=CaseDesk(cases, seat_events, tokens, frozenset(seat.id for seat in config.seats)),
        guard=DispositionGuard(desk, calls, cases),
    )
