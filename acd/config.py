"""config.yaml's seats and call distribution (acd) sections."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from common.config_model import ConfigModel
from telephony.values import SeatId, SeatName, Secret, SipUri

# a seat's fixed contact: sip:[user@]host[:port] (its shape is checked by SipUri; this reads the address)
_CONTACT_ADDRESS = re.compile(r"sips?:(?:[^@;?\s]+@)?(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?")


class SeatConfig(ConfigModel):
    """A seat: a softphone that registers (with ``secret``) or sits at a fixed ``contact``; with
    ``phone: browser`` the seat desk page is the phone (WebRTC over Asterisk's WSS; needs ``secret``)."""

    # 3-6 digits: never equal to a caller's number (7+ digits), which matters for SIP identification
    id: SeatId
    name: SeatName = ""
    secret: Secret | None = Field(default=None, repr=False)
    contact: SipUri | None = None
    skills: tuple[str, ...] = ()
    queues: tuple[str, ...] = ("general",)
    phone: Literal["sip", "browser"] = "sip"

    @model_validator(mode="after")
    def _reachable(self) -> SeatConfig:
        if self.phone == "browser" and (self.secret is None or self.contact is not None):
            raise ValueError("a browser phone registers from the seat desk: give it a secret and no contact")
        if self.secret is None and self.contact is None:
            raise ValueError("a seat needs a secret (to register) or a fixed contact")
        if self.contact is not None and self.contact_address is None:
            raise ValueError("contact must be sip:[user@]host[:port] (port 1-65535)")
        return self

    @property
    def contact_address(self) -> tuple[str, int] | None:
        """(host, port) of the fixed contact (port 5060 when it names none); None without one.
        A seat with no secret is known by this address alone (telephony/asterisk_conf.py)."""
        match = _CONTACT_ADDRESS.fullmatch(self.contact or "")
        if match is None:
            return None
        port = int(match.group("port") or 5060)
        return (match.group("host"), port) if 0 < port < 65536 else None


class AcdConfig(ConfigModel):
    """Call distribution settings."""

    strategy: Literal["longest_idle", "fewest_calls", "round_robin", "ring_all"] = "longest_idle"
    ring_timeout_s: Annotated[float, Field(gt=0, le=120)] = 15.0  # one offer rings this long
    max_missed_offers: Annotated[int, Field(ge=1, le=10)] = 2  # then the seat is set not ready
    wrapup_s: Annotated[float, Field(ge=0, le=600)] = 5.0  # after-call work before the next offer
    # wrap-up lasts until the seat gives a disposition (POST /api/v1/seats/{id}/disposition) …
    require_disposition: bool = False
    # … or this long: then the seat is set not ready ("no disposition") until it gives one
    max_wrapup_s: Annotated[float, Field(gt=0, le=7200)] = 300.0
    relax_skills_after_s: Annotated[float, Field(gt=0, le=3600)] = 60.0  # then any seat of the queue
    announce_every_s: Annotated[int, Field(ge=0, le=600)] = 30  # position/wait announcements; 0 = none
    auto_login: tuple[str, ...] = ()  # seat ids logged in (ready) when the controller starts
    fallback_wait_s: Annotated[int, Field(ge=0, le=600)] = 60  # controller down: ring seats this long
    # an idle seat is offered the next missed caller to call back while no inbound caller waits (dialback/)
    blended_callbacks: bool = False
