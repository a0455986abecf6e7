"""The network of platforms: consultations, seat transfers to other platforms and numbers, and
the desk the HTTP layer drives them through."""

from __future__ import annotations

from dataclasses import dataclass

from common.clock import Clock
from hotline.asterisk_files import seat_transfer_key
from hotline.config import Config
from hotline.network_desk import NetworkDesk
from hotline.wiring.calls import CallParts
from hotline.wiring.ivr import platform_trunks
from ivr.consult import Consultations
from ivr.dialplan.registry import DialplanRegistry
from ivr.transfer import SeatTransfers
from telephony.links import TrunkLinks


@dataclass(frozen=True)
class NetworkParts:
    consultations: Consultations
    transfers: SeatTransfers
    desk: NetworkDesk


def build_network(config: Config, clock: Clock, calls: CallParts, dialplans: DialplanRegistry) -> NetworkParts:
    # each change of a transfer goes on the event bus: the seat's desk is pushed it (no polls)
    consultations = Consultations(
        ami=calls.ami, tracker=calls.tracker, handoffs=calls.handoffs, events=calls.events, clock=clock,
        transfer_key=seat_transfer_key(config),
    )  # fmt: skip
    transfers = SeatTransfers(
        platform=config.platform.id,
        tracker=calls.tracker,
        dialplans=dialplans,
        ami=calls.ami,
        handoffs=calls.handoffs,
        platform_trunks=platform_trunks(config),
        trunks=frozenset(config.sip.trunks),
        availability=calls.directory,
        consultations=consultations,
        clock=clock,
        links=TrunkLinks(calls.ami),
        events=calls.events,
    )
    desk = NetworkDesk(
        transfers=transfers,
        consultations=consultations,
        tracker=calls.tracker,
        handoffs=calls.handoffs,
        client=calls.redis,
        trunks=frozenset(config.sip.trunks),
        clock=clock,
    )
    return NetworkParts(consultations=consultations, transfers=transfers, desk=desk)
