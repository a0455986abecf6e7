"""The ACD's seats' calls as the monitor sees them (monitor/service.py's ``SeatCalls``): the
seat's channel of a call comes from the ACD's own offers, never from a request."""

from __future__ import annotations

import redis.asyncio as aioredis

from acd.engine import AcdEngine
from acd.seat import SeatState
from acd.seats import SeatService
from hotline.config import Config
from monitor.service import AuditSink, MonitorService, MonitorSettings, SeatCall
from monitor.store import RedisMonitorStore
from telephony.ami_types import AmiLink

# a supervisor's phone the ACD might ring, or that is on a call, is not rung for a monitor
_BUSY = frozenset({SeatState.READY, SeatState.RINGING, SeatState.ON_CALL})


class AcdSeatCalls:
    def __init__(self, acd: AcdEngine, seats: SeatService) -> None:
        self._acd = acd
        self._seats = seats

    def seat_call(self, call_id: str) -> SeatCall | None:
        """The seat talking with ``call_id``'s caller now (its offer bound to it, in the bridge)."""
        for offer in self._acd.offers():
            if offer.bound == call_id and offer.bridged and offer.channel:
                return SeatCall(call_id, offer.seat_id, offer.channel)
        return None

    def phone_busy(self, seat_id: str) -> bool:
        if seat_id not in self._seats.config:
            return False
        return self._seats.get(seat_id).state in _BUSY or any(o.seat_id == seat_id for o in self._acd.offers())


def monitor_service(
    config: Config,
    ami: AmiLink,
    acd: AcdEngine,
    seats: SeatService,
    audit: AuditSink,
    *,
    redis: aioredis.Redis | None = None,
) -> MonitorService:
    """The controller's monitors (its AMI, its ACD's seats' calls, config.yaml's monitor section),
    kept in ``redis`` too when given (a restart takes them back)."""
    settings = MonitorSettings(frozenset(config.monitor.phones), config.monitor.ring_timeout_s, config.platform.id)
    store = RedisMonitorStore(redis, config.platform.id) if redis is not None else None
    return MonitorService(ami, AcdSeatCalls(acd, seats), settings, audit, store=store)
