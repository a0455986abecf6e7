"""The multi-platform side of the API, for the running controller: a seat's transfers and
consultations, hand-off records, the destinations a seat may use, the province-wide view
(hotline/api_network.py is the HTTP side)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from calls.handoff import Handoff, RedisHandoffs
from calls.tracker import CallTracker
from hotline.platforms import list_platforms
from ivr.consult import Consultations
from ivr.dialplan.schema import TransferMode
from ivr.transfer import SeatTransfers, TransferStarted
from telephony.links import LinkState


class NetworkDesk:
    """Implements hotline.api_network.NetworkBackend."""

    def __init__(
        self,
        *,
        transfers: SeatTransfers,
        consultations: Consultations,
        tracker: CallTracker,
        handoffs: RedisHandoffs,
        client: aioredis.Redis,
        trunks: frozenset[str],
        clock: Callable[[], datetime],
    ) -> None:
        self._transfers = transfers
        self._consultations = consultations
        self._tracker = tracker
        self._handoffs = handoffs
        self._redis = client
        self._trunks = trunks
        self._clock = clock

    async def transfer_call(self, call_id: str, to: str, seat: str, note: str, mode: TransferMode) -> TransferStarted:
        return await self._transfers.transfer(call_id, to, seat, note, mode)

    async def finish_consultation(self, call_id: str, action: str) -> None:
        finish = {
            "complete": self._consultations.complete,
            "cancel": self._consultations.cancel,
            "three_way": self._consultations.three_way,
        }[action]
        await finish(call_id)

    async def consultation(self, call_id: str) -> dict[str, str] | None:
        return self._consultations.view(call_id)

    async def destinations(self) -> list[dict[str, Any]]:
        found = []
        for key, d in self._transfers.destinations().items():
            reason = None
            if d.trunk not in self._trunks:  # a trunk config.yaml lacks: refused at once
                reason = f"no trunk {d.trunk!r} in config.yaml (sip.trunks): a transfer there is refused"
            elif await self._transfers.link_state(d.trunk) is LinkState.DOWN:  # qualify: no answer
                reason = f"the link {d.trunk!r} does not answer: a transfer there is refused"
            found.append(
                {
                    "to": key,
                    "name": d.name,
                    "kind": str(d.kind),
                    "number": d.number,
                    "modes": [str(m) for m in d.modes],
                    "available": reason is None,
                    "unavailable_reason": reason,
                }
            )
        return found

    async def seat_of_call(self, call_id: str) -> str | None:
        record = self._tracker.get_live(call_id)
        return record.seat if record is not None and record.seat else None

    async def handoff(self, token: str) -> Handoff | None:
        return await self._handoffs.get(token)

    async def platforms(self) -> list[dict[str, Any]]:
        """The province-wide view; a platform this one has a trunk to also shows that link's
        state (``link``: up, down — its qualify probes go unanswered —, unknown)."""
        found = await list_platforms(self._redis, self._clock())
        links = await self._transfers.platform_links()
        return [
            entry | ({"link": str(links[entry["platform"]])} if entry["platform"] in links else {}) for entry in found
        ]
