"""config.yaml → the Asterisk files of one platform: the app shell's side of
telephony/asterisk_conf.py. It picks from the whole configuration what Asterisk needs (an
``AsteriskSite``) and the secrets the controller shares with it; telephony renders and writes."""

from __future__ import annotations

from pathlib import Path

import structlog

from hotline.config import Config, ConfigError
from hotline.local_secrets import LocalSecrets, local_secrets
from telephony import asterisk_conf
from telephony.asterisk_conf import AsteriskLayout
from telephony.site import AsteriskSite, SeatEndpoint
from telephony.webrtc_cert import CertificateError
from webphone.routes import PhoneBook, phone_book

log = structlog.get_logger(__name__)


def asterisk_site(config: Config) -> AsteriskSite:
    """What the Asterisk files of ``config``'s platform are rendered from."""
    return AsteriskSite(
        platform_id=config.platform.id,
        area_code=config.platform.area_code,
        sip=config.sip,
        asterisk=config.asterisk,
        agi=config.agi,
        transfers=config.transfers,
        seats=tuple(
            SeatEndpoint(
                id=seat.id,
                name=seat.name,
                secret=seat.secret,
                contact=seat.contact,
                contact_address=seat.contact_address,
                browser=seat.phone == "browser",
            )
            for seat in config.seats
        ),
        runtime_dir=config.paths.runtime_dir,
        spool_dir=config.paths.spool_dir,
        announce_every_s=config.acd.announce_every_s,
        fallback_wait_s=config.acd.fallback_wait_s,
        webrtc=config.webrtc,
        seat_transfer_key=seat_transfer_key(config),
    )


def seat_transfer_key(config: Config) -> bool:
    """Whether every seat's channel has the attended-transfer key (features.conf ``atxfer``) and a
    consultation starts with Atxfer at once (ivr/consult.py): where Asterisk records the calls.
    MixMonitor's audiohook keeps every conversation off native RTP (bridge_native_rtp.c), so the
    key's DTMF hook costs nothing there; elsewhere it would, and a consultation rejoins first."""
    return config.recordings.enabled


def layout_for(config: Config, etc_dir: Path) -> AsteriskLayout:
    """The layout for ``config``: code from the provisioned root, state under runtime_dir."""
    return asterisk_conf.layout_for(asterisk_site(config), etc_dir)


def render_asterisk_config(
    config: Config, layout: AsteriskLayout, secrets: LocalSecrets | None = None
) -> dict[str, str]:
    """Every file Asterisk reads, as ``{name: text}``; without ``secrets``, the configured ones
    or fresh random ones (nothing is read from or written to ``runtime_dir``)."""
    return asterisk_conf.render_asterisk_files(asterisk_site(config), layout, secrets or LocalSecrets.preview(config))


def write_asterisk_config(config: Config, etc_dir: Path) -> AsteriskLayout:
    """Render into ``etc_dir`` (files 0600, folders 0700) with the installation's own secrets
    (made at first use) and create the state folders; returns the layout used."""
    site = asterisk_site(config)
    layout = asterisk_conf.layout_for(site, etc_dir)
    unfenced = unfenced_seats(config)
    if unfenced:
        log.warning("asterisk.seat_passwords_on_every_transport", seats=list(unfenced))
    try:
        asterisk_conf.write_asterisk_files(site, layout, local_secrets(config))
    except CertificateError as exc:  # the WSS listener's pair: a clear message, not a traceback
        raise ConfigError(str(exc)) from None
    return layout


def unfenced_seats(config: Config) -> tuple[str, ...]:
    """Password seats whose credentials would also register on the other kind's transport: with
    a WSS listener (a browser seat), SIP softphone seats without ``sip.seat_networks`` and
    browser seats without ``webrtc.browser_networks`` (PJSIP does not tie an endpoint to a
    transport; telephony/asterisk_conf.py ``_seat_acl``)."""
    if not any(seat.phone == "browser" for seat in config.seats):
        return ()
    return tuple(
        seat.id
        for seat in config.seats
        if seat.secret and not (config.webrtc.browser_networks if seat.phone == "browser" else config.sip.seat_networks)
    )


def seat_phone_book(config: Config) -> PhoneBook:
    """What GET /api/v1/seats/{id}/phone answers from (webphone/routes.py): each seat's phone
    kind and a browser seat's registration, on Asterisk's WSS listener (config.webrtc)."""
    web = config.webrtc
    seats = ((seat.id, seat.name, seat.phone, seat.secret) for seat in config.seats)
    return phone_book(seats, web.port, web.public_host, web.ice_servers)
