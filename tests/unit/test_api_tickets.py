"""The ticket API on a real Redis: roles, masking, filters, audited audio, state changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from hotline.api import build_api
from hotline.redis_process import RedisProcess
from tests.unit.test_api import TOKEN_HEADERS, TOKENS, Backend
from tickets.model import TicketCategory, Transcript
from voicemail.jobs import VoicemailMeta

ACCEPTED = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in China, a Monday


@pytest.fixture
async def api(redis_server: RedisProcess, tmp_path: Path) -> AsyncIterator[tuple[Backend, TestClient[Any, Any]]]:
    connection = aioredis.Redis.from_url(redis_server.url)
    await connection.flushdb()
    (tmp_path / "voicemail").mkdir()
    (tmp_path / "voicemail" / "kunming-1.wav").write_bytes(b"RIFF....WAVE")
    backend = Backend(connection, tmp_path)
    await backend.tickets.create_from_voicemail(
        recording="voicemail/kunming-1.wav",
        platform="kunming",
        caller="13812345678",
        call_id="kunming-1",
        accepted_at=ACCEPTED,
        transcript=Transcript(text="路灯坏了"),
        category=TicketCategory.COMPLAINT,
    )
    client = TestClient(TestServer(build_api(backend, TOKENS)))
    await client.start_server()
    yield backend, client
    await client.close()
    await connection.aclose()


async def test_tickets_need_a_supervisor_and_hide_the_caller(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = api
    assert (await client.get("/api/v1/tickets")).status == 401
    assert (await client.get("/api/v1/tickets", headers=TOKEN_HEADERS["seat"])).status == 403
    body = await (await client.get("/api/v1/tickets", headers=TOKEN_HEADERS["sup"])).json()
    (ticket,) = body["tickets"]
    assert ticket["id"] == "KM-20260302-0001"
    assert ticket["caller"] == "138****5678"
    assert ticket["category"] == "complaint"
    assert ticket["transcript"]["text"] == "路灯坏了"
    assert "recording" not in ticket and ticket["has_audio"]
    # accepted in March 2026: every deadline has passed by now
    assert set(ticket["overdue"]) == {"dispatch", "resolve"}
    one = await (await client.get(f"/api/v1/tickets/{ticket['id']}", headers=TOKEN_HEADERS["sup"])).json()
    assert one["deadlines"] == ticket["deadlines"]
    assert (await client.get("/api/v1/tickets/KM-nope", headers=TOKEN_HEADERS["sup"])).status == 404


async def test_filters(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = api

    async def count(query: str) -> int:
        response = await client.get(f"/api/v1/tickets?{query}", headers=TOKEN_HEADERS["sup"])
        assert response.status == 200, await response.text()
        return len((await response.json())["tickets"])

    assert await count("platform=kunming&state=accepted&date=2026-03-02&overdue=true") == 1
    assert await count("platform=kunming") == 1
    # other platforms' tickets are the province's to see (tests/unit/test_api_trust.py)
    for other in ("platform=dali", "platform=all"):
        assert (await client.get(f"/api/v1/tickets?{other}", headers=TOKEN_HEADERS["sup"])).status == 403
    assert await count("date=2026-03-03") == 0
    assert await count("state=resolved") == 0
    assert (await client.get("/api/v1/tickets?state=lost", headers=TOKEN_HEADERS["sup"])).status == 400


async def test_audio_is_audited_and_refused_without_the_role(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    backend, client = api
    path = "/api/v1/tickets/KM-20260302-0001/audio"
    assert (await client.get(path, headers=TOKEN_HEADERS["seat"])).status == 403
    response = await client.get(path, headers=TOKEN_HEADERS["sup"])
    assert response.status == 200
    assert await response.read() == b"RIFF....WAVE"
    assert [(e.action, e.result, e.call_id) for e in backend.audited] == [
        ("ticket.audio", "denied", "KM-20260302-0001"),
        ("ticket.audio", "allowed", "KM-20260302-0001"),
    ]


async def test_state_changes_follow_the_rules(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = api
    path = "/api/v1/tickets/KM-20260302-0001/transition"
    refused = await client.post(path, json={"to": "signed"}, headers=TOKEN_HEADERS["sup"])
    assert refused.status == 409
    assert "accepted → signed is not allowed" in (await refused.json())["error"]
    moved = await client.post(path, json={"to": "dispatched", "note": "市政"}, headers=TOKEN_HEADERS["sup"])
    assert moved.status == 200
    ticket = await moved.json()
    assert ticket["state"] == "dispatched"
    assert ticket["timeline"][-1]["actor"] == "sup"
    assert ticket["deadlines"]["sign_by"] is not None
    assert (await client.post(path, json={"to": "nowhere"}, headers=TOKEN_HEADERS["sup"])).status == 400
    assert (await client.post(path, json={"to": "signed"}, headers=TOKEN_HEADERS["seat"])).status == 403


async def test_parked_jobs_are_for_admins(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = api
    assert (await client.get("/api/v1/asr/parked", headers=TOKEN_HEADERS["sup"])).status == 403
    response = await client.get("/api/v1/asr/parked", headers=TOKEN_HEADERS["admin"])
    assert await response.json() == {"parked": []}
    missing = await client.post("/api/v1/asr/parked/retry?recording=voicemail/x.wav", headers=TOKEN_HEADERS["admin"])
    assert missing.status == 404


OLD_FALLBACK = "fallback/fb-1772442000-13812345678-kunming-1772442000.7.wav"  # the number in the name


async def test_an_old_fallback_name_shows_no_whole_number(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    """Messages the fallback route recorded before the number left the file name: the ticket
    timeline and the parked list mask it, and the masked name still retries the job."""
    backend, client = api
    linked = await backend.tickets.create_from_voicemail(
        recording=OLD_FALLBACK,
        platform="kunming",
        caller="13812345678",
        call_id="kunming-1772442000.7",
        accepted_at=ACCEPTED,
        transcript=Transcript(text="又来了"),
    )
    one = await client.get(f"/api/v1/tickets/{linked.ticket.id}", headers=TOKEN_HEADERS["sup"])
    text = await one.text()
    assert "repeat request: call kunming-1772442000.7" in text
    assert "13812345678" not in text
    # a note already stored with the whole number (written by an older version) is masked too
    stored = linked.ticket.model_copy(
        update={"timeline": (*linked.ticket.timeline[:-1], linked.ticket.timeline[-1].model_copy(
            update={"note": f"repeat request: call kunming-1772442000.7, message {OLD_FALLBACK}"}
        ))}
    )  # fmt: skip
    await backend.tickets._redis.set(f"hotline:ticket:{stored.id}", stored.model_dump_json())
    listed = await (await client.get("/api/v1/tickets", headers=TOKEN_HEADERS["sup"])).text()
    assert "13812345678" not in listed and "138****5678" in listed

    queue = backend.asr_queue
    await queue.ensure_group()
    await backend.tickets._redis.delete(f"hotline:ticket:by-recording:{OLD_FALLBACK}")  # no ticket yet
    meta = VoicemailMeta(platform="kunming", call_id="kunming-1772442000.7", caller="13812345678")
    assert await queue.enqueue(OLD_FALLBACK, meta)
    (job,) = await queue.read_new("test", 1, 100)
    await queue.park(job, f"AudioUnreadable: {OLD_FALLBACK}: not a WAV", 1, ACCEPTED)
    parked = await client.get("/api/v1/asr/parked", headers=TOKEN_HEADERS["admin"])
    body = await parked.json()
    assert "13812345678" not in await parked.text()
    (entry,) = body["parked"]
    assert entry["recording"] == "fallback/fb-1772442000-138****5678-kunming-1772442000.7.wav"
    retried = await client.post(
        "/api/v1/asr/parked/retry", params={"recording": entry["recording"]}, headers=TOKEN_HEADERS["admin"]
    )
    assert retried.status == 200
    assert (await (await client.get("/api/v1/asr/parked", headers=TOKEN_HEADERS["admin"])).json()) == {"parked": []}
