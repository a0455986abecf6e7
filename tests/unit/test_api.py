"""The HTTP API: roles, masking, errors, metrics (aiohttp test server, fake backend)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ConnectionError as RedisConnectionError

from acd.events import EventBus
from acd.seat import Seat
from acd.seats import SeatService
from acd.stats import QueueStats, SeatStats
from calls.callbacks import Callback
from calls.handoff import Handoff
from calls.model import CallOutcome, CallRecord, CallState
from calls.store import StoreUnavailable
from common.metrics import Metric
from common.reloading import ReloadResult
from hotline.api import build_api
from hotline.figures import rate_metrics
from ivr.calendar import PlatformCalendar
from ivr.consult import ConsultRefused
from ivr.dialplan.schema import TransferMode
from ivr.transfer import TransferRefused, TransferStarted
from recordings.access import AuditEntry, AuditFilter
from telephony.ami_types import AmiNotConnected
from tests.support.waiting import wait_until
from tickets.store import RedisTicketStore
from voicemail.queue import AsrQueue
from voicemail.sink import TicketStoreSink
from web.auth import ApiToken, TokenRegistry, token_sha256

RECORD = CallRecord(
    call_id="kunming-1.1",
    platform="kunming",
    caller="13812345678",
    caller_name="张三丰",
    called="12345",
    state=CallState.ENDED,
    started_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    ended_at=datetime(2026, 3, 2, 9, 1, tzinfo=UTC),
    ivr_path=("greeting",),
    outcome=CallOutcome.IVR_COMPLETED,
)


HANDOFF_TOKEN = "a3f1c0ffee0ddba11d00dfeed"


class Backend:
    def __init__(self, client: aioredis.Redis | None = None, spool_dir: Path = Path("/nonexistent")) -> None:
        # tickets: a real store on a real Redis (tests/unit/test_api_tickets.py); here unconnected
        client = client or aioredis.Redis(port=1)
        calendar = PlatformCalendar()
        self.tickets = RedisTicketStore(client, lambda _platform: calendar)
        self.asr_queue = AsrQueue(client, TicketStoreSink(self.tickets))
        self.spool_dir = spool_dir
        self.platform_id = "kunming"
        self.store_down = False
        self.transfers: list[tuple[str, str, str, str]] = []
        self.modes: list[TransferMode] = []
        self.finished: list[tuple[str, str]] = []
        self.broken_dialplan = False
        self.reloads: list[str] = []
        self.audited: list[AuditEntry] = []
        self.recording: Path | None = None
        self.health_status: dict[str, Any] = {"status": "ok", "components": {"ami": "up"}}
        self.redis_down = False

    async def health(self) -> dict[str, Any]:
        return self.health_status

    async def metrics(self) -> list[Metric]:
        return [
            Metric("hotline_calls_live", "gauge", "Calls in progress", 3),
            Metric("x_total", "counter", "X", 1.5, (("q", 'a"b'),)),
        ]

    async def recent_calls(self, limit: int) -> list[CallRecord]:
        if self.store_down:
            raise StoreUnavailable("Redis is down")
        return [RECORD][:limit]

    async def get_call(self, call_id: str) -> CallRecord | None:
        return RECORD if call_id == RECORD.call_id else None

    async def dialplan_status(self) -> dict[str, Any]:
        return {"version": "abc"}

    async def recording_file(self, call_id: str, kind: str) -> Path | None:
        return self.recording if call_id == RECORD.call_id and kind == "conversation" else None

    async def callbacks(self, limit: int) -> list[Callback]:
        return []

    async def queue_stats(self) -> list[QueueStats]:
        return []

    async def transfer_call(self, call_id: str, to: str, seat: str, note: str, mode: TransferMode) -> TransferStarted:
        if to != "province":
            raise TransferRefused(f"unknown destination {to!r}")
        self.transfers.append((call_id, to, seat, note))
        self.modes.append(mode)
        return TransferStarted(to, "PJSIP/12345@province", mode, None)

    @property
    def network(self) -> Backend:
        return self  # this fake plays the network side too

    async def finish_consultation(self, call_id: str, action: str) -> None:
        if action == "three_way":
            raise ConsultRefused("'province' takes no three-way call")
        if action == "cancel":
            raise AmiNotConnected("not logged in to AMI")
        self.finished.append((call_id, action))

    async def consultation(self, call_id: str) -> dict[str, str] | None:
        return {"call_id": call_id, "state": "talking"} if self.finished == [] and self.modes else None

    async def destinations(self) -> list[dict[str, Any]]:
        return [{"to": "police", "name": "公安报警 110", "kind": "emergency", "modes": ["three_way", "blind"]}]

    async def current_calls(self) -> dict[str, dict[str, Any]]:
        return {}

    async def seat_of_call(self, call_id: str) -> str | None:
        return "1001" if call_id == "kunming-9.9" else None

    async def handoff(self, token: str) -> Handoff | None:
        if token != HANDOFF_TOKEN:
            return None  # a hand-off of 大理's caller to the province, not yet picked up
        return Handoff(
            token=token, from_platform="dali", from_call_id="dali-1.1", to="province", created_at=RECORD.started_at
        )

    async def platforms(self) -> list[dict[str, Any]]:
        if self.redis_down:
            raise RedisConnectionError("Connection refused")
        return [{"platform": "kunming", "reporting": True}]

    async def seat_figures(self) -> list[tuple[Seat, SeatStats]]:
        return [
            (seat, SeatStats(seat.seat_id, answered=2, average_talk_s=61.5, talk_s=123.0)) for seat in self.seats.all()
        ]

    async def audit(self, entry: AuditEntry) -> None:
        self.audited.append(entry)

    async def audit_trail(self, limit: int, keep: AuditFilter | None = None) -> list[AuditEntry]:
        return [entry for entry in self.audited if keep is None or keep(entry)][-limit:]

    @property
    def seats(self) -> SeatService:
        raise NotImplementedError("seat routes are tested against a real controller")

    @property
    def events(self) -> EventBus:
        raise NotImplementedError("the events socket is tested against a real controller")

    async def reload_dialplan(self, reason: str) -> ReloadResult:
        self.reloads.append(reason)
        if self.broken_dialplan:
            return ReloadResult(False, "abc", False, ("dali.yaml:3:1: error: nodes: required key is missing",))
        return ReloadResult(True, "def", True)


TOKENS = TokenRegistry(
    [
        ApiToken(name="sup", role="supervisor", sha256=token_sha256("sup-token")),
        ApiToken(name="seat", role="seat", sha256=token_sha256("seat-token"), seat="1001"),
        ApiToken(name="root", role="admin", sha256=token_sha256("admin-token")),
    ]
)


TOKEN_HEADERS = {role: {"Authorization": f"Bearer {role}-token"} for role in ("sup", "seat", "admin")}


@pytest.fixture
async def backend_and_client() -> AsyncIterator[tuple[Backend, TestClient[Any, Any]]]:
    backend = Backend()
    client = TestClient(TestServer(build_api(backend, TOKENS)))
    await client.start_server()
    yield backend, client
    await client.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_calls_are_masked_and_need_a_supervisor(backend_and_client: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = backend_and_client
    assert (await client.get("/api/v1/calls")).status == 401
    assert (await client.get("/api/v1/calls", headers={"Authorization": "Basic sup-token"})).status == 401
    assert (await client.get("/api/v1/calls", headers=bearer("seat-token"))).status == 403
    response = await client.get("/api/v1/calls", headers=bearer("sup-token"))
    assert response.status == 200
    call = (await response.json())["calls"][0]
    assert call["caller"] == "138****5678"
    assert call["caller_name"] == "张**"
    assert call["outcome"] == "ivr_completed"
    assert call["ivr_path"] == ["greeting"]


async def test_one_call_and_errors(backend_and_client: tuple[Backend, TestClient[Any, Any]]) -> None:
    backend, client = backend_and_client
    assert (await client.get("/api/v1/calls/kunming-1.1", headers=bearer("sup-token"))).status == 200
    assert (await client.get("/api/v1/calls/nope", headers=bearer("sup-token"))).status == 404
    assert (await client.get("/api/v1/calls?limit=0", headers=bearer("sup-token"))).status == 400
    assert (await client.get("/api/v1/calls?limit=x", headers=bearer("sup-token"))).status == 400
    backend.store_down = True
    response = await client.get("/api/v1/calls", headers=bearer("sup-token"))
    assert response.status == 503
    assert "Redis is down" in (await response.json())["error"]


@pytest.mark.parametrize(
    ("components", "status_code"),
    [
        ({"ami": "up", "redis": "up"}, 200),
        ({"ami": "up", "spool": "warning"}, 200),  # degraded, still serving: a balancer must not pull it
        ({"ami": "up", "redis": "down"}, 503),  # any component down
    ],
)
async def test_health_is_open_and_503_only_when_a_component_is_down(
    backend_and_client: tuple[Backend, TestClient[Any, Any]], components: dict[str, str], status_code: int
) -> None:
    """The handler's part: no token needed, the status code from the components, the body as is
    (what the controller reports under faults is asserted on the real system)."""
    backend, client = backend_and_client
    backend.health_status = {"status": "degraded", "components": components, "reasons": ["x"]}
    response = await client.get("/api/v1/health")
    assert response.status == status_code
    assert await response.json() == backend.health_status


async def test_metrics_are_open_and_rendered(backend_and_client: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = backend_and_client
    text = await (await client.get("/metrics")).text()
    assert "# TYPE hotline_calls_live gauge\nhotline_calls_live 3.0\n" in text
    assert 'x_total{q="a\\"b"} 1.5' in text


async def test_dialplan_reload_is_for_admins(backend_and_client: tuple[Backend, TestClient[Any, Any]]) -> None:
    backend, client = backend_and_client
    assert (await client.post("/api/v1/dialplans/reload", headers=bearer("sup-token"))).status == 403
    assert (await client.get("/api/v1/dialplans", headers=bearer("sup-token"))).status == 200
    response = await client.post("/api/v1/dialplans/reload", headers=bearer("admin-token"))
    assert response.status == 200
    assert (await response.json())["version"] == "def"
    assert backend.reloads == ["API request by root"]
    backend.broken_dialplan = True
    response = await client.post("/api/v1/dialplans/reload", headers=bearer("admin-token"))
    assert response.status == 422
    body = await response.json()
    assert body["ok"] is False
    assert body["version"] == "abc"
    assert body["problems"] == ["dali.yaml:3:1: error: nodes: required key is missing"]


async def test_recordings_need_a_supervisor_and_every_attempt_is_audited(
    backend_and_client: tuple[Backend, TestClient[Any, Any]], tmp_path: Path
) -> None:
    backend, client = backend_and_client
    backend.recording = tmp_path / "call.wav"
    backend.recording.write_bytes(b"RIFF....WAVE")
    url = "/api/v1/calls/kunming-1.1/recording"
    assert (await client.get(url)).status == 401
    assert (await client.get(url, headers=bearer("seat-token"))).status == 403
    response = await client.get(url, headers=bearer("sup-token"))
    assert response.status == 200
    assert await response.read() == b"RIFF....WAVE"
    assert (await client.get(url + "?kind=message", headers=bearer("sup-token"))).status == 404
    assert (await client.get(url + "?kind=../../etc/passwd", headers=bearer("sup-token"))).status == 400
    trail = [(e.who, e.action, e.result) for e in backend.audited]
    assert trail == [  # without a token: counted and logged, not audited (tests/unit/test_api_trust.py)
        ("seat", "recording.fetch", "denied"),
        ("sup", "recording.fetch.conversation", "allowed"),
        ("sup", "recording.fetch.message", "missing"),
    ]
    assert all(e.call_id == "kunming-1.1" for e in backend.audited)
    response = await client.get("/api/v1/audit", headers=bearer("admin-token"))
    assert len((await response.json())["audit"]) == 3


async def test_the_console_page_is_served_without_data(
    backend_and_client: tuple[Backend, TestClient[Any, Any]],
) -> None:
    _, client = backend_and_client
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["X-Frame-Options"] == "DENY"
    page = await response.text()
    assert "12345" in page
    assert "/api/v1/queues" in page
    assert "/api/v1/platforms" in page  # the province-wide view
    assert "13812345678" not in page  # the page itself carries no call data


async def test_a_seat_transfers_only_its_own_caller(backend_and_client: tuple[Backend, TestClient[Any, Any]]) -> None:
    backend, client = backend_and_client
    path = "/api/v1/calls/kunming-9.9/transfer"
    body = {"to": "province", "note": "跨市事项"}
    assert (await client.post(path, json=body)).status == 401
    accepted = await client.post(path, json=body, headers=bearer("seat-token"))  # the seat token is seat 1001's
    assert accepted.status == 202
    assert (await accepted.json())["to"] == "province"
    assert backend.transfers == [("kunming-9.9", "province", "1001", "跨市事项")]
    unknown = await client.post(path, json={"to": "mars"}, headers=bearer("sup-token"))
    assert unknown.status == 409
    assert (await client.post("/api/v1/calls/nope/transfer", json=body, headers=bearer("sup-token"))).status == 404
    assert (await client.post(path, json={}, headers=bearer("sup-token"))).status == 400
    bad_mode = await client.post(path, json={"to": "province", "mode": "sideways"}, headers=bearer("sup-token"))
    assert bad_mode.status == 400
    assert "attended" in (await bad_mode.json())["error"]


async def test_a_consultation_is_started_and_finished_by_its_seat(
    backend_and_client: tuple[Backend, TestClient[Any, Any]],
) -> None:
    backend, client = backend_and_client
    path = "/api/v1/calls/kunming-9.9/transfer"
    started = await client.post(path, json={"to": "province", "mode": "attended"}, headers=bearer("seat-token"))
    assert started.status == 202
    assert (await started.json())["mode"] == "attended"
    assert backend.modes == [TransferMode.ATTENDED]
    state = await client.get(path, headers=bearer("seat-token"))
    assert (await state.json())["state"] == "talking"
    assert (await client.post(f"{path}/complete", headers=bearer("seat-token"))).status == 202
    assert backend.finished == [("kunming-9.9", "complete")]
    none = await client.get(path, headers=bearer("seat-token"))  # over: an empty state, not a 404
    assert (none.status, await none.json()) == (200, {"call_id": "kunming-9.9", "state": "none"})
    assert (await client.get("/api/v1/calls/nope/transfer", headers=bearer("seat-token"))).status == 404
    refused = await client.post(f"{path}/three_way", headers=bearer("seat-token"))
    assert refused.status == 409
    assert "three-way" in (await refused.json())["error"]
    assert (await client.post(f"{path}/sideways", headers=bearer("seat-token"))).status == 404
    assert (await client.post(f"{path}/cancel", headers=bearer("seat-token"))).status == 503  # Asterisk away
    assert (await client.post("/api/v1/calls/nope/transfer/cancel", headers=bearer("seat-token"))).status == 404
    assert (await client.post(f"{path}/cancel")).status == 401


async def test_the_seat_desk_page_and_who_am_i(backend_and_client: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = backend_and_client
    page = await client.get("/seat")
    assert page.status == 200
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]  # no inline script runs
    assert 'src="/static/seat.js"' in await page.text()
    script = await client.get("/static/seat.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    text = await script.text()
    for path in ("/api/v1/me", "/api/v1/destinations", "/transfer/", "/case", "/api/v1/knowledge", "/events"):
        assert path in text
    assert (await client.get("/static/seat.css")).headers["Content-Type"].startswith("text/css")
    # only the listed files: nothing else of the package, no way out of it
    for other in ("/static/seat.html", "/static/__init__.py", "/static/..%2Fapi.py", "/static/%2e%2e%2fconfig.py"):
        assert (await client.get(other)).status == 404, other
    me = await (await client.get("/api/v1/me", headers=bearer("seat-token"))).json()
    assert (me["role"], me["seat"]) == ("seat", "1001")
    assert (await client.get("/api/v1/me")).status == 401


async def test_seats_see_where_they_may_hand_callers(backend_and_client: tuple[Backend, TestClient[Any, Any]]) -> None:
    """The handler's part: a token of any role (seat upwards), the backend's list in its envelope
    (which destinations and their link states: tests/integration/test_network.py)."""
    backend, client = backend_and_client
    for token in ("seat-token", "sup-token", "admin-token"):
        body = await (await client.get("/api/v1/destinations", headers=bearer(token))).json()
        assert body == {"destinations": await backend.destinations()}
    assert (await client.get("/api/v1/destinations")).status == 401
    assert (await client.get("/api/v1/destinations", headers=bearer("forged-token"))).status == 401


async def test_a_queue_where_nothing_was_offered_has_no_score(
    backend_and_client: tuple[Backend, TestClient[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """null, not 1.0: a supervisor must not read a perfect score that is no score (issue 18.3)."""
    backend, client = backend_and_client
    idle = QueueStats("general", 0, 0.0, 0, 0, 0, 0, 0, 0.0, 0.0)
    busy = QueueStats("dialect", 0, 0.0, 4, 2, 1, 1, 1, 17.5, 150.0)

    async def stats() -> list[QueueStats]:
        return [idle, busy]

    monkeypatch.setattr(backend, "queue_stats", stats)
    body = await (await client.get("/api/v1/queues", headers=bearer("sup-token"))).json()
    general, dialect = body["queues"]
    assert (general["answer_rate"], general["service_level_15s"], general["abandon_rate"]) == (None, None, None)
    assert (dialect["answer_rate"], dialect["service_level_15s"], dialect["abandon_rate"]) == (0.5, 0.25, 0.25)
    assert rate_metrics(idle) == []
    assert [(m.name, m.value) for m in rate_metrics(busy)] == [
        ("hotline_queue_answer_rate_24h", 0.5),
        ("hotline_queue_abandon_rate_24h", 0.25),
        ("hotline_queue_service_level_15s_24h", 0.25),
    ]


async def test_platforms_need_a_supervisor(backend_and_client: tuple[Backend, TestClient[Any, Any]]) -> None:
    """The handler's part: supervisors and admins only, the backend's list in its envelope, a 503
    naming Redis when it is away (the platforms' figures: tests/integration/test_network.py)."""
    backend, client = backend_and_client
    assert (await client.get("/api/v1/platforms", headers=bearer("seat-token"))).status == 403
    assert (await client.get("/api/v1/platforms")).status == 401
    for token in ("sup-token", "admin-token"):
        body = await (await client.get("/api/v1/platforms", headers=bearer(token))).json()
        assert body == {"platforms": await backend.platforms()}
    backend.redis_down = True
    response = await client.get("/api/v1/platforms", headers=bearer("sup-token"))
    assert response.status == 503
    assert "Redis: Connection refused" in (await response.json())["error"]


async def test_a_body_that_is_not_json_is_a_400(backend_and_client: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = backend_and_client
    headers = {**bearer("sup-token"), "Content-Type": "application/json"}
    response = await client.post("/api/v1/calls/kunming-9.9/transfer", data="{not json", headers=headers)
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["error"]
    response = await client.post("/api/v1/calls/kunming-9.9/transfer", data="[1, 2]", headers=headers)
    assert response.status == 400


class EventsBackend(Backend):
    """A backend whose platform events socket works (the bus needs no Redis to subscribe)."""

    def __init__(self) -> None:
        super().__init__()
        self.bus = EventBus(aioredis.Redis(port=1), platform="kunming")

    @property
    def events(self) -> EventBus:
        return self.bus


async def test_a_stopping_controller_closes_the_platform_events_socket_too() -> None:
    """Found (session 7 review): the stop closed the desks' and wallboards' sockets, not
    ``/api/v1/events``: a supervisor's tool listening there held the graceful stop as a browser
    did (and, never reading, noticed its client gone only at the next event). It goes with the
    others now (1001 "going away")."""
    backend = EventsBackend()
    client = TestClient(TestServer(build_api(backend, TOKENS)))
    await client.start_server()
    try:
        socket = await client.ws_connect("/api/v1/events", headers=TOKEN_HEADERS["sup"])
        await wait_until(lambda: len(backend.bus._subscribers) == 1, timeout_s=30)
        await client.app.shutdown()
        message = await socket.receive(timeout=30)
        assert message.type is WSMsgType.CLOSE and socket.close_code == 1001
        await wait_until(lambda: not backend.bus._subscribers, timeout_s=30)
    finally:
        await asyncio.wait_for(client.close(), 30)  # a handler left waiting would hold it for ever
