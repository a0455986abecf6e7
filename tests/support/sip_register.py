"""A minimal SIP registrar client for tests: one REGISTER (answering a digest challenge) over UDP
or over a websocket (RFC 7118, subprotocol ``sip``), so a test can say which transport Asterisk
accepted a seat's credentials on. Not a phone: no dialogs, no re-registration."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import re
import secrets
import socket
import ssl
from asyncio.trsock import TransportSocket

import aiohttp


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # SIP digest is MD5


def _status(response: str) -> int:
    return int(response.split(" ", 2)[1])


def _header(response: str, name: str) -> str | None:
    for line in response.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def _authorization(challenge: str, user: str, password: str, uri: str) -> str:
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params["realm"], params["nonce"]
    ha1, ha2 = _md5(f"{user}:{realm}:{password}"), _md5(f"REGISTER:{uri}")
    fields = f'username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
    if "auth" in params.get("qop", "").split(","):
        cnonce = secrets.token_hex(8)
        response = _md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        fields += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    if "opaque" in params:
        fields += f', opaque="{params["opaque"]}"'
    return f'Digest {fields}, response="{response}"'


def _register(user: str, host: str, via: str, contact: str, *, cseq: int, call_id: str, auth: str | None) -> str:
    uri = f"sip:{host}"
    lines = [
        f"REGISTER {uri} SIP/2.0",
        f"Via: SIP/2.0/{via};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{host}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{user}@{host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <{contact}>",
        "Expires: 300",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    return "\r\n".join([*lines, "Content-Length: 0", "", ""])


async def register_over_websocket(url: str, user: str, password: str, host: str = "127.0.0.1") -> int:
    """REGISTER as ``user`` over the websocket at ``url``; the final status (200, 401, 403 …)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the demo pair is self-signed
    call_id = secrets.token_hex(12)
    contact = f"sip:{user}@{secrets.token_hex(6)}.invalid;transport=ws"
    status = 0
    # Asterisk may not answer the close frame: wait 2 s for it, not aiohttp's 10. Closing the TLS
    # transport then waits for Asterisk's close_notify (asyncio gives it 30 s), which may never
    # come: the TCP socket under it would outlive this call's loop and be left to the garbage
    # collector (a ResourceWarning in whatever test runs then). So it is closed here, see below.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.ws_connect(url, protocols=("sip",), ssl=context, timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws,
    ):
        tcp: TransportSocket = ws.get_extra_info("socket")
        auth: str | None = None
        for cseq in (1, 2):
            await ws.send_str(_register(user, host, "WSS test.invalid", contact, cseq=cseq, call_id=call_id, auth=auth))
            response = await _final(ws)
            status = _status(response)
            challenge = _header(response, "WWW-Authenticate")
            if status != 401 or challenge is None or auth is not None:
                break
            auth = _authorization(challenge, user, password, f"sip:{host}")
    await _closed(tcp)
    gc.collect()  # anything still unclosed warns here, inside this call, not in a later test
    return status


async def _closed(tcp: TransportSocket, timeout_s: float = 10.0) -> None:
    """Return once the transport owning ``tcp`` has closed it: given 1 s for the TLS goodbye,
    then shut down (the transport reads end-of-file and closes it itself, inside this loop)."""
    loop = asyncio.get_running_loop()
    started, shut = loop.time(), False
    while tcp.fileno() != -1:
        waited = loop.time() - started
        if waited > 1 and not shut:
            with contextlib.suppress(OSError):
                tcp.shutdown(socket.SHUT_RDWR)
            shut = True
        assert waited < timeout_s, f"the websocket's TCP socket is still open: {tcp!r}"
        await asyncio.sleep(0.05)


async def _final(ws: aiohttp.ClientWebSocketResponse) -> str:
    while True:
        message = await asyncio.wait_for(ws.receive_str(), 20)
        if message.startswith("SIP/2.0") and _status(message) >= 200:
            return message


def register_over_udp(bind: str, host: str, port: int, user: str, password: str) -> int:
    """REGISTER as ``user`` from ``bind`` (a local address) to ``host:port`` over UDP; the final status."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, 0))
        sock.settimeout(20)
        local_port = sock.getsockname()[1]
        call_id, auth = secrets.token_hex(12), None
        for cseq in (1, 2):
            via, contact = f"UDP {bind}:{local_port}", f"sip:{user}@{bind}:{local_port}"
            request = _register(user, host, via, contact, cseq=cseq, call_id=call_id, auth=auth)
            sock.sendto(request.encode(), (host, port))
            while True:
                response = sock.recv(65535).decode()
                if _status(response) >= 200:
                    break
            status = _status(response)
            challenge = _header(response, "WWW-Authenticate")
            if status != 401 or challenge is None or auth is not None:
                return status
            auth = _authorization(challenge, user, password, f"sip:{host}")
    raise AssertionError("unreachable")
