"""Whether a SIP link to another platform is up, as Asterisk knows it from qualify (SIP OPTIONS
every ``sip.trunks.<name>.qualify_s``): the trunk endpoint's device state. A link whose peer
stopped answering is UNAVAILABLE; a transfer to it is refused at once instead of ringing into the
SIP timers while the caller waits."""

from __future__ import annotations

import re
from enum import StrEnum

import structlog

from telephony.ami_types import AmiError, AmiLink

log = structlog.get_logger(__name__)

_TRUNK = re.compile(r"[a-z][a-z0-9_]{0,31}")  # telephony.values.TrunkName: goes into a function call


class LinkState(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"  # no qualify on that trunk, or Asterisk did not answer


def link_state(device_state: str) -> LinkState:
    """Asterisk's device state of a trunk endpoint → the link's state (pure)."""
    state = device_state.strip().upper()
    if state == "UNAVAILABLE":
        return LinkState.DOWN
    if state in ("NOT_INUSE", "INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"):
        return LinkState.UP
    return LinkState.UNKNOWN


class TrunkLinks:
    """Reads a trunk's link state from Asterisk (AMI ``Getvar`` of ``DEVICE_STATE``)."""

    def __init__(self, ami: AmiLink, timeout_s: float = 2.0) -> None:
        self._ami = ami
        self._timeout_s = timeout_s

    async def state(self, trunk: str) -> LinkState:
        if not _TRUNK.fullmatch(trunk):
            raise ValueError(f"not a trunk name: {trunk!r}")
        try:
            reply = await self._ami.send_action(
                {"Action": "Getvar", "Variable": f"DEVICE_STATE(PJSIP/{trunk})"}, timeout_s=self._timeout_s
            )
        except AmiError as exc:
            log.warning("link.state_unknown", trunk=trunk, error=str(exc))
            return LinkState.UNKNOWN
        return link_state(reply.response.get("value"))
