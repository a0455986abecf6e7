"""Wiring of seats' callbacks (dialback/) into the controller: what the service is given."""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.clock import Clock
from dialback.service import DialbackService
from ivr.interpreter import RECORDINGS_DIR

if TYPE_CHECKING:
    from hotline.controller import Controller


def wire_dialback(controller: Controller, clock: Clock) -> DialbackService:
    config = controller.config
    return DialbackService(
        config=config.dialback,
        blended=config.acd.blended_callbacks,
        seat_ring_s=config.acd.ring_timeout_s,
        ami=controller.ami,
        acd=controller.acd,
        seats=controller.seats,
        tracker=controller.tracker,
        entries=controller.callback_list,
        events=controller.events,
        clock=clock,
        recordings_dir=config.paths.spool_dir / RECORDINGS_DIR if config.recordings.enabled else None,
        area_code=config.platform.area_code,
        trunk_ready=config.dialback.trunk in config.sip.trunks,
    )
