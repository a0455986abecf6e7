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
