"""Fuzz the features' HTTP routes (cases/, knowledge/, units/, reports/, dialback/, monitor/) in
the whole app of tests/fuzz/app.py, with the tokens of every role, seat and platform.

Properties, whatever comes in: no 5xx; valid JSON when the answer says JSON; no traceback, token
or secret in any answer; a missing or unknown token is a 401 and a token of the wrong role,
seat or platform a 403 on every route that needs one (read from the app, so a new route is
covered) — and such a refused request writes nothing to Redis (the audit trail of the fake
controller is in memory: the real one writes refusals to it by design)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from hotline.redis_process import RedisProcess
from tests.fuzz.app import BEARER, ENDED_CALL, LIVE_CALL, MISSED, SECRETS, TICKET, Started, start_app, writes
from tests.fuzz.harness import example, fuzz_target, run_async
from web.auth import Role

FEATURE_PREFIXES = (
    "/api/v1/calls/{call_id}/case",
    "/api/v1/calls/{call_id}/link",
    "/api/v1/calls/{call_id}/history",
    "/api/v1/calls/{call_id}/monitor",
    "/api/v1/calls/search",
    "/api/v1/seats/{seat_id}/events",
    "/api/v1/seats/{seat_id}/callback",
    "/api/v1/knowledge",
    "/api/v1/units",
    "/api/v1/desk/",
    "/api/v1/reports/",
    "/api/v1/monitors",
)
RANK: dict[Role, int] = {"seat": 0, "supervisor": 1, "admin": 2}
ROLE_OF = {
    "seat": "seat", "seat2": "seat", "sup": "supervisor", "admin": "admin", "dali-seat": "seat",
    "dali-sup": "supervisor", "dali-admin": "admin", "prov": "supervisor", "prov-seat": "seat",
}  # fmt: skip


@pytest.fixture(scope="module")
def started(
    fuzz_loop: asyncio.AbstractEventLoop, redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Started]:
    app = fuzz_loop.run_until_complete(start_app(redis_server.url, tmp_path_factory.mktemp("spool")))
    yield app
    fuzz_loop.run_until_complete(app.api.client.close())
    fuzz_loop.run_until_complete(app.redis.aclose())


def _feature_routes(started: Started) -> list[tuple[str, str, Role | None]]:
    """The features' routes: (method, template, the role its handler requires)."""
    found = []
    for route in started.api.app.router.routes():
        if route.resource is None or route.method == "HEAD":
            continue
        template = route.resource.canonical
        if template.startswith(FEATURE_PREFIXES):
            found.append((route.method, template, getattr(route.handler, "required_role", None)))
    return sorted(found, key=lambda r: (r[0], r[1]))


def test_every_feature_is_in_the_app(started: Started) -> None:
    """Each optional part is built (a part left out of tests/fuzz/app.py would go unfuzzed)."""
    assert [(method, template) for method, template, _role in _feature_routes(started)] == [
        ("GET", "/api/v1/calls/search"),
        ("GET", "/api/v1/calls/{call_id}/history"),
        ("GET", "/api/v1/desk/codes"),
        ("GET", "/api/v1/knowledge"),
        ("GET", "/api/v1/knowledge/status"),
        ("GET", "/api/v1/knowledge/{entry_id}"),
        ("GET", "/api/v1/monitors"),
        ("GET", "/api/v1/reports/{kind}"),
        ("GET", "/api/v1/seats/{seat_id}/callbacks"),
        ("GET", "/api/v1/seats/{seat_id}/events"),
        ("GET", "/api/v1/units"),
        ("GET", "/api/v1/units/{unit_id}"),
        ("POST", "/api/v1/calls/{call_id}/case"),
        ("POST", "/api/v1/calls/{call_id}/link"),
        ("POST", "/api/v1/calls/{call_id}/monitor"),
        ("POST", "/api/v1/knowledge/reload"),
        ("POST", "/api/v1/monitors/{monitor_id}/mode"),
        ("POST", "/api/v1/monitors/{monitor_id}/stop"),
        ("POST", "/api/v1/seats/{seat_id}/callback"),
        ("POST", "/api/v1/units/reload"),
    ]


# the real object of each path parameter: most requests get past the 404s to the handler's work
REAL = {
    "call_id": [LIVE_CALL, ENDED_CALL],
    "seat_id": ["1001", "1002"],
    "kind": ["queues", "seats", "ivr", "cases"],
    "entry_id": ["km-gjj-tiqu", "prov-hukou-qianyi"],
    "unit_id": ["km_housing_fund"],
    "monitor_id": ["mon-0"],
}


def _parameter(data: st.DataObject, template: str) -> str:
    name = template[template.index("{") + 1 : template.index("}")] if "{" in template else ""
    return data.draw(st.sampled_from(REAL.get(name, [""])) | ids, label=name or "no parameter")


def _fill(template: str, values: list[str]) -> str:
    path = template
    for value in values:
        start = path.find("{")
        if start < 0:
            break
        path = path[:start] + quote(value, safe="") + path[path.index("}", start) + 1 :]
    return path


async def _send(
    started: Started, method: str, url: URL, headers: dict[str, str], data: bytes | None
) -> tuple[int, str, str]:
    async with started.api.client.request(method, url, headers=headers, data=data) as response:
        body = (await response.read()).decode("utf-8", "replace")
        return response.status, response.content_type, body


def _check(status: int, content_type: str, body: str, url: URL) -> None:
    assert status < 500, f"HTTP {status} for {url}: {body[:300]}"
    if content_type == "application/json":
        json.loads(body)
    for secret in SECRETS:
        assert secret not in body, f"{secret!r} in the answer to {url}"


# the real ids (so that requests get past the 404s), near misses and anything
SAMPLE_IDS = [
    LIVE_CALL, ENDED_CALL, MISSED, TICKET, "..", "%", "", "1001", "1002", "9999", "km_housing_fund", "km-gjj-tiqu",
    "prov-hukou-qianyi", "queues", "seats", "ivr", "cases", "mon-0", "dali-1.1",
]  # fmt: skip
ids = st.one_of(
    st.sampled_from(SAMPLE_IDS),
    st.text(max_size=20),
    st.text(max_size=300),
)
# an id the router takes to the route (not "..", which the URL's normalisation takes elsewhere)
routable_ids = st.sampled_from(["km-gjj-tiqu", "km_housing_fund", "queues", "cases", "mon-0"]) | st.text(
    "abcdefghijklmnopqrstuvwxyz0123456789-_.:", min_size=1, max_size=20
).filter(lambda value: value.strip(".") != "")
# half of them a token of this platform (to get to the handlers' work), half any role's or platform's
tokens = (st.sampled_from(["seat", "sup", "admin"]) | st.sampled_from(sorted(BEARER))).map(lambda name: BEARER[name])
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.text(max_size=3000),
    ids,
    st.sampled_from(["listen", "whisper", "barge", "1090", "1001", "answered", "dispatched", "complaint"]),
    st.sampled_from(["housing_fund", "路灯", "km-gjj-tiqu", "km_housing_fund", "五华区青年路", "a\r\nb", "x" * 70]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
fields = st.sampled_from([
    "category", "unit", "outcome", "request", "matter_type", "location", "knowledge_entry", "ticket_id", "entry",
    "phone", "mode", "note",
])  # fmt: skip
valid_case = st.fixed_dictionaries(
    {
        "category": st.sampled_from(["complaint", "consultation", "report"]),
        "unit": st.sampled_from(["km_housing_fund", "wuhua-street", "nope"]),
        "outcome": st.sampled_from(["answered", "dispatched"]),
        "request": st.text(max_size=50),
    },
    optional={
        "matter_type": st.sampled_from(["housing_fund", "路灯", ""]),
        "knowledge_entry": st.sampled_from(["km-gjj-tiqu", "prov-hukou-qianyi", "kb-x"]),
        "location": st.text(max_size=20),
    },
)
bodies = st.one_of(
    st.dictionaries(fields, json_values, max_size=5),
    valid_case,
    st.fixed_dictionaries({"ticket_id": ids}),
    st.fixed_dictionaries({"entry": ids}) | st.fixed_dictionaries({"ticket_id": ids, "entry": ids}),
    st.fixed_dictionaries({"phone": json_values, "mode": json_values}),
    json_values,
)


@fuzz_target("api.feature_bodies")
@given(data=st.data(), body=bodies, headers=tokens)
def test_feature_bodies_get_an_answer_not_an_error(
    fuzz_loop: asyncio.AbstractEventLoop, started: Started, data: st.DataObject, body: Any, headers: dict[str, str]
) -> None:
    posts = [template for method, template, _role in _feature_routes(started) if method == "POST"]
    template = data.draw(st.sampled_from(posts), label="route")
    url = URL(_fill(template, [_parameter(data, template)]), encoded=True)
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    with example("api.feature_bodies"):
        answer = run_async(fuzz_loop, _send(started, "POST", url, {**headers, "Content-Type": "application/json"}, raw))
        _check(*answer, url)


query_keys = st.sampled_from([
    "q", "matter_type", "limit", "platform", "from", "to", "by", "format", "cursor", "caller", "seat", "queue",
    "outcome", "case", "ended", "token", "access_token",
])  # fmt: skip
SAMPLE_VALUES = [
    "9" * 400, "1", "0", "-1", "51", "2026-03-01", "2026-03-31", "2025-01-01", "2026-02-30", "day", "week", "month",
    "hour", "csv", "json", "kunming", "dali", "province", "13812345678", "1001", "answered", "路灯",
]  # fmt: skip
query_values = st.one_of(
    st.sampled_from(SAMPLE_VALUES),
    st.text(max_size=30),
    st.text(max_size=500),
)

generated_queries = st.lists(st.tuples(query_keys | st.text(max_size=8), query_values), max_size=5)
queries = st.one_of(  # half of them a valid range, for the reports and the search to get past it
    generated_queries,
    st.builds(lambda extra: [("from", "2026-03-01"), ("to", "2026-03-31"), *extra], generated_queries),
)


@fuzz_target("api.feature_queries")
@given(data=st.data(), query=queries, headers=tokens)
def test_feature_paths_and_queries_get_an_answer_not_an_error(
    fuzz_loop: asyncio.AbstractEventLoop,
    started: Started,
    data: st.DataObject,
    query: list[tuple[str, str]],
    headers: dict[str, str],
) -> None:
    method, template, _role = data.draw(st.sampled_from(_feature_routes(started)), label="route")
    query_string = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    path = _fill(template, [_parameter(data, template)])
    url = URL(path + (f"?{query_string}" if query_string else ""), encoded=True)
    with example("api.feature_queries"):
        answer = run_async(fuzz_loop, _send(started, method, url, headers, b"{}" if method == "POST" else None))
        _check(*answer, url)


def _wrong_tokens(method: str, template: str, role: Role | None) -> list[tuple[str, dict[str, str], int]]:
    """(what, headers, status) of every token that must be refused on this route (its path
    names seat 1001's own call or seat, as the token of seat 1001 would)."""
    refused: list[tuple[str, dict[str, str], int]] = [
        ("no token", {}, 401),
        ("an unknown token", {"Authorization": "Bearer nope-token"}, 401),
        ("not a bearer", {"Authorization": "Basic c2VhdDpzZWF0"}, 401),
    ]
    if template.endswith("/events"):  # the seat socket: no header means a token in the first message
        refused = refused[1:]
    needed = role or "seat"
    own_thing = "{call_id}" in template or "{seat_id}" in template
    for name, headers in BEARER.items():
        token_role: Role = ROLE_OF[name]  # type: ignore[assignment]
        another_platform = name.startswith("dali")
        province_change = name.startswith("prov") and method == "POST"
        below = RANK[token_role] < RANK[needed]
        other_seat = name == "seat2" and own_thing
        province_seat_socket = name == "prov-seat" and template.endswith("/events")
        if another_platform or province_change or below or other_seat or province_seat_socket:
            refused.append((name, headers, 403))
    return refused


@fuzz_target("api.wrong_tokens")
@given(data=st.data(), body=bodies, query=st.lists(st.tuples(query_keys, query_values), max_size=3))
def test_wrong_tokens_are_refused_and_write_nothing(
    fuzz_loop: asyncio.AbstractEventLoop,
    started: Started,
    data: st.DataObject,
    body: Any,
    query: list[tuple[str, str]],
) -> None:
    method, template, role = data.draw(st.sampled_from(_feature_routes(started)), label="route")
    what, headers, status = data.draw(st.sampled_from(_wrong_tokens(method, template, role)), label="token")
    path = template.replace("{call_id}", LIVE_CALL).replace("{seat_id}", "1001")
    path = _fill(path, [data.draw(routable_ids, label="other parameter")])
    query_string = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query if "token" not in k)
    url = URL(path + (f"?{query_string}" if query_string else ""), encoded=True)
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8") if method == "POST" else None

    async def refused() -> tuple[tuple[int, str, str], int]:
        before = await writes(started.redis)
        answer = await _send(started, method, url, {**headers, "Content-Type": "application/json"}, raw)
        return answer, await writes(started.redis) - before

    with example("api.wrong_tokens"):
        answer, written = run_async(fuzz_loop, refused())
        _check(*answer, url)
        assert answer[0] == status, f"{what} on {method} {url}: HTTP {answer[0]}, not {status}: {answer[2][:200]}"
        assert written == 0, f"{what} on {method} {url} was refused but wrote {written} times to Redis"
