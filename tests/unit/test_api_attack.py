"""Probes from the attack pass over issue 11's work."""

from __future__ import annotations

import asyncio

from tests.unit.test_api_trust import Api, as_, kunming, province, redis  # noqa: F401


async def _raw(api: Api, request: bytes) -> bytes:
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(request)
    await writer.drain()
    data = await reader.read(65536)
    writer.close()
    return data


async def test_a_non_utf8_authorization_header_is_401(kunming: Api) -> None:
    answer = await _raw(
        kunming, b"GET /api/v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


async def test_handoff_pending(kunming: Api) -> None:
    async with kunming.client.get("/api/v1/handoffs/pending", headers=as_("km-seat")) as r:
        print(r.status, await r.text())


import pytest


@pytest.mark.parametrize(
    ("method", "path", "who"),
    [
        ("GET", "/api/v1/tickets/%FF%FE", "km-sup"),
        ("GET", "/api/v1/tickets/%FF%FE/audio", "km-sup"),
        ("POST", "/api/v1/tickets/%FF%FE/transition", "km-sup"),
        ("GET", "/api/v1/calls/%FF%FE", "km-sup"),
        ("GET", "/api/v1/calls/%FF%FE/recording", "km-sup"),
        ("GET", "/api/v1/calls/%FF%FE/transfer", "km-sup"),
        ("POST", "/api/v1/calls/%FF%FE/transfer", "km-sup"),
        ("GET", "/api/v1/handoffs/%FF%FE", "km-seat"),
        ("GET", "/api/v1/tickets?platform=%FF%FE", "km-sup"),
        ("GET", "/api/v1/tickets?state=%FF%FE", "km-sup"),
        ("GET", "/api/v1/tickets?date=%FF%FE", "km-sup"),
        ("GET", "/api/v1/tickets?limit=%FF%FE", "km-sup"),
        ("GET", "/api/v1/calls?limit=%FF%FE", "km-sup"),
        ("GET", "/api/v1/calls?limit=" + "9" * 5000, "km-sup"),
        ("POST", "/api/v1/asr/parked/retry?recording=%FF%FE", "km-admin"),
        ("POST", "/api/v1/asr/parked/retry?recording=" + "a" * 5000, "km-admin"),
        ("POST", "/api/v1/seats/%FF%FE/login", "km-sup"),
        ("POST", "/api/v1/seats/1001/pause", "km-sup"),
    ],
)
async def test_odd_bytes_in_paths_and_queries(kunming: Api, method: str, path: str, who: str) -> None:
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {who}-token\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    answer = await _raw(kunming, request.encode())
    assert not answer.startswith(b"HTTP/1.1 5"), answer[:400]
