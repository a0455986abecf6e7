"""``GET /api/v1/seats/{seat_id}/phone``: what the seat desk needs to register as its seat.

The answer carries the seat's SIP password, so only that seat's own token gets it: supervisors
and admins (who may act as any seat elsewhere) get 403 here, and every attempt is audited
(``seats.phone``). A seat whose phone is a SIP softphone gets ``{"phone": "sip"}`` and nothing
else. The password is never logged."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web

from web.api_common import PRINCIPAL_KEY, SCOPE_KEY, SERVING_KEY, audit_request, error_response, requires
from web.openapi import describe
from webphone.schemas import PhoneSettings


@dataclass(frozen=True)
class BrowserPhone:
    """One browser seat's registration: its SIP user (the seat id) and password."""

    seat: str
    name: str
    secret: str

    def __repr__(self) -> str:  # the password never reaches a log line or a traceback
        return f"BrowserPhone(seat={self.seat!r})"


@dataclass(frozen=True)
class PhoneBook:
    """Every configured seat's phone kind, and the WSS listener the browser phones use."""

    browser: Mapping[str, BrowserPhone]  # seat id → its registration (browser seats only)
    sip_seats: frozenset[str]  # seats with a SIP softphone
    websocket_port: int
    public_host: str | None  # None: the host the page came from
    ice_servers: tuple[str, ...]

    def __repr__(self) -> str:
        return f"PhoneBook(browser={sorted(self.browser)}, sip_seats={sorted(self.sip_seats)})"


def phone_book(
    seats: Iterable[tuple[str, str, str, str | None]],
    websocket_port: int,
    public_host: str | None,
    ice_servers: tuple[str, ...],
) -> PhoneBook:
    """The book of ``seats`` given as (id, name, phone kind, secret)."""
    browser: dict[str, BrowserPhone] = {}
    sip: set[str] = set()
    for seat, name, kind, secret in seats:
        if kind == "browser" and secret:
            browser[seat] = BrowserPhone(seat, name, secret)
        else:
            sip.add(seat)
    return PhoneBook(browser, frozenset(sip), websocket_port, public_host, ice_servers)


PHONE_BOOK_KEY: web.AppKey[PhoneBook] = web.AppKey("phone_book", PhoneBook)


# what a Host header may name to be echoed into a URL or the desk's CSP: a DNS name, IPv4 or IPv6
_REQUEST_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45}")


def _phone_host(book: PhoneBook, request: web.Request) -> str:
    """The host the desks reach Asterisk's WSS listener on: webrtc.public_host, else the host the
    page came from (anything but a plain host name or address: 127.0.0.1)."""
    host = book.public_host or request.url.host or ""
    return host if _REQUEST_HOST.fullmatch(host) else "127.0.0.1"


def websocket_origin(book: PhoneBook, request: web.Request) -> str:
    """``wss://host:port``: the one origin the seat desk page may open a websocket to besides its own."""
    host = _phone_host(book, request)
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"wss://{host}:{book.websocket_port}"


def _websocket_url(book: PhoneBook, request: web.Request) -> str:
    return websocket_origin(book, request) + "/ws"


@describe(
    "the seat's own phone settings: sip (a softphone) or browser (WSS URL, SIP URI, password)",
    response=PhoneSettings,
    description="Only the seat's own token: supervisors and admins get 403 (the answer holds its password).",
    errors={403: "not this seat's own token", 404: "no such seat"},
)
@requires("seat", audit="seats.phone")
async def phone_settings(request: web.Request) -> web.Response:
    seat_id = request.match_info["seat_id"]
    principal = request[PRINCIPAL_KEY]
    book = request.app[PHONE_BOOK_KEY]
    own_platform = request[SCOPE_KEY].platform == request.app[SERVING_KEY].platform
    if principal.role != "seat" or principal.seat != seat_id or not own_platform:
        await audit_request(request, principal, "seats.phone", "denied")
        return error_response(403, "only the seat's own token gets its phone settings")
    if seat_id in book.sip_seats:
        return web.json_response({"seat": seat_id, "phone": "sip"})
    phone = book.browser.get(seat_id)
    if phone is None:
        return error_response(404, f"no seat {seat_id!r} is configured")
    await audit_request(request, principal, "seats.phone", "allowed")
    body = {
        "seat": seat_id,
        "phone": "browser",
        "websocket_url": _websocket_url(book, request),
        "sip_uri": f"sip:{seat_id}@{_phone_host(book, request)}",
        "authorization_user": seat_id,
        "password": phone.secret,
        "display_name": phone.name or seat_id,
        "ice_servers": list(book.ice_servers),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application, book: PhoneBook) -> None:
    app[PHONE_BOOK_KEY] = book
    app.router.add_get("/api/v1/seats/{seat_id}/phone", phone_settings)
