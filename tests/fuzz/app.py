"""The app the API fuzzers run: build_api with every optional part that builds cheaply in a unit
test (hotline/controller.py wires the same parts): the case desk and the seats' sockets, the
units directory and desk codes (the shipped directory/), the knowledge base (the shipped
knowledge_base/), the reports and the call search, the seats' click-to-call and the monitors —
on a real Redis, behind the fake controller of tests/unit/test_api.py, with an in-memory AMI
(tests/support/fake_ami_link.py) and a fake ACD behind dialback's own Protocol.

Only the wallboard's socket (hotline/wallboard_wiring.py, which needs the whole Config and the
ACD engine) is not here."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from acd.config import SeatConfig
from acd.events import EventBus
from acd.model import Offer, QueuedCall
from acd.seats import SeatService
from calls.callbacks import RedisCallbackList
from calls.caller_index import CallerKeys
from calls.model import CallOutcome, CallRecord, CallState
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from cases.routes import CaseDesk
from cases.seat_events import SeatEventHub
from cases.service import CaseService
from cases.store import CaseStore
from common.clock import system_clock
from dialback.config import DialbackConfig
from dialback.routes import DialbackDesk
from dialback.service import DialbackService
from hotline.api import build_api
from hotline.case_lookups import DirectoryUnits, KnowledgeEntries
from ivr.calendar import PlatformCalendar
from knowledge.index import JiebaSegmenter
from knowledge.service import KnowledgeService
from knowledge.uses import RedisUseStore
from monitor.service import MonitorService, MonitorSettings, SeatCall
from reports.search import CallSearch
from reports.service import ReportService
from reports.store import RedisRollups
from tests.support.fake_ami_link import FakeAmiLink
from tests.unit.test_api import Backend
from tickets.model import TicketCategory, Transcript
from units.registry import DeskRegistry
from voicemail.jobs import VoicemailMeta
from web.auth import ApiToken, TokenRegistry, token_sha256
from webphone.routes import phone_book

REPO = Path(__file__).resolve().parents[2]
ACCEPTED = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
TICKET = "KM-20260302-0001"
MESSAGE = "voicemail/kunming-1.wav"
PARKED = "voicemail/kunming-2.wav"
CALL = "kunming-9.9"  # the seat 1001's call in the fake controller
LIVE_CALL = "kunming-5.5"  # a call seat 1001 answered and talks on: its case, its monitor
ENDED_CALL = "kunming-4.4"  # the same caller's earlier call (the history)
MISSED = "kunming-3.3"  # a caller who hung up in the queue: a callback entry
CALLER = "13812345678"
SEATS = ("1001", "1002")
CALLER_SECRET = "fuzz-caller-index-secret"

# every role, and the tokens of other seats and platforms (who must be refused)
TOKENS = TokenRegistry(
    [
        ApiToken(name="sup", role="supervisor", sha256=token_sha256("sup-token")),
        ApiToken(name="seat", role="seat", sha256=token_sha256("seat-token"), seat="1001"),
        ApiToken(name="root", role="admin", sha256=token_sha256("admin-token")),
        ApiToken(name="seat2", role="seat", sha256=token_sha256("seat2-token"), seat="1002"),
        ApiToken(name="dali-seat", role="seat", sha256=token_sha256("dali-seat-token"), seat="1001", platform="dali"),
        ApiToken(name="dali-sup", role="supervisor", sha256=token_sha256("dali-sup-token"), platform="dali"),
        ApiToken(name="dali-root", role="admin", sha256=token_sha256("dali-admin-token"), platform="dali"),
        ApiToken(name="prov", role="supervisor", sha256=token_sha256("prov-token"), platform="province"),
        ApiToken(
            name="prov-seat", role="seat", sha256=token_sha256("prov-seat-token"), seat="1001", platform="province"
        ),
    ]
)
BEARER = {
    name: {"Authorization": f"Bearer {name}-token"}
    for name in ("sup", "seat", "admin", "seat2", "dali-seat", "dali-sup", "dali-admin", "prov", "prov-seat")
}
# what no answer may ever show: a token, a secret of ours, a traceback
SECRETS = (
    *(f"{name}-token" for name in BEARER),
    CALLER_SECRET,
    *(f"s3cret-{seat}" for seat in SEATS),
    "Traceback (most recent call last)",
)


class FuzzBackend(Backend):
    """The fake controller of the API unit tests, with a real seat service and event bus."""

    def __init__(self, client: aioredis.Redis, spool_dir: Path) -> None:
        super().__init__(client, spool_dir)
        self._events = EventBus(client, platform="kunming")
        self._seats = SeatService(
            tuple(SeatConfig(id=seat, secret=f"s3cret-{seat}") for seat in SEATS),
            client,
            events=self._events,
            clock=system_clock,
            platform="kunming",
        )

    @property
    def seats(self) -> SeatService:
        return self._seats

    @property
    def events(self) -> EventBus:
        return self._events


class NoAcd:
    """dialback's ``Acd``: nobody waits, nothing offered."""

    def waiting(self, queue: str | None = None) -> list[QueuedCall]:
        return []

    def offers(self) -> list[Offer]:
        return []

    async def own_call_ended(self, seat_id: str, record_id: str, answered_at: float) -> None:
        return None


class SeatCalls:
    """monitor's ``SeatCalls``: seat 1001 talks on LIVE_CALL."""

    def seat_call(self, call_id: str) -> SeatCall | None:
        return SeatCall(LIVE_CALL, "1001", "PJSIP/1001-0000001a") if call_id == LIVE_CALL else None

    def phone_busy(self, seat_id: str) -> bool:
        return False


class Api:
    """The app's test client and its routes: (method, path template)."""

    def __init__(
        self, client: TestClient[web.Request, web.Application], routes: list[tuple[str, str]], app: web.Application
    ) -> None:
        self.client = client
        self.routes = routes
        self.app = app

    def __repr__(self) -> str:  # in a falsifying example
        return "Api(…)"


@dataclass(frozen=True)
class Started:
    api: Api
    redis: aioredis.Redis
    backend: FuzzBackend


def _call(call_id: str, **changes: object) -> CallRecord:
    fields: dict[str, object] = {
        "call_id": call_id, "platform": "kunming", "caller": CALLER, "started_at": ACCEPTED, "queue": "general",
        "seat": "1001", "state": CallState.IN_IVR, "call_recording": f"recordings/{call_id}.wav",
    }  # fmt: skip
    return CallRecord.model_validate(fields | changes)


async def _seed(backend: FuzzBackend, spool: Path, calls: RedisCallStore, tracker: CallTracker) -> None:
    (spool / "voicemail").mkdir(parents=True)
    (spool / MESSAGE).write_bytes(b"RIFF....WAVE")
    await backend.tickets.create_from_voicemail(
        recording=MESSAGE,
        platform="kunming",
        caller=CALLER,
        call_id="kunming-1",
        accepted_at=ACCEPTED,
        transcript=Transcript(text="路灯坏了"),
        category=TicketCategory.COMPLAINT,
    )
    queue = backend.asr_queue
    await queue.ensure_group()
    await queue.enqueue(PARKED, VoicemailMeta(platform="kunming", caller=CALLER))
    for job in await queue.read_new("fuzz", 1, 1):
        await queue.park(job, "no speech model", 3, ACCEPTED)
    now = system_clock()
    live = _call(LIVE_CALL, started_at=now)
    tracker._live[LIVE_CALL] = live  # what channel_created + bind leave in memory
    await calls.save(live)
    ended = now - timedelta(days=1)  # within the history's window
    await calls.save(
        _call(ENDED_CALL, started_at=ended, state=CallState.ENDED, ended_at=ended, outcome=CallOutcome.ANSWERED)
    )


async def start_app(redis_url: str, spool: Path) -> Started:
    """The whole app on a flushed Redis, its fixtures seeded, its test server started."""
    connection = aioredis.Redis.from_url(redis_url)
    await connection.flushdb()
    backend = FuzzBackend(connection, spool)
    keys = CallerKeys(CALLER_SECRET)
    calendar = PlatformCalendar()
    calls = RedisCallStore(connection, timedelta(days=30), "kunming", keys)
    tracker = CallTracker(calls, "kunming", system_clock)
    await _seed(backend, spool, calls, tracker)
    callbacks = RedisCallbackList(connection, "kunming")
    await callbacks.on_call_ended(
        _call(MISSED, state=CallState.ENDED, seat="", ended_at=ACCEPTED, outcome=CallOutcome.ABANDONED)
    )

    shutil.copytree(REPO / "directory", spool / "directory")
    shutil.copytree(REPO / "knowledge_base", spool / "knowledge_base")
    desk = DeskRegistry(spool / "directory")
    desk.load_initial()
    knowledge = KnowledgeService(
        spool / "knowledge_base", "kunming", RedisUseStore(connection), segmenter=JiebaSegmenter()
    )
    await knowledge.load_initial()
    cases = CaseService(
        store=CaseStore(connection, backend.tickets, lambda _platform: calendar, keys),
        live=tracker,
        stored=calls,
        units=DirectoryUnits(desk),
        knowledge=KnowledgeEntries(knowledge),
        events=backend.events,
        clock=system_clock,
    )
    ami = FakeAmiLink()
    dialback = DialbackService(
        config=DialbackConfig(retry_after_s=600), blended=False, seat_ring_s=15, ami=ami, acd=NoAcd(),
        seats=backend.seats, tracker=tracker, entries=callbacks, events=backend.events, clock=system_clock,
        recordings_dir=None, area_code="0871",
    )  # fmt: skip
    rollups = RedisRollups(connection, keep=timedelta(days=40), marker_ttl=timedelta(days=1))
    app = build_api(
        backend,
        TOKENS,
        desk=desk,
        knowledge=knowledge,
        cases=CaseDesk(cases, SeatEventHub(backend.events, cases), TOKENS, frozenset(SEATS)),
        monitors=MonitorService(
            ami, SeatCalls(), MonitorSettings(frozenset({"1090", "1001"}), 20.0, "kunming"), backend
        ),
        dialback=DialbackDesk(dialback, backend.tickets),
        reports=(
            ReportService(rollups, "kunming", "Asia/Shanghai", lambda _what, _job: None),
            CallSearch(connection, calls.many, keys),
        ),
        phones=phone_book([("1001", "", "browser", "s3cret-1001"), ("1002", "", "sip", None)], 8089, None, ()),
    )
    routes = sorted(
        {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None and r.method != "HEAD"}
    )
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    return Started(Api(client, routes, app), connection, backend)


async def writes(redis: aioredis.Redis) -> int:
    """Redis' count of writes so far (saving is off: it never resets)."""
    info = await redis.info("persistence")
    return int(info["rdb_changes_since_last_save"])
