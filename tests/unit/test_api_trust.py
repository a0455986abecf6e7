"""The API under a shared Redis and a hostile client (issue 11, defects 7 and 10): a token acts
only on its own platform's objects (the province's sees all), bodies are bounded, ids that are
not ticket ids are 404, and requests without a token never reach the audit trail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from acd.config import SeatConfig
from acd.events import EventBus
from acd.seats import SeatService
from calls.model import CallRecord
from hotline.api import build_api
from hotline.redis_process import RedisProcess
from recordings.access import AuditEntry, RedisAuditLog
from tests.unit.test_api import HANDOFF_TOKEN, RECORD, Backend
from tickets.model import Ticket, TicketCategory, Transcript
from web.api_common import REPEATED_READS_KEY, Unauthenticated
from web.auth import ApiToken, Role, TokenRegistry, token_sha256
from web.jsonbody import json_depth

ACCEPTED = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in China, a Monday
KM, DL, YN = "KM-20260302-0001", "DL-20260302-0001", "YN-20260302-0001"


def _token(name: str, role: Role, platform: str | None = None, seat: str | None = None) -> ApiToken:
    return ApiToken(name=name, role=role, sha256=token_sha256(f"{name}-token"), platform=platform, seat=seat)


# Tokens a controller may list: its own (no platform: the platform of the config that lists
# them), another prefecture's, and the province's.
TOKENS = TokenRegistry(
    [
        _token("km-sup", "supervisor"),
        _token("km-seat", "seat", seat="1001"),
        _token("km-admin", "admin"),
        _token("dl-sup", "supervisor", "dali"),
        _token("dl-seat", "seat", "dali", seat="1001"),
        _token("dl-admin", "admin", "dali"),
        _token("yn-sup", "supervisor", "province"),
        _token("yn-admin", "admin", "province"),
    ]
)


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-token"}


class SharedRedisBackend(Backend):
    """The fake backend with call records of two platforms, as the shared Redis has them."""

    def __init__(self, client: aioredis.Redis, spool_dir: Path, platform: str) -> None:
        super().__init__(client, spool_dir)
        self.platform_id = platform
        self.seat_service = SeatService(
            (SeatConfig(id="1001", secret="secret-1001"),),
            client,
            events=EventBus(client, platform="kunming"),
            clock=lambda: ACCEPTED,
            platform=platform,
        )
        self.calls = {
            RECORD.call_id: RECORD,
            "dali-1.1": RECORD.model_copy(update={"call_id": "dali-1.1", "platform": "dali"}),
        }

    @property
    def seats(self) -> SeatService:
        return self.seat_service

    async def get_call(self, call_id: str) -> CallRecord | None:
        return self.calls.get(call_id)

    async def recording_file(self, call_id: str, kind: str) -> Path | None:
        return self.recording if call_id in self.calls else None


@dataclass
class Api:
    backend: SharedRedisBackend
    client: TestClient[Any, Any]

    async def status(self, method: str, path: str, who: str | None, **kwargs: Any) -> int:
        headers = as_(who) if who else {}
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            assert response.status != 500, await response.text()
            return response.status


async def _ticket(backend: Backend, platform: str, n: int) -> Ticket:
    (backend.spool_dir / "voicemail" / f"{platform}-{n}.wav").write_bytes(b"RIFF....WAVE")
    result = await backend.tickets.create_from_voicemail(
        recording=f"voicemail/{platform}-{n}.wav",
        platform=platform,
        caller=f"1380000000{n}",
        call_id=f"{platform}-{n}",
        accepted_at=ACCEPTED,
        transcript=Transcript(text="路灯坏了"),
        category=TicketCategory.COMPLAINT,
    )
    return result.ticket


@pytest.fixture
async def redis(redis_server: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    await connection.flushdb()
    yield connection
    await connection.aclose()


async def _api(redis: aioredis.Redis, spool: Path, platform: str, province: bool) -> AsyncIterator[Api]:
    (spool / "voicemail").mkdir(parents=True, exist_ok=True)
    backend = SharedRedisBackend(redis, spool, platform)
    backend.recording = spool / "call.wav"
    backend.recording.write_bytes(b"RIFF....WAVE")
    for n, each in enumerate(("kunming", "dali", "province"), start=1):
        await _ticket(backend, each, n)
    client = TestClient(TestServer(build_api(backend, TOKENS, province=province)))
    await client.start_server()
    yield Api(backend, client)
    await client.close()


@pytest.fixture
async def kunming(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Api]:
    """昆明's controller; the tickets of 昆明, 大理 and the province in the shared Redis."""
    async for api in _api(redis, tmp_path / "kunming", "kunming", province=False):
        yield api


@pytest.fixture
async def province(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Api]:
    """The province's controller on the same Redis."""
    async for api in _api(redis, tmp_path / "province", "province", province=True):
        yield api


def dispatch(ticket_id: str) -> tuple[str, str, dict[str, Any]]:
    return "POST", f"/api/v1/tickets/{ticket_id}/transition", {"json": {"to": "dispatched"}}


# Defect 7: one platform's supervisor can change another platform's tickets.


async def test_a_prefecture_supervisor_changes_only_its_own_tickets(kunming: Api) -> None:
    method, path, body = dispatch(DL)
    assert await kunming.status(method, path, "km-sup", **body) == 403  # 大理's ticket, through 昆明's API
    refused = await kunming.client.post(path, headers=as_("km-sup"), **body)
    assert (await refused.json())["error"] == "this token is kunming's: it may not change dali's tickets"
    dali = await kunming.backend.tickets.get(DL)
    assert dali is not None and dali.state.value == "accepted" and len(dali.timeline) == 1
    assert await kunming.status(*dispatch(YN)[:2], "km-sup", **body) == 403
    assert await kunming.status(*dispatch(KM)[:2], "km-sup", **body) == 200
    # another platform's token may not act on 昆明's, through 昆明's API, nor on its own here
    assert await kunming.status(*dispatch(KM)[:2], "dl-sup", **body) == 403
    assert await kunming.status(*dispatch(DL)[:2], "dl-sup", **body) == 403
    dali = await kunming.backend.tickets.get(DL)
    assert dali is not None and dali.state.value == "accepted"


async def test_a_prefecture_sees_only_its_own_tickets(kunming: Api) -> None:
    assert await kunming.status("GET", f"/api/v1/tickets/{KM}", "km-sup") == 200
    assert await kunming.status("GET", f"/api/v1/tickets/{DL}", "km-sup") == 403
    assert await kunming.status("GET", f"/api/v1/tickets/{DL}/audio", "km-sup") == 403
    assert [(e.action, e.result) for e in kunming.backend.audited] == [("ticket.audio", "denied")]
    for query in ("platform=dali", "platform=all", "platform=province"):
        assert await kunming.status("GET", f"/api/v1/tickets?{query}", "km-sup") == 403
    response = await kunming.client.get("/api/v1/tickets", headers=as_("km-sup"))
    assert [t["id"] for t in (await response.json())["tickets"]] == [KM]
    assert await kunming.status("GET", "/api/v1/tickets", "dl-sup") == 403  # 大理's token at 昆明


async def test_the_province_sees_every_platform_and_changes_only_its_own(kunming: Api, province: Api) -> None:
    # the province's token, listed in 昆明's config.yaml
    response = await kunming.client.get("/api/v1/tickets?platform=all", headers=as_("yn-sup"))
    assert sorted(t["id"] for t in (await response.json())["tickets"]) == sorted([KM, DL, YN])
    assert await kunming.status("GET", f"/api/v1/tickets/{DL}", "yn-sup") == 200
    assert await kunming.status("GET", f"/api/v1/tickets/{DL}/audio", "yn-sup") == 200
    assert await kunming.status(*dispatch(KM)[:2], "yn-sup", json={"to": "dispatched"}) == 403
    # the province's own controller: its own token (no platform named) is the province's
    assert await province.status("GET", "/api/v1/tickets?platform=dali", "km-sup") == 200
    assert await province.status("GET", f"/api/v1/tickets/{KM}/audio", "km-sup") == 200
    assert await province.status(*dispatch(KM)[:2], "km-sup", json={"to": "dispatched"}) == 403
    assert await province.status(*dispatch(YN)[:2], "km-sup", json={"to": "dispatched"}) == 200
    kunming_ticket = await province.backend.tickets.get(KM)
    assert kunming_ticket is not None and kunming_ticket.state.value == "accepted"


async def test_call_records_of_another_platform(kunming: Api) -> None:
    assert await kunming.status("GET", "/api/v1/calls/kunming-1.1", "km-sup") == 200
    assert await kunming.status("GET", "/api/v1/calls/dali-1.1", "km-sup") == 403
    assert await kunming.status("GET", "/api/v1/calls/dali-1.1/recording", "km-sup") == 403
    assert [(e.action, e.result) for e in kunming.backend.audited] == [("recording.fetch.conversation", "denied")]
    assert await kunming.status("GET", "/api/v1/calls/dali-1.1", "yn-sup") == 200
    assert await kunming.status("GET", "/api/v1/calls/dali-1.1/recording", "yn-sup") == 200
    assert await kunming.status("GET", "/api/v1/calls/kunming-1.1", "dl-sup") == 403


async def test_seats_and_callbacks_of_this_platform_are_its_own(kunming: Api) -> None:
    for who in ("dl-seat", "dl-sup", "yn-sup", "yn-admin"):
        assert await kunming.status("POST", "/api/v1/seats/1001/login", who) == 403
    assert kunming.backend.seat_service.get("1001").state.value == "logged_out"
    assert await kunming.status("POST", "/api/v1/seats/1001/login", "km-seat") == 200
    assert await kunming.status("POST", "/api/v1/seats/1001/logout", "yn-sup") == 403
    assert kunming.backend.seat_service.get("1001").state.value != "logged_out"
    assert await kunming.status("GET", "/api/v1/callbacks", "dl-sup") == 403
    assert await kunming.status("GET", "/api/v1/callbacks", "yn-sup") == 200
    assert await kunming.status("GET", "/api/v1/callbacks", "km-sup") == 200
    assert await kunming.status("GET", "/api/v1/seats", "dl-seat") == 403


async def test_parked_jobs_are_retried_only_by_their_platform(kunming: Api) -> None:
    retry = "/api/v1/asr/parked/retry?recording=voicemail/x.wav"
    assert await kunming.status("POST", retry, "dl-admin") == 403
    assert await kunming.status("POST", retry, "yn-admin") == 403
    assert await kunming.status("POST", retry, "km-admin") == 404  # reached: nothing parked
    assert await kunming.status("GET", "/api/v1/asr/parked", "dl-admin") == 403
    assert await kunming.status("GET", "/api/v1/asr/parked", "yn-admin") == 200
    assert await kunming.status("POST", "/api/v1/dialplans/reload", "yn-admin") == 403
    assert kunming.backend.reloads == []


async def test_transfers_of_this_platforms_calls_are_its_own(kunming: Api) -> None:
    path, body = "/api/v1/calls/kunming-9.9/transfer", {"json": {"to": "province"}}
    for who in ("dl-seat", "dl-sup", "yn-sup"):
        assert await kunming.status("POST", path, who, **body) == 403
        assert await kunming.status("POST", f"{path}/complete", who) == 403
    assert kunming.backend.transfers == [] and kunming.backend.finished == []
    assert await kunming.status("GET", path, "yn-sup") == 200  # may look: state "none"
    assert await kunming.status("POST", path, "km-seat", **body) == 202
    assert kunming.backend.transfers == [("kunming-9.9", "province", "1001", "")]


async def test_the_shared_audit_trail_shows_each_platform_its_own(kunming: Api) -> None:
    assert await kunming.status("GET", f"/api/v1/tickets/{KM}/audio", "km-sup") == 200  # written by 昆明's API
    at = kunming.backend.audited[0].at
    kunming.backend.audited += [
        AuditEntry(at, "dl-sup", "supervisor", "ticket.audio", DL, "allowed", "10.0.0.2", platform="dali"),
        AuditEntry(at, "old", "supervisor", "ticket.audio", KM, "allowed", "10.0.0.3"),  # before platforms
    ]

    async def trail(who: str) -> list[tuple[str, str]]:
        response = await kunming.client.get("/api/v1/audit", headers=as_(who))
        assert response.status == 200
        return [(e["who"], e["platform"]) for e in (await response.json())["audit"]]

    assert await trail("km-admin") == [("km-sup", "kunming")]
    assert await trail("yn-admin") == [("km-sup", "kunming"), ("dl-sup", "dali"), ("old", "")]
    assert await kunming.status("GET", "/api/v1/audit", "dl-admin") == 403


# Defect 10: bad input → a clear 4xx, quickly, nothing else disturbed.


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tickets/by-recording:voicemail%2Fkunming-1.wav",
        "/api/v1/tickets/by-recording:voicemail%2Fkunming-1.wav/audio",
        "/api/v1/tickets/by-recording:x",
    ],
)
async def test_ids_that_are_not_ticket_ids_are_404(kunming: Api, path: str) -> None:
    await kunming.backend.tickets.create_from_voicemail(
        recording="x", platform="kunming", caller="", call_id="x", accepted_at=ACCEPTED, transcript=Transcript()
    )
    assert await kunming.status("GET", path, "km-sup") == 404
    assert await kunming.status("POST", f"{path}/transition", "km-sup", json={"to": "dispatched"}) in (404, 405)


async def test_a_by_recording_transition_is_404_and_changes_nothing(kunming: Api, redis: aioredis.Redis) -> None:
    key = "hotline:ticket:by-recording:voicemail/kunming-1.wav"
    before = await redis.get(key)
    path = "/api/v1/tickets/by-recording:voicemail%2Fkunming-1.wav/transition"
    assert await kunming.status("POST", path, "km-sup", json={"to": "dispatched"}) == 404
    assert await redis.get(key) == before == KM.encode()


DEEP = {
    "array": b"[" * 30_000 + b"]" * 30_000,
    "objects": b'{"to": ' * 5_000 + b"1" + b"}" * 5_000,
    "in_a_field": b'{"to": "police", "note": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
}


@pytest.mark.parametrize("shape", sorted(DEEP))
@pytest.mark.parametrize(
    ("who", "path"),
    [
        ("km-seat", "/api/v1/calls/kunming-9.9/transfer"),
        ("km-sup", f"/api/v1/tickets/{KM}/transition"),
        ("km-seat", "/api/v1/seats/1001/pause"),
    ],
)
async def test_deeply_nested_bodies_are_400_on_every_route(kunming: Api, shape: str, who: str, path: str) -> None:
    headers = {**as_(who), "Content-Type": "application/json"}
    response = await kunming.client.post(path, data=DEEP[shape], headers=headers)
    assert response.status == 400, await response.text()
    assert "nested more than 16 levels" in (await response.json())["error"]
    assert kunming.backend.transfers == []
    ticket = await kunming.backend.tickets.get(KM)
    assert ticket is not None and ticket.state.value == "accepted"


async def test_big_bodies_are_413(kunming: Api) -> None:
    body = b'{"to": "police", "note": "' + b"x" * 70_000 + b'"}'
    path = "/api/v1/calls/kunming-9.9/transfer"
    response = await kunming.client.post(
        path, data=body, headers={**as_("km-seat"), "Content-Type": "application/json"}
    )
    assert response.status == 413
    chunked = await kunming.client.post(path, data=_chunks(body), headers=as_("km-seat"))  # no Content-Length
    assert chunked.status == 413
    assert kunming.backend.transfers == []


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 8192):
        yield body[start : start + 8192]


def test_depth_counts_brackets_outside_strings_only() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[\\"["}]}', 16) == 3
    assert json_depth(b'"{{{{"', 16) == 0
    assert json_depth(b"[" * 1000, 16) == 17  # stops counting past the limit


async def test_requests_without_a_token_are_counted_not_audited(kunming: Api) -> None:
    """A flood of them must not push real entries out of the capped audit stream."""
    paths = ["/api/v1/calls/kunming-1.1/recording", f"/api/v1/tickets/{KM}/audio", "/api/v1/callbacks"]
    with capture_logs() as logs:
        for round_ in range(100):
            responses = await asyncio.gather(
                *(kunming.client.get(path, headers={"Authorization": f"Bearer forged-{round_}"}) for path in paths)
            )
            assert {response.status for response in responses} == {401}
    assert kunming.backend.audited == []
    assert sum(entry["event"] == "api.unauthenticated" for entry in logs) == 1  # once a minute at most
    metrics = await (await kunming.client.get("/metrics")).text()
    assert "hotline_api_unauthenticated_total 300.0\n" in metrics
    # a known token's refusal is still audited: it names someone
    assert await kunming.status("GET", "/api/v1/calls/kunming-1.1/recording", "km-seat") == 403
    assert [(e.who, e.result) for e in kunming.backend.audited] == [("km-seat", "denied")]


def test_the_unauthenticated_log_is_rate_limited() -> None:
    now = [0.0]
    counter = Unauthenticated(log_interval_s=60.0, clock=lambda: now[0])
    with capture_logs() as logs:
        logged = [counter.seen("/x", "127.0.0.1") for _ in range(5)]
        now[0] = 61.0
        logged.append(counter.seen("/x", "127.0.0.1"))
    assert logged == [True, False, False, False, False, True]
    assert counter.total == 6
    assert [entry["not_logged_since_last"] for entry in logs] == [0, 4]


# Found by the attack pass over the work above.


async def _raw(api: Api, request: bytes) -> bytes:
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(request)
    await writer.drain()
    data = await reader.read(65536)
    writer.close()
    return data


async def test_a_non_utf8_authorization_header_is_401(kunming: Api) -> None:
    """aiohttp keeps such header bytes as surrogates: hashing the token raised (500)."""
    answer = await _raw(
        kunming, b"GET /api/v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


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
        ("GET", "/api/v1/tickets?date=9999-12-31", "km-sup"),  # the day after it: OverflowError
        ("GET", "/api/v1/tickets?date=0001-01-01", "km-sup"),
        ("GET", "/api/v1/tickets?limit=%FF%FE", "km-sup"),
        ("GET", "/api/v1/calls?limit=%FF%FE", "km-sup"),
        ("GET", "/api/v1/calls?limit=" + "9" * 5000, "km-sup"),
        ("POST", "/api/v1/asr/parked/retry?recording=%FF%FE", "km-admin"),
        ("POST", "/api/v1/asr/parked/retry?recording=" + "a" * 5000, "km-admin"),
        ("POST", "/api/v1/seats/%FF%FE/login", "km-sup"),
        ("POST", "/api/v1/seats/1001/pause", "km-sup"),
    ],
)
async def test_odd_paths_and_queries_are_never_500(kunming: Api, method: str, path: str, who: str) -> None:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {who}-token\r\n"
    answer = await _raw(kunming, f"{head}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
    assert not answer.startswith(b"HTTP/1.1 5"), answer[:400]


async def test_another_platforms_traffic_does_not_push_a_platforms_entries_out_of_its_audit_view(
    kunming: Api, redis: aioredis.Redis
) -> None:
    """One audit stream serves every platform: 1,500 of 大理's entries written after 昆明's one
    (a busy neighbour, or a token refused again and again) leave 昆明's admin still seeing it."""
    trail = RedisAuditLog(redis)
    kunming.backend.audit = trail.record  # type: ignore[method-assign]
    kunming.backend.audit_trail = trail.recent  # type: ignore[method-assign]
    assert await kunming.status("GET", f"/api/v1/tickets/{KM}/audio", "km-sup") == 200
    at = datetime.now(UTC)
    for n in range(1500):
        await trail.record(AuditEntry(at, "dl-sup", "supervisor", "ticket.audio", f"DL-{n}", "allowed", "", "dali"))
    async with kunming.client.get("/api/v1/audit", headers=as_("km-admin")) as response:
        assert response.status == 200
        shown = (await response.json())["audit"]
    assert [(e["who"], e["action"], e["result"]) for e in shown] == [("km-sup", "ticket.audio", "allowed")]
    async with kunming.client.get("/api/v1/audit", headers=as_("yn-admin")) as response:
        assert len((await response.json())["audit"]) == 200  # the province's: every platform's, newest 200


async def test_a_filtered_audit_read_stops_at_the_start_of_the_stream_and_at_its_scan(redis: aioredis.Redis) -> None:
    trail = RedisAuditLog(redis)
    at = datetime.now(UTC)
    for n in range(5):
        await trail.record(AuditEntry(at, f"w{n}", "admin", "x", "", "allowed", "", "kunming" if n % 2 else "dali"))
    assert [e.who for e in await trail.recent(10)] == ["w4", "w3", "w2", "w1", "w0"]
    assert [e.who for e in await trail.recent(2)] == ["w4", "w3"]
    kunming_only = await trail.recent(10, lambda e: e.platform == "kunming")
    assert [e.who for e in kunming_only] == ["w3", "w1"]
    assert [e.who for e in await trail.recent(10, lambda e: e.platform == "kunming", scan=2)] == ["w3"]


async def test_a_console_polling_the_callback_list_is_audited_once_per_token_and_interval(kunming: Api) -> None:
    """The console lists callbacks every 3 s: each listing an audit entry was 28,800 a day per
    open console, pushing every recording fetch out of the trail's view within minutes."""
    now = [0.0]
    kunming.client.app[REPEATED_READS_KEY].clock = lambda: now[0]  # 600 s apart at the least
    for _ in range(20):
        assert await kunming.status("GET", "/api/v1/callbacks", "km-sup") == 200
    assert await kunming.status("GET", "/api/v1/callbacks", "yn-sup") == 200
    now[0] = 599.0
    assert await kunming.status("GET", "/api/v1/callbacks", "km-sup") == 200
    now[0] = 600.0
    assert await kunming.status("GET", "/api/v1/callbacks", "km-sup") == 200
    assert await kunming.status("GET", "/api/v1/callbacks", "km-seat") == 403  # a refusal: always
    assert await kunming.status("GET", "/api/v1/callbacks", "km-seat") == 403
    assert [(e.who, e.action, e.result) for e in kunming.backend.audited] == [
        ("km-sup", "callbacks.list", "allowed"),
        ("yn-sup", "callbacks.list", "allowed"),
        ("km-sup", "callbacks.list", "allowed"),
        ("km-seat", "callbacks.list", "denied"),
        ("km-seat", "callbacks.list", "denied"),
    ]


async def test_a_hand_off_is_seen_by_the_platforms_it_is_between_only(kunming: Api, province: Api) -> None:
    """大理 hands a caller to the province: 昆明's seat, even knowing the token, may not read it."""
    path = f"/api/v1/handoffs/{HANDOFF_TOKEN}"
    assert await kunming.status("GET", path, "km-seat") == 403
    assert await province.status("GET", path, "yn-sup") == 200  # the receiver (and the province)
    assert await kunming.status("GET", "/api/v1/handoffs/unknown", "km-seat") == 404
