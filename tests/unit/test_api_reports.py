"""The report and call-search routes on a real Redis: roles, platform scope, CSV, bad input,
the audited caller search and its masked results, paging with a cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from calls.caller_index import CallerKeys
from calls.model import CallOutcome, CallRecord, CallState
from calls.store import RedisCallStore
from hotline.api import build_api
from hotline.redis_process import RedisProcess
from reports.search import CallSearch
from reports.service import ReportService, csv_text
from reports.store import RedisRollups
from tests.unit.test_api import Backend
from web.auth import ApiToken, TokenRegistry, token_sha256

TOKENS = TokenRegistry(
    [
        ApiToken(name="sup", role="supervisor", sha256=token_sha256("sup-token")),
        ApiToken(name="seat", role="seat", sha256=token_sha256("seat-token"), seat="1001"),
        ApiToken(name="prov", role="supervisor", sha256=token_sha256("prov-token"), platform="province"),
        ApiToken(name="dali", role="supervisor", sha256=token_sha256("dali-token"), platform="dali"),
    ]
)
H = {name: {"Authorization": f"Bearer {name}-token"} for name in ("sup", "seat", "prov", "dali")}
DAY = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in China
CALLER = "13812345678"


def call(n: int, platform: str = "kunming", **changes: Any) -> CallRecord:
    started = DAY + timedelta(minutes=n)
    fields: dict[str, Any] = {
        "call_id": f"{platform}-{n}", "platform": platform, "caller": CALLER if n % 2 else "13900000000",
        "state": CallState.ENDED, "started_at": started, "queue": "general", "queued_at": started,
        "seat": "1001", "seat_answered_at": started + timedelta(seconds=10), "ended_at": started + timedelta(minutes=2),
        "outcome": CallOutcome.ANSWERED, "survey_score": 1,
    }  # fmt: skip
    return CallRecord(**(fields | changes))


@pytest.fixture
async def api(redis_server: RedisProcess) -> AsyncIterator[tuple[Backend, TestClient[Any, Any]]]:
    connection = aioredis.Redis.from_url(redis_server.url)
    await connection.flushdb()
    keys = CallerKeys("test-secret")
    store = RedisCallStore(connection, timedelta(days=30), "kunming", keys)
    rollups = RedisRollups(connection, keep=timedelta(days=40), marker_ttl=timedelta(days=1))
    reports = ReportService(rollups, "kunming", "Asia/Shanghai", lambda what, job: None)
    for n in range(1, 31):
        record = call(n, outcome=CallOutcome.ANSWERED if n <= 25 else CallOutcome.VOICEMAIL)
        if n > 25:
            record = record.model_copy(update={"seat": "", "seat_answered_at": None, "queue": "dialect"})
        await store.save(record)
        await reports.on_call_ended(record)
    dali = call(1, platform="dali")
    await store.save(dali)
    await reports.on_call_ended(dali)
    backend = Backend(connection)
    search = CallSearch(connection, store.many, keys)
    client = TestClient(TestServer(build_api(backend, TOKENS, reports=(reports, search))))
    await client.start_server()
    yield backend, client
    await client.close()
    await connection.aclose()


REPORT = "/api/v1/reports/queues?from=2026-03-01&to=2026-03-31&by=day"


async def test_reports_need_a_supervisor_of_the_platform(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = api
    assert (await client.get(REPORT)).status == 401
    assert (await client.get(REPORT, headers=H["seat"])).status == 403
    assert (await client.get(REPORT, headers=H["dali"])).status == 403  # another prefecture's token
    body = await (await client.get(REPORT, headers=H["sup"])).json()
    rows = {row["queue"]: row for row in body["rows"]}
    assert body["timezone"] == "Asia/Shanghai" and body["platform"] == "kunming"
    assert rows["general"]["period"] == "2026-03-02"
    general = rows["general"]
    assert (general["offered"], general["answered"], general["answered_within_15s"]) == (25, 25, 25)
    assert rows["general"]["asa_s"] == 10.0 and rows["general"]["satisfaction_rate"] == 1.0
    assert rows["dialect"]["offered"] == 5 and rows["dialect"]["answer_rate"] == 0.0


async def test_a_prefecture_sees_only_its_own_the_province_any(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = api
    other = REPORT + "&platform=dali"
    assert (await client.get(other, headers=H["sup"])).status == 403
    body = await (await client.get(other, headers=H["prov"])).json()
    assert [(row["queue"], row["offered"]) for row in body["rows"]] == [("general", 1)]
    assert (await client.get(REPORT + "&platform=../x", headers=H["prov"])).status == 400


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("from=2026-03-01&to=2026-02-01", "before"),
        ("from=2026-03-01", "YYYY-MM-DD"),
        ("from=2024-01-01&to=2026-01-01", "at most 400 days"),
        ("from=2026-03-01&to=2026-03-02&by=year", "by is"),
        ("from=2026-03-01&to=2026-03-02&format=xlsx", "format"),
        ("from=2026-01-01&to=2026-02-01&by=hour", "by=hour covers at most 31 days"),
        ("from=2026-3-1&to=2026-03-02", "YYYY-MM-DD"),
    ],
)
async def test_bad_report_queries_are_refused(api: tuple[Backend, TestClient[Any, Any]], query: str, says: str) -> None:
    _, client = api
    response = await client.get(f"/api/v1/reports/queues?{query}", headers=H["sup"])
    assert response.status == 400
    assert says in (await response.json())["error"]
    assert (await client.get("/api/v1/reports/secrets?from=2026-03-01&to=2026-03-02", headers=H["sup"])).status == 400


async def test_every_report_downloads_as_csv(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    _, client = api
    for kind, dimension in (("queues", "queue"), ("seats", "seat"), ("ivr", "node"), ("cases", "unit")):
        response = await client.get(
            f"/api/v1/reports/{kind}?from=2026-03-01&to=2026-03-31&by=week&format=csv", headers=H["sup"]
        )
        assert response.status == 200
        assert response.content_type == "text/csv"
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="kunming-{kind}-20260301-20260331-week.csv"'
        )
        text = await response.text()
        assert text.startswith("\ufeffperiod," + dimension)
        assert CALLER not in text and "5678" not in text  # aggregates: no caller number at all
    seats = await (
        await client.get("/api/v1/reports/seats?from=2026-03-02&to=2026-03-02&format=csv", headers=H["sup"])
    ).text()
    header, row = seats.strip().split("\r\n")
    assert dict(zip(header.lstrip("\ufeff").split(","), row.split(","), strict=True))["calls"] == "25"


def test_csv_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    text = csv_text("ivr", [{"period": "2026-03-02", "node": '=HYPERLINK("x"),\n', "visits": 1, "exit.x": None}])
    assert "'=HYPERLINK" in text and '"\'=HYPERLINK(""x""),\n"' in text
    assert text.splitlines()[0] == "\ufeffperiod,node,exit.x,visits"


async def test_call_search_by_seat_pages_with_a_cursor(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    backend, client = api
    url = "/api/v1/calls/search?from=2026-03-02&to=2026-03-02&seat=1001&limit=10"
    assert (await client.get(url, headers=H["seat"])).status == 403
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        body = await (await client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=H["sup"])).json()
        seen += [c["call_id"] for c in body["calls"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"kunming-{n}" for n in range(25, 0, -1)]  # newest first, each once, no other seat's
    assert backend.audited == []  # not a search by caller
    outcome = await (
        await client.get("/api/v1/calls/search?from=2026-03-02&to=2026-03-02&outcome=voicemail", headers=H["sup"])
    ).json()
    assert [c["call_id"] for c in outcome["calls"]] == [f"kunming-{n}" for n in range(30, 25, -1)]
    none = await (await client.get("/api/v1/calls/search?from=2026-03-03&to=2026-03-04", headers=H["sup"])).json()
    assert none == {"platform": "kunming", "calls": [], "next_cursor": None}


async def test_a_search_by_caller_takes_the_whole_number_is_audited_and_masked(
    api: tuple[Backend, TestClient[Any, Any]],
) -> None:
    backend, client = api
    base = "/api/v1/calls/search?from=2026-03-01&to=2026-03-31"
    body = await (await client.get(f"{base}&caller={CALLER}&limit=200", headers=H["sup"])).json()
    assert len(body["calls"]) == 15 and all(c["caller"] == "138****5678" for c in body["calls"])
    assert CALLER not in str(body)
    (entry,) = backend.audited
    assert (entry.who, entry.action, entry.result) == ("sup", "calls.search.caller", "ok")
    assert CALLER not in str(entry)
    partial = await (await client.get(f"{base}&caller=1381234", headers=H["sup"])).json()
    assert partial["calls"] == []  # a part of a number finds nothing: exact numbers only
    for bad in ("138*", "138%0A1", "1" * 21, "abc"):
        assert (await client.get(f"{base}&caller={bad}", headers=H["sup"])).status == 400
    assert (await client.get(f"{base}&outcome=nope", headers=H["sup"])).status == 400
    assert (await client.get(f"{base}&queue=投诉", headers=H["sup"])).status == 200  # a Chinese queue name
    assert (await client.get(f"{base}&queue=a:b", headers=H["sup"])).status == 400  # not another key's name
    assert (await client.get(f"{base}&cursor=x", headers=H["sup"])).status == 400
    assert (await client.get(f"{base}&limit=201", headers=H["sup"])).status == 400
    assert (await client.get("/api/v1/calls/search?from=2026-01-01&to=2026-06-01", headers=H["sup"])).status == 400


async def test_the_province_searches_a_prefecture_a_prefecture_not_another(
    api: tuple[Backend, TestClient[Any, Any]],
) -> None:
    _, client = api
    url = "/api/v1/calls/search?from=2026-03-02&to=2026-03-02&platform=dali"
    assert (await client.get(url, headers=H["sup"])).status == 403
    body = await (await client.get(url, headers=H["prov"])).json()
    assert [c["call_id"] for c in body["calls"]] == ["dali-1"]
    # the call routes still serve call ids (the search route is registered first)
    assert (await client.get("/api/v1/calls/kunming-1.1", headers=H["sup"])).status == 200


async def test_the_answers_match_the_openapi_document(api: tuple[Backend, TestClient[Any, Any]]) -> None:
    from tests.unit.test_openapi import Checker
    from web.openapi import openapi_document

    _, client = api
    checker = Checker(openapi_document(client.app, title="t", version="0"))
    report, search = "/api/v1/reports/{kind}", "/api/v1/calls/search"
    await checker.check("GET", report, await client.get(REPORT, headers=H["sup"]))
    await checker.check("GET", report, await client.get(REPORT.replace("queues", "seats"), headers=H["sup"]))
    await checker.check("GET", report, await client.get(REPORT + "&format=xlsx", headers=H["sup"]))
    await checker.check("GET", report, await client.get(REPORT + "&platform=dali", headers=H["sup"]))
    url = "/api/v1/calls/search?from=2026-03-02&to=2026-03-02&limit=3"
    found = await checker.check("GET", search, await client.get(url, headers=H["sup"]))
    assert len(found["calls"]) == 3 and found["next_cursor"]
    await checker.check("GET", search, await client.get(url + "&caller=12", headers=H["sup"]))
    assert checker.checked == [
        f"GET {report} 200", f"GET {report} 200", f"GET {report} 400", f"GET {report} 403",
        f"GET {search} 200", f"GET {search} 400",
    ]  # fmt: skip
