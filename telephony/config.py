"""config.yaml's sections about Asterisk: the SIP trunks, how the controller reaches Asterisk
(AMI) and is reached by it (FastAGI), and how long a transfer rings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from common.config_model import ConfigModel, Port, PositiveSeconds
from telephony.values import AmiUser, AreaCode, Host, IpNetwork, IPv4, PlatformId, TrunkName

# a secret written into an Asterisk file or a URL: printable ASCII without space, ';' or '"'
_FILE_SAFE_KEY = r"^[!#-:<-~]{16,128}$"
_URL_SAFE_KEY = r"^[A-Za-z0-9_-]{16,128}$"
# the AMI secret earlier versions shipped: public, so never accepted
_SHIPPED_AMI_KEY = "hotline-demo-secret"
# a cut link to another platform is known within one period + qualify_timeout (half of it): ≤ 3 s,
# for one OPTIONS and its 200 per trunk per period (docs/operations.md, "Links between platforms")
PLATFORM_LINK_QUALIFY_S = 2
# a call bridged over a link to another platform whose far side has sent no RTP (not even the
# keepalive) this long is hung up on this side: a cut link or a far Asterisk gone
PLATFORM_LINK_RTP_TIMEOUT_S = 30


class OutboundTrunk(ConfigModel):
    """A SIP peer we send calls to (transfers: province, department hotlines, 110/119/120/122).

    A trunk to another 12345 platform names it (``platform``): transfers to it carry the case
    (a hand-off record); with ``area_code``, callers who dial ``<area code>12345`` here are sent
    there (属地接听: answered by their own prefecture)."""

    host: Host
    port: Port = 5060
    platform: PlatformId | None = None
    area_code: AreaCode | None = None
    # how often Asterisk asks the peer whether it is there (SIP OPTIONS, qualify): a link whose
    # peer stops answering is known down, so transfers and area routing to it fail at once
    # instead of ringing into the SIP timers. None: every 2 s on a link to another platform
    # (a 12345 Asterisk answers OPTIONS), never on other trunks; 0: never
    qualify_s: Annotated[int, Field(ge=0, le=3600)] | None = None
    # a call bridged over this trunk whose far side sends no RTP this long is hung up here (its
    # legs and records end on each side, not half-connected until the session timers). Each side
    # sends a comfort-noise keepalive every rtp_keepalive_s while its own party is silent, so a
    # silent party is not a cut. None: 30 s on a link to another platform (both ends are ours and
    # send keepalives), never on other trunks (a carrier may send nothing in silence); 0: never
    rtp_timeout_s: Annotated[int, Field(ge=0, le=3600)] | None = None

    @property
    def qualify_every_s(self) -> int:
        """Seconds between qualify probes (0: none)."""
        if self.qualify_s is not None:
            return self.qualify_s
        return PLATFORM_LINK_QUALIFY_S if self.platform else 0

    @property
    def rtp_timeout_every_s(self) -> int:
        """Seconds without RTP from the far side before a bridged call is hung up (0: never)."""
        if self.rtp_timeout_s is not None:
            return self.rtp_timeout_s
        return PLATFORM_LINK_RTP_TIMEOUT_S if self.platform else 0

    @property
    def rtp_keepalive_s(self) -> int:
        """Seconds between keepalives: several fit in the far side's timeout (a lost one is no cut)."""
        return max(1, min(5, self.rtp_timeout_every_s // 4))

    @field_validator("rtp_timeout_s")
    @classmethod
    def _room_for_keepalives(cls, value: int | None) -> int | None:
        if value is not None and 0 < value < 4:
            raise ValueError("0 (never) or at least 4 s: keepalives every second must fit in it several times")
        return value

    @model_validator(mode="after")
    def _area_needs_platform(self) -> OutboundTrunk:
        if self.area_code and not self.platform:
            raise ValueError("a trunk with an area_code leads to a platform: give its platform id too")
        return self


class SipConfig(ConfigModel):
    """The carrier trunk that delivers 12345 calls, outbound trunks, and the RTP range."""

    bind_host: IPv4 = "127.0.0.1"
    port: Port = 5060
    trunk_peers: tuple[IpNetwork, ...] = ("127.0.0.1/32",)
    trunks: dict[TrunkName, OutboundTrunk] = Field(default_factory=dict)
    # where the SIP softphones of seats with a password (phone: sip) may register and call from;
    # rendered as each such endpoint's ACL (deny all, permit these): every request from elsewhere,
    # whatever the transport (e.g. the browsers' WSS), gets 403 before any password is asked.
    # Empty: from anywhere (as before). PJSIP does not tie an endpoint to a transport.
    seat_networks: tuple[IpNetwork, ...] = ()
    # a carrier that delivers every call as plain 12345 may say the caller's area in a header
    # (属地接听 without <area code>12345); "" ignores headers
    area_header: str = Field(default="X-Hotline-Area", pattern=r"^([A-Za-z][A-Za-z0-9-]{0,63})?$")
    rtp_port_min: Port = 10000
    rtp_port_max: Port = 14999

    @model_validator(mode="after")
    def _rtp_range(self) -> SipConfig:
        if self.rtp_port_max <= self.rtp_port_min:
            raise ValueError("rtp_port_max must be greater than rtp_port_min")
        return self


class AsteriskConfig(ConfigModel):
    """How the controller reaches Asterisk (AMI) and how a managed Asterisk is run."""

    root: Path | None = Field(
        default=None,
        description="Unpacked Asterisk root from scripts/provision-asterisk.sh; None = the cache",
    )
    ami_host: Host = "127.0.0.1"
    ami_port: Port = 5038
    ami_username: AmiUser = "hotline"
    # None: generated at first start and kept in <runtime_dir>/ami-secret (0600)
    ami_secret: str | None = Field(default=None, pattern=_FILE_SAFE_KEY, repr=False)
    ami_action_timeout_s: PositiveSeconds = 5.0
    ami_ping_interval_s: PositiveSeconds = 5.0
    ami_ping_timeout_s: PositiveSeconds = 3.0
    ami_reconnect_initial_s: PositiveSeconds = 0.2
    ami_reconnect_max_s: PositiveSeconds = 5.0
    # events waiting for the controller's handlers; beyond it newer ones are dropped (counted)
    # and the state is resynced from Asterisk once the handlers catch up
    ami_event_backlog_max: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000
    # Asterisk's verbosity (asterisk.conf, followed by messages.log): 3 logs every dialplan step
    # and every prompt played, with their arguments (callers' and dialled numbers), each a
    # formatted line and a file write per step; 1 logs only the rare notices. Raise it on a
    # running Asterisk with `core set verbose 3` (messages.log follows) to trace calls.
    verbose: Annotated[int, Field(ge=0, le=5)] = 1

    @field_validator("ami_secret")
    @classmethod
    def _not_public(cls, value: str | None) -> str | None:
        if value == _SHIPPED_AMI_KEY:
            raise ValueError("the demo secret earlier versions shipped is public: remove the key to have one generated")
        return value


class AgiConfig(ConfigModel):
    """The FastAGI server Asterisk's dialplan calls."""

    host: Host = "127.0.0.1"
    port: Port = 4573
    header_timeout_s: PositiveSeconds = 5.0
    command_timeout_s: PositiveSeconds = 600.0
    # on SIGTERM, how long calls in the IVR may take to finish before their sessions are
    # closed (Asterisk then takes them down the fallback route: never dropped)
    drain_timeout_s: PositiveSeconds = 30.0
    # the key Asterisk's dialplan puts in every AGI URL; sessions without it are closed unserved.
    # None: generated at first start and kept in <runtime_dir>/agi-secret (0600)
    secret: str | None = Field(default=None, pattern=_URL_SAFE_KEY, repr=False)


class TransfersConfig(ConfigModel):
    """How long a transfer's other side may ring."""

    ring_s: Annotated[int, Field(ge=5, le=300)] = 30  # a blind transfer (the seat is already free)
    # a consultation (attended / three-way): also how long it rings after the seat hung up early;
    # unanswered then, the caller goes to the dialplan's transfer_failed node
    consult_ring_s: Annotated[int, Field(ge=5, le=300)] = 30


class WebrtcConfig(ConfigModel):
    """Seats whose phone is the browser (seats[].phone: browser): Asterisk's secure websocket
    (WSS, its HTTP server with TLS) that the seat desk's SIP library registers over. Rendered only
    when a seat uses it. The media is DTLS-SRTP over ICE on the RTP range (sip.rtp_port_*)."""

    bind_host: IPv4 = "127.0.0.1"  # where the seats' browsers reach it: 0.0.0.0 or the LAN address in production
    port: Port = 8089
    # the host name the desks put in the wss:// URL; None = the host the desk page came from
    public_host: Host | None = None
    # PEM certificate and key for the WSS listener; None = a self-signed pair made at first start
    # in <runtime_dir>/webrtc/ (a demo: browsers must be told to trust it; give a real one in production)
    cert_file: Path | None = None
    key_file: Path | None = None
    # STUN/TURN servers the browsers use behind NAT (stun:host:port, turn:host:port); none on a LAN
    ice_servers: tuple[Annotated[str, Field(pattern=r"^(stun|turns?):[A-Za-z0-9.:-]{1,255}$")], ...] = ()
    # where browser seats' desks may register and call from (their endpoints' ACL, as
    # sip.seat_networks is for SIP softphones); empty: from anywhere
    browser_networks: tuple[IpNetwork, ...] = ()
    # how often Asterisk asks each browser phone (SIP OPTIONS over its websocket) whether it is
    # still there: a page that vanished without closing its socket (a frozen or cut-off PC) is
    # Unreachable after qualify_s + a timeout (≤ 3 s), and the controller takes its caller back to the
    # queue (webphone/watch.py); 0 = never (then only the 30 s media timeout notices)
    qualify_s: Annotated[int, Field(ge=0, le=300)] = 5
    # Asterisk behind NAT (the WSS transport's options): the public address put in the SDP
    # (media) and in Contact/Via (signalling) for browsers outside local_net; None: its own address
    external_media_address: IPv4 | None = None
    external_signaling_address: IPv4 | None = None
    # the networks that reach Asterisk without NAT (they get its own address); needed with the above
    local_net: tuple[IpNetwork, ...] = ()

    @model_validator(mode="after")
    def _cert_and_key(self) -> WebrtcConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file, or neither (a self-signed demo pair is made)")
        return self

    @model_validator(mode="after")
    def _nat(self) -> WebrtcConfig:
        external = self.external_media_address or self.external_signaling_address
        if external and not self.local_net:
            raise ValueError(
                "local_net: give the networks that reach Asterisk without NAT (e.g. the seats' LAN) "
                "with external_media_address / external_signaling_address, or every browser gets the public address"
            )
        if self.local_net and not external:
            raise ValueError("local_net is only used with external_media_address / external_signaling_address")
        return self
