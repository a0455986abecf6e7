"""Fuzz the HTTP API (hotline/api.py, api_tickets.py, api_network.py and the features' routes):
the real aiohttp app with every optional part (tests/fuzz/app.py), in-process, on a real Redis
(tickets, the ASR queue, seats, calls), behind the fake controller of tests/unit/test_api.py.

Generated JSON bodies (wrong types, huge numbers, deep nesting, unicode), raw bodies that are not
JSON at all, and every route with generated path parameters, queries and tokens. Whatever comes
in, the answer is never a 5xx other than the 503s the API means (a store away), and comes in
time. The features' routes have their own targets with stronger properties:
tests/fuzz/test_fuzz_features_api.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example as explicit
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from hotline.redis_process import RedisProcess
from tests.fuzz.app import CALL, ENDED_CALL, LIVE_CALL, MESSAGE, MISSED, PARKED, TICKET, Api, start_app
from tests.fuzz.harness import example, fuzz_target, run_async


@pytest.fixture(scope="module")
def api(
    fuzz_loop: asyncio.AbstractEventLoop, redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    started = fuzz_loop.run_until_complete(start_app(redis_server.url, tmp_path_factory.mktemp("spool")))
    assert started.api.routes == ROUTES, "a route was added or removed: update ROUTES"
    yield started.api
    fuzz_loop.run_until_complete(started.api.client.close())
    fuzz_loop.run_until_complete(started.redis.aclose())


# what a caller of the API may send: every JSON type, numbers beyond any range, unicode, nesting
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**300), 10**300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", "province", "police", "blind", "attended", "three_way", "dispatched", "signed", "闭环"]),
    st.text(max_size=600),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
fields = st.sampled_from(["to", "mode", "note", "reason", "action", "seat"])
bodies = st.one_of(
    st.dictionaries(fields, json_values, max_size=4),
    st.dictionaries(fields | st.text(max_size=8), json_values, max_size=6),
    json_values,
)
BODY_ROUTES = [
    f"/api/v1/calls/{CALL}/transfer",
    "/api/v1/calls/nope/transfer",
    f"/api/v1/calls/{CALL}/transfer/complete",
    f"/api/v1/tickets/{TICKET}/transition",
    "/api/v1/tickets/KM-20990101-0001/transition",
    "/api/v1/seats/1001/pause",
    "/api/v1/seats/1001/ready",
    "/api/v1/seats/1001/login",
    "/api/v1/seats/1002/logout",
    "/api/v1/seats/9999/pause",
]
ADMIN = {"Authorization": "Bearer admin-token"}
tokens = st.sampled_from(
    [
        {"Authorization": "Bearer admin-token"},
        {"Authorization": "Bearer sup-token"},
        {"Authorization": "Bearer seat-token"},
    ]
)


def _check(status: int, url: URL) -> None:
    """Never a 5xx, but the one the API means: 503 when Asterisk is away (the fake controller's
    AMI is, for a consultation's cancel). Redis is up: a 503 for it would hide a bug."""
    assert status < 500 or (status == 503 and url.path.endswith("/transfer/cancel")), f"HTTP {status} for {url}"


async def _send(api: Api, method: str, url: URL, headers: dict[str, str], data: bytes | None) -> int:
    async with api.client.request(method, url, headers=headers, data=data) as response:
        body = await response.read()
        if response.content_type == "application/json" and method != "HEAD":
            json.loads(body)  # what we send is JSON when we say so
        return response.status


@fuzz_target("api.bodies")
@given(route=st.sampled_from(BODY_ROUTES), body=bodies, headers=tokens)
def test_json_bodies_get_an_answer_not_an_error(
    fuzz_loop: asyncio.AbstractEventLoop, api: Api, route: str, body: Any, headers: dict[str, str]
) -> None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    url = URL(route)
    with example("api.bodies"):
        status = run_async(fuzz_loop, _send(api, "POST", url, {**headers, "Content-Type": "application/json"}, data))
        _check(status, url)


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.integers(1, 200_000).map(lambda n: ("[" * n + "]" * n).encode()),
    st.integers(1, 100_000).map(lambda n: ('{"to":' * n + "1" + "}" * n).encode()),
    st.integers(1, 50_000).map(lambda n: ('{"note":' + "[" * n + "]" * n + "}").encode()),
    st.integers(4000, 20_000).map(lambda n: ('{"to": ' + "9" * n + "}").encode()),
    st.sampled_from(
        [
            b'{"to": 1e999999}',
            b'{"to": NaN}',
            b'{"note": -Infinity}',
            b'{"to": "\\ud800"}',
            b'{"to": "province", "to": 3}',
            b"\xef\xbb\xbf{}",
            '{"to": "province"}'.encode("utf-16"),
            b'{"to": "\xff"}',
            b"null",
            b"",
        ]
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; charset=no-such-charset",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]
)


@fuzz_target("api.raw_bodies")
# issue 11: deep nesting was a 500 (RecursionError); so was a charset Python does not know
@explicit(route=BODY_ROUTES[0], data=b"[" * 100_000 + b"]" * 100_000, content_type="application/json", headers=ADMIN)
@explicit(route=BODY_ROUTES[0], data=b'{"note": ' + b"[" * 900 + b"]" * 900 + b"}", content_type="", headers=ADMIN)
@explicit(route=BODY_ROUTES[0], data=b"{}", content_type="application/json; charset=no-such-charset", headers=ADMIN)
@explicit(route=BODY_ROUTES[3], data=b'{"to": "dispatched", "note": "\\ud800"}', content_type="", headers=ADMIN)
@given(route=st.sampled_from(BODY_ROUTES), data=raw_bodies, content_type=content_types, headers=tokens)
def test_bodies_that_are_not_json_are_refused_not_crashed_on(
    fuzz_loop: asyncio.AbstractEventLoop, api: Api, route: str, data: bytes, content_type: str, headers: dict[str, str]
) -> None:
    url = URL(route)
    with example("api.raw_bodies"):
        status = run_async(fuzz_loop, _send(api, "POST", url, {**headers, "Content-Type": content_type}, data))
        _check(status, url)


# path parameters: the real ones, near misses, and anything (percent-encoded on the wire)
_known = st.sampled_from(
    [
        TICKET,
        CALL,
        "kunming-1.1",
        "1001",
        "1002",
        "pause",
        "complete",
        f"by-recording:{MESSAGE}",
        "by-recording:",
        "seq:kunming:20260302",
        LIVE_CALL,
        ENDED_CALL,
        MISSED,
        "km_housing_fund",
        "queues",
        "cases",
        "..",
        "%",
        "%00",
        "",
    ]
)
params = st.one_of(
    _known,
    _known,
    st.text(max_size=30),
    st.text(max_size=2000),
    st.builds(lambda a, b: a + b, st.sampled_from([TICKET, CALL, "by-recording:", "KM-", "*"]), st.text(max_size=10)),
)
query_keys = st.sampled_from([
    "limit", "state", "date", "platform", "overdue", "kind", "recording", "q", "matter_type", "from", "to", "by",
    "format", "cursor", "caller", "seat", "queue", "outcome", "case", "ended", "token",
])  # fmt: skip
query_values = st.one_of(
    st.sampled_from(
        ["1", "0", "-1", "1000", "1001", "9" * 5000, "x", "accepted", "2026-03-02", "2026-13-45", "all", "message"]
    ),
    st.sampled_from(["conversation", PARKED, MESSAGE, "true", "1_0", "١٢", "2026-03-01", "week", "csv", "路灯"]),
    st.text(max_size=30),
)
auth: st.SearchStrategy[dict[str, str]] = st.one_of(  # mostly a valid token: most of the API is behind one
    tokens,
    tokens,
    tokens,
    st.just({}),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(
        lambda value: {"Authorization": value}
    ),
)


# every route of the app (the fixture checks this list is complete: a new route is fuzzed too)
ROUTES = [
    ("GET", "/"),
    ("GET", "/api/v1/asr/parked"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/callbacks"),
    ("GET", "/api/v1/calls"),
    ("GET", "/api/v1/calls/search"),
    ("GET", "/api/v1/calls/{call_id}"),
    ("GET", "/api/v1/calls/{call_id}/history"),
    ("GET", "/api/v1/calls/{call_id}/recording"),
    ("GET", "/api/v1/calls/{call_id}/transfer"),
    ("GET", "/api/v1/desk/codes"),
    ("GET", "/api/v1/destinations"),
    ("GET", "/api/v1/dialplans"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/handoffs/{token}"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/knowledge"),
    ("GET", "/api/v1/knowledge/status"),
    ("GET", "/api/v1/knowledge/{entry_id}"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/monitors"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/platforms"),
    ("GET", "/api/v1/queues"),
    ("GET", "/api/v1/reports/{kind}"),
    ("GET", "/api/v1/seats"),
    ("GET", "/api/v1/seats/{seat_id}/callbacks"),
    ("GET", "/api/v1/seats/{seat_id}/events"),
    ("GET", "/api/v1/seats/{seat_id}/phone"),
    ("GET", "/api/v1/tickets"),
    ("GET", "/api/v1/tickets/{ticket_id}"),
    ("GET", "/api/v1/tickets/{ticket_id}/audio"),
    ("GET", "/api/v1/units"),
    ("GET", "/api/v1/units/{unit_id}"),
    ("GET", "/favicon.ico"),
    ("GET", "/metrics"),
    ("GET", "/seat"),
    ("GET", "/static/vendor/{name}"),
    ("GET", "/static/{name}"),
    ("GET", "/wall"),
    ("POST", "/api/v1/asr/parked/retry"),
    ("POST", "/api/v1/calls/{call_id}/case"),
    ("POST", "/api/v1/calls/{call_id}/link"),
    ("POST", "/api/v1/calls/{call_id}/monitor"),
    ("POST", "/api/v1/calls/{call_id}/transfer"),
    ("POST", "/api/v1/calls/{call_id}/transfer/{action}"),
    ("POST", "/api/v1/dialplans/reload"),
    ("POST", "/api/v1/knowledge/reload"),
    ("POST", "/api/v1/monitors/{monitor_id}/mode"),
    ("POST", "/api/v1/monitors/{monitor_id}/stop"),
    ("POST", "/api/v1/seats/{seat_id}/callback"),
    ("POST", "/api/v1/seats/{seat_id}/{action}"),
    ("POST", "/api/v1/tickets/{ticket_id}/transition"),
    ("POST", "/api/v1/units/reload"),
]
routes = st.one_of(st.sampled_from(ROUTES), st.sampled_from([r for r in ROUTES if "{" in r[1]]))


@fuzz_target("api.paths")
@explicit(  # issue 11: a ticket id that names another key (the ticket a message became) was a 500
    route=("GET", "/api/v1/tickets/{ticket_id}"),
    values=[f"by-recording:{MESSAGE}", ""],
    query=[],
    method="route",
    headers={"Authorization": "Bearer sup-token"},
)
@given(
    route=routes,
    values=st.lists(params, min_size=2, max_size=2),
    query=st.lists(st.tuples(query_keys | st.text(max_size=8), query_values), max_size=4),
    method=st.sampled_from(["route", "route", "route", "GET", "POST", "DELETE", "PUT"]),
    headers=auth,
)
def test_every_route_answers_generated_paths_and_queries(
    fuzz_loop: asyncio.AbstractEventLoop,
    api: Api,
    route: tuple[str, str],
    values: list[str],
    query: list[tuple[str, str]],
    method: str,
    headers: dict[str, str],
) -> None:
    route_method, template = route
    path = template
    for value in values:  # fill the template's {parameters} in order
        start = path.find("{")
        if start < 0:
            break
        path = path[:start] + quote(value, safe="") + path[path.index("}", start) + 1 :]
    query_string = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    url = URL(path + (f"?{query_string}" if query_string else ""), encoded=True)
    with example("api.paths"):
        status = run_async(fuzz_loop, _send(api, route_method if method == "route" else method, url, headers, None))
        _check(status, url)
