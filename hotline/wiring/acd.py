"""The ACD: the seats (their states, logins, wrap-up codes from the desk) and the engine that
offers waiting callers to them."""

from __future__ import annotations

from dataclasses import dataclass

from acd.engine import AcdEngine
from acd.seats import SeatService
from common.clock import Clock
from hotline.config import Config
from hotline.wiring.calls import CallParts
from hotline.wiring.case_desk import CaseDeskParts
from ivr.interpreter import RECORDINGS_DIR


@dataclass(frozen=True)
class AcdParts:
    seats: SeatService
    engine: AcdEngine


def build_acd(config: Config, clock: Clock, calls: CallParts, case_desk: CaseDeskParts) -> AcdParts:
    platform = config.platform.id
    desk = case_desk.desk
    seats = SeatService(
        config.seats,
        calls.redis,
        events=calls.events,
        clock=clock,
        platform=platform,
        max_missed=config.acd.max_missed_offers,
        budget=calls.budget,
        # the codes of the units directory (units/), read when a seat gives one
        dispositions=lambda platform, code: desk.codes.disposition(platform, code) is not None,
        pause_reasons=lambda platform, code: desk.codes.pause_reason(platform, code) is not None,
        disposition_guard=case_desk.guard.refusal,
    )
    engine = AcdEngine(
        config=config.acd,
        seats=seats,
        ami=calls.ami,
        client=calls.redis,
        tracker=calls.tracker,
        events=calls.events,
        clock=clock,
        recordings_dir=config.paths.spool_dir / RECORDINGS_DIR if config.recordings.enabled else None,
        platform=platform,
        missed_calls=calls.callback_list,
        budget=calls.budget,
    )
    return AcdParts(seats=seats, engine=engine)
