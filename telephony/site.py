"""What the Asterisk files of one platform are rendered from: telephony's own config sections
and the few plain values of the others (seats as endpoints, the ACD's fallback wait and
announcement interval, folders). The app shell builds it from config.yaml
(hotline/asterisk_files.py); the renderers (asterisk_conf.py, extensions_conf.py) read only this."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from telephony.config import AgiConfig, AsteriskConfig, SipConfig, TransfersConfig, WebrtcConfig


@dataclass(frozen=True)
class SeatEndpoint:
    """A seat as Asterisk sees it: a PJSIP endpoint that registers with ``secret`` or sits at a
    fixed ``contact`` (known then by ``contact_address``, its host and port)."""

    id: str
    name: str
    secret: str | None
    contact: str | None
    contact_address: tuple[str, int] | None
    browser: bool = False  # the seat desk's WebRTC phone (over the WSS transport), not a SIP softphone


@dataclass(frozen=True)
class AsteriskSite:
    """One platform's Asterisk, as the renderers need it."""

    platform_id: str
    area_code: str
    sip: SipConfig
    asterisk: AsteriskConfig
    agi: AgiConfig
    transfers: TransfersConfig
    seats: tuple[SeatEndpoint, ...]
    runtime_dir: Path  # Asterisk's state and the built prompts are under it
    spool_dir: Path  # callers' messages (the fallback route's among them)
    announce_every_s: int  # a waiting caller's position is said this often; 0 = never
    fallback_wait_s: int  # controller away: every seat rings this long
    webrtc: WebrtcConfig = field(default_factory=WebrtcConfig)  # the WSS listener, rendered when a seat is a browser
    # every seat's channel has the attended-transfer key (features.conf atxfer): where Asterisk
    # records the calls (its audiohook keeps them off native RTP, so the DTMF hook costs nothing)
    seat_transfer_key: bool = False

    @property
    def browser_seats(self) -> bool:
        return any(seat.browser for seat in self.seats)

    @property
    def webrtc_cert(self) -> tuple[Path, Path]:
        """The WSS listener's certificate and key: the configured pair, or the demo pair made at
        first start (telephony/webrtc_cert.py)."""
        if self.webrtc.cert_file is not None and self.webrtc.key_file is not None:
            return self.webrtc.cert_file, self.webrtc.key_file
        folder = self.runtime_dir / "webrtc"
        return folder / "cert.pem", folder / "key.pem"
