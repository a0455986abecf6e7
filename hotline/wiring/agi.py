"""The FastAGI side: which handler serves each AGI script the dialplan calls, and the server
(with its key, timeouts and the histogram of how long a channel waited on us)."""

from __future__ import annotations

from dataclasses import dataclass

from acd.agi import CallbackDone, QueueAnnouncement, SeatAnswered, SeatFeature
from calls.redis_budget import WAIT_BUCKETS_S
from common.metrics import Histogram
from hotline.config import Config
from hotline.wiring.acd import AcdParts
from hotline.wiring.calls import CallParts
from hotline.wiring.ivr import IvrParts
from ivr.after_seat import AfterSeatNeed, IvrAfterSeat
from ivr.dialplan.registry import DialplanRegistry
from ivr.entry import IvrEntry, IvrOverflow, IvrTransferFailed
from telephony.agi_server import AgiHandler, AgiServer
from telephony.dialplan_names import (
    AGI_AFTER_SEAT_SCRIPT,
    AGI_ANNOUNCE_SCRIPT,
    AGI_CALLBACK_DONE_SCRIPT,
    AGI_FEATURE_SCRIPT,
    AGI_IVR_SCRIPT,
    AGI_OVERFLOW_SCRIPT,
    AGI_SEAT_SCRIPT,
    AGI_TRANSFER_FAILED_SCRIPT,
    prompt_path,
)

# fine below the 5 ms an AGI step may add (docs/benchmarks.md, the IVR at 200 calls)
STEP_BUCKETS_S = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5)


@dataclass(frozen=True)
class AgiParts:
    server: AgiServer
    wait: Histogram  # hotline_agi_wait_seconds
    step: Histogram  # hotline_agi_step_seconds


def browser_seats(config: Config) -> list[str]:
    """The seats whose phone is the browser's (webphone/: its loss mid-call requeues the caller)."""
    return [seat.id for seat in config.seats if seat.phone == "browser"]


def agi_routes(
    config: Config, calls: CallParts, dialplans: DialplanRegistry, ivr: IvrParts, acd: AcdParts
) -> dict[str, AgiHandler]:
    """The handler of each AGI script (telephony/dialplan_names.py names them)."""
    tracker, context, engine = calls.tracker, ivr.context, acd.engine
    system_prompts = prompt_path(config.paths.runtime_dir, "any").parent
    return {
        AGI_IVR_SCRIPT: IvrEntry(tracker, dialplans, context),
        AGI_OVERFLOW_SCRIPT: IvrOverflow(tracker, dialplans, context, engine),
        AGI_SEAT_SCRIPT: SeatAnswered(engine, AfterSeatNeed(tracker, dialplans, browser_seats(config))),
        AGI_CALLBACK_DONE_SCRIPT: CallbackDone(engine),
        AGI_TRANSFER_FAILED_SCRIPT: IvrTransferFailed(tracker, dialplans, context, calls.events),
        AGI_AFTER_SEAT_SCRIPT: IvrAfterSeat(tracker, dialplans, context),
        AGI_ANNOUNCE_SCRIPT: QueueAnnouncement(engine, system_prompts),
        AGI_FEATURE_SCRIPT: SeatFeature(acd.seats, system_prompts),
    }


def build_agi(config: Config, agi_secret: str, routes: dict[str, AgiHandler]) -> AgiParts:
    wait = Histogram(
        "hotline_agi_wait_seconds",
        "How long a channel waited on the controller between AGI commands (dead air we caused)",
        WAIT_BUCKETS_S,
    )
    step = Histogram(
        "hotline_agi_step_seconds",
        "Controller time per AGI step: an AGI reply received to our next command sent",
        STEP_BUCKETS_S,
    )
    server = AgiServer(
        config.agi.host,
        config.agi.port,
        routes,
        header_timeout_s=config.agi.header_timeout_s,
        command_timeout_s=config.agi.command_timeout_s,
        on_gap=wait.observe,
        on_step=step.observe,
        secret=agi_secret,
    )
    return AgiParts(server=server, wait=wait, step=step)
