"""Seats call missed callers back (dialback/): the service on the ACD and the callback list,
and its HTTP side with the case lookup."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from common.clock import Clock
from dialback.routes import DialbackDesk
from dialback.service import DialbackService
from hotline.config import Config
from hotline.wiring.acd import AcdParts
from hotline.wiring.calls import CallParts
from hotline.wiring.messages import MessageParts
from ivr.interpreter import RECORDINGS_DIR


@dataclass(frozen=True)
class DialbackParts:
    service: DialbackService
    routes: DialbackDesk


def build_dialback(
    config: Config,
    clock: Clock,
    calls: CallParts,
    acd: AcdParts,
    messages: MessageParts,
    *,
    service_level: Callable[[], float | None] = lambda: None,
) -> DialbackParts:
    service = DialbackService(
        config=config.dialback,
        blended=config.acd.blended_callbacks,
        seat_ring_s=config.acd.ring_timeout_s,
        ami=calls.ami,  # its handlers after the call records' and the ACD's (built after both)
        acd=acd.engine,
        seats=acd.seats,
        tracker=calls.tracker,
        entries=calls.callback_list,
        events=calls.events,
        clock=clock,
        recordings_dir=config.paths.spool_dir / RECORDINGS_DIR if config.recordings.enabled else None,
        area_code=config.platform.area_code,
        trunk_ready=config.dialback.trunk in config.sip.trunks,
        service_level=service_level,  # inbound first: the last 15 min's 15 s service level
    )
    return DialbackParts(service=service, routes=DialbackDesk(service, messages.tickets))
