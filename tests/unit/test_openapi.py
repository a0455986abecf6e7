"""The OpenAPI document (web/openapi.py): every route described, the document valid OpenAPI 3.1
(openapi-spec-validator), and live answers of the real aiohttp app — on a real Redis, with the
shipped units directory and knowledge base — valid against the schemas the document gives for
their method, path and status (jsonschema's OAS 3.1 dialect, strict: a field the model does not
name fails)."""

from __future__ import annotations

import copy
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from hotline.api import build_api
from hotline.redis_process import RedisProcess
from knowledge.index import JiebaSegmenter
from knowledge.service import KnowledgeService
from knowledge.uses import RedisUseStore
from tests.fuzz.app import FuzzBackend, start_app
from tests.unit.test_api import HANDOFF_TOKEN
from tests.unit.test_cases import DISPATCH, Desk, H
from tests.unit.test_cases import desk as case_desk  # noqa: F401 - the case desk's fixture, on its own app
from tickets.model import TicketCategory, Transcript
from units.registry import DeskRegistry
from web.auth import ApiToken, TokenRegistry, token_sha256
from web.openapi import describe, openapi_document, undescribed

REPO = Path(__file__).resolve().parents[2]
DOC_URI = "urn:hotline12345:openapi"
TOKENS = TokenRegistry(
    [
        ApiToken(name="sup", role="supervisor", sha256=token_sha256("sup-token")),
        ApiToken(name="seat", role="seat", sha256=token_sha256("seat-token"), seat="1001"),
        ApiToken(name="root", role="admin", sha256=token_sha256("admin-token")),
        ApiToken(name="prov", role="supervisor", sha256=token_sha256("prov-token"), platform="province"),
    ]
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SUP, SEAT, ADMIN, PROVINCE = (bearer(f"{who}-token") for who in ("sup", "seat", "admin", "prov"))


@pytest.fixture
async def api(client: aioredis.Redis, tmp_path: Path) -> AsyncIterator[tuple[web.Application, TestClient[Any, Any]]]:
    """The app as the shell builds it, with every optional part (units, knowledge)."""
    (tmp_path / "voicemail").mkdir()
    (tmp_path / "voicemail" / "kunming-1.wav").write_bytes(b"RIFF....WAVE")
    backend = FuzzBackend(client, tmp_path)
    await backend.tickets.create_from_voicemail(
        recording="voicemail/kunming-1.wav",
        platform="kunming",
        caller="13812345678",
        call_id="kunming-1",
        accepted_at=datetime(2026, 3, 2, 1, 0, tzinfo=UTC),
        transcript=Transcript(text="路灯坏了"),
        category=TicketCategory.COMPLAINT,
    )
    shutil.copytree(REPO / "directory", tmp_path / "directory")
    desk = DeskRegistry(tmp_path / "directory")
    desk.load_initial()
    shutil.copytree(REPO / "knowledge_base", tmp_path / "knowledge_base")
    knowledge = KnowledgeService(
        tmp_path / "knowledge_base",
        "kunming",
        RedisUseStore(client),
        clock=lambda: datetime(2026, 6, 1, tzinfo=UTC),
        segmenter=JiebaSegmenter(),
    )
    await knowledge.load_initial()
    app = build_api(backend, TOKENS, desk=desk, knowledge=knowledge)
    http = TestClient(TestServer(app))
    await http.start_server()
    yield app, http
    await http.close()


async def test_every_route_is_described(
    api: tuple[web.Application, TestClient[Any, Any]],
    case_desk: Desk,  # noqa: F811 - the fixture
) -> None:
    """A route added without ``@describe`` on its handler is named here (method, path, handler).
    The apps: the shell's with its optional parts (units, knowledge), and the case desk's; a new
    optional part of build_api belongs in the ``api`` fixture above."""
    missing = undescribed(api[0]) + undescribed(case_desk.client.app)
    assert not missing, "routes without @describe (web/openapi.py; docs/api.md, OpenAPI):\n  " + "\n  ".join(missing)


async def test_the_whole_apps_document_is_served(redis_server: RedisProcess, tmp_path: Path) -> None:
    """The app with every optional part (tests/fuzz/app.py, as the controller wires it): its
    document is served and valid. Two features' models of one name (knowledge's and reports'
    SearchAnswer) made it a 500 (found by tests/fuzz/test_fuzz_api.py)."""
    started = await start_app(redis_server.url, tmp_path)
    try:
        assert undescribed(started.api.app) == []
        response = await started.api.client.get("/api/v1/openapi.json")
        assert response.status == 200, await response.text()
        document = await response.json()
        validate_spec(document)
        assert {"/api/v1/calls/search", "/api/v1/knowledge", "/api/v1/monitors"} <= set(document["paths"])
    finally:
        await started.api.client.close()
        await started.redis.aclose()


def test_the_schemas_refuse_what_a_model_does_not_say() -> None:
    """The checker is not a rubber stamp: a wrong type, a missing field, a field no model names."""
    app = build_api(FuzzBackend(aioredis.Redis(port=1), Path("/nonexistent")), TOKENS)
    checker = Checker(openapi_document(app, title="t", version="0"))
    validator = OAS31Validator({"$ref": DOC_URI + "#/components/schemas/Me"}, registry=checker.registry)
    assert validator.is_valid({"name": "seat", "role": "seat", "seat": "1001"})
    assert not validator.is_valid({"name": "seat", "role": "clerk", "seat": "1001"})
    assert not validator.is_valid({"name": "seat", "role": "seat"})
    assert not validator.is_valid({"name": "seat", "role": "seat", "seat": None, "token": "x"})


def test_a_route_without_a_description_is_listed_and_still_documented() -> None:
    async def nothing(request: web.Request) -> web.Response:
        return web.json_response({})

    @describe("something")
    async def something(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/api/v1/nothing/{id}", nothing)
    app.router.add_post("/api/v1/something", something)
    assert undescribed(app) == [f"GET /api/v1/nothing/{{id}} ({__name__}.{nothing.__qualname__})"]
    document = openapi_document(app, title="t", version="0")
    validate_spec(document)
    assert document["paths"]["/api/v1/nothing/{id}"]["get"]["summary"] == "(not described yet)"
    assert document["paths"]["/api/v1/nothing/{id}"]["get"]["parameters"][0]["name"] == "id"


async def test_the_document_is_open_valid_and_names_each_operations_role(
    api: tuple[web.Application, TestClient[Any, Any]],
) -> None:
    _, http = api
    response = await http.get("/api/v1/openapi.json")  # no token: it holds no data
    assert response.status == 200
    document = await response.json()
    validate_spec(document)
    paths = document["paths"]
    assert paths["/api/v1/audit"]["get"]["x-required-role"] == "admin"
    assert paths["/api/v1/audit"]["get"]["security"] == [{"bearer": []}]
    assert "401" in paths["/api/v1/audit"]["get"]["responses"]
    assert paths["/api/v1/seats"]["get"]["x-required-role"] == "seat"
    assert paths["/api/v1/health"]["get"]["security"] == []
    assert paths["/api/v1/openapi.json"]["get"]["security"] == []
    assert paths["/api/v1/knowledge/reload"]["post"]["x-required-role"] == "admin"
    assert "head" not in paths["/api/v1/seats"]
    ticket = paths["/api/v1/tickets/{ticket_id}/transition"]["post"]
    assert ticket["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TransitionBody"
    }
    assert "recording" not in document["components"]["schemas"]["TicketView"]["properties"]  # a server path
    assert (await (await http.get("/api/v1/openapi.json")).json()) == document  # built once, served alike


def _strict(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every object schema closed: a field a response has and its model does
    not name fails (pydantic leaves ``additionalProperties`` out unless a model forbids extras)."""
    strict = copy.deepcopy(document)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(strict["components"]["schemas"])
    return strict


class Checker:
    """Validates answers against the document: the status must be documented for the
    operation, and a JSON body must match its schema."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = _strict(document)
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(DOC_URI, resource)
        self.checked: list[str] = []

    async def check(self, method: str, template: str, response: Any) -> Any:
        operation = self.document["paths"][template][method.lower()]
        status = str(response.status)
        assert status in operation["responses"], f"{method} {template} answered {status}: not documented"
        content = operation["responses"][status].get("content", {})
        body = None
        if "application/json" in content:
            assert response.content_type == "application/json", f"{method} {template} {status}"
            body = await response.json()
            ref = content["application/json"].get("schema", {}).get("$ref")
            if ref is not None:
                validator = OAS31Validator({"$ref": DOC_URI + ref}, registry=self.registry)
                errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
                assert not errors, f"{method} {template} {status} does not match {ref}:\n" + "\n".join(errors)
        else:
            assert response.content_type in content, f"{method} {template} {status}: {response.content_type}"
        self.checked.append(f"{method} {template} {status}")
        return body


async def test_live_answers_match_the_document(api: tuple[web.Application, TestClient[Any, Any]]) -> None:
    app, http = api
    checker = Checker(openapi_document(app, title="t", version="0"))

    async def get(template: str, url: str | None = None, headers: dict[str, str] | None = None) -> Any:
        return await checker.check("GET", template, await http.get(url or template, headers=headers))

    async def post(template: str, url: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
        return await checker.check("POST", template, await http.post(url, headers=headers, json=body))

    await get("/api/v1/health")
    await get("/metrics")
    await get("/")
    await get("/static/{name}", "/static/seat.js")
    await get("/static/{name}", "/static/nope.js")
    await get("/api/v1/me", headers=SEAT)
    assert len((await get("/api/v1/calls", headers=SUP))["calls"]) == 1
    await get("/api/v1/calls", "/api/v1/calls?limit=0", SUP)
    await get("/api/v1/calls", headers=SEAT)  # 403
    await get("/api/v1/calls", headers=None)  # 401
    await get("/api/v1/calls/{call_id}", "/api/v1/calls/kunming-1.1", SUP)
    await get("/api/v1/calls/{call_id}", "/api/v1/calls/nope", SUP)
    await get("/api/v1/callbacks", headers=SUP)
    await post("/api/v1/seats/{seat_id}/{action}", "/api/v1/seats/1001/login", SEAT)
    await post("/api/v1/seats/{seat_id}/{action}", "/api/v1/seats/1001/login", SEAT)  # 409: logged in already
    await post("/api/v1/seats/{seat_id}/{action}", "/api/v1/seats/1001/pause", SEAT)
    await post("/api/v1/seats/{seat_id}/{action}", "/api/v1/seats/1001/nope", SEAT)  # 404
    await post("/api/v1/seats/{seat_id}/{action}", "/api/v1/seats/1001/pause", SEAT, {"reason": "nope"})  # 400
    await post("/api/v1/seats/{seat_id}/{action}", "/api/v1/seats/1002/ready", SEAT)  # 403: another seat
    seats = (await get("/api/v1/seats", headers=SUP))["seats"]
    assert {s["seat"]: s["state"] for s in seats}["1001"] == "not_ready"
    await get("/api/v1/queues", headers=SUP)
    await get("/api/v1/audit", headers=ADMIN)
    tickets = (await get("/api/v1/tickets", headers=SUP))["tickets"]
    ticket_id = tickets[0]["id"]
    await get("/api/v1/tickets", "/api/v1/tickets?state=nope", SUP)
    await get("/api/v1/tickets/{ticket_id}", f"/api/v1/tickets/{ticket_id}", SUP)
    await get("/api/v1/tickets/{ticket_id}/audio", f"/api/v1/tickets/{ticket_id}/audio", SUP)
    transition = "/api/v1/tickets/{ticket_id}/transition"
    url = f"/api/v1/tickets/{ticket_id}/transition"
    assert (await post(transition, url, SUP, {"to": "dispatched", "note": "to the street office"}))["state"] == (
        "dispatched"
    )
    await post(transition, url, SUP, {"to": "accepted"})  # 409
    await post(transition, url, SUP, {"note": "no state"})  # 400
    await get("/api/v1/asr/parked", headers=ADMIN)
    await post("/api/v1/asr/parked/retry", "/api/v1/asr/parked/retry?recording=nope", ADMIN)  # 404
    await get("/api/v1/dialplans", headers=SUP)
    await post("/api/v1/dialplans/reload", "/api/v1/dialplans/reload", ADMIN)
    await get("/api/v1/destinations", headers=SEAT)
    await get("/api/v1/handoffs/{token}", f"/api/v1/handoffs/{HANDOFF_TOKEN}", SUP)  # 403: 大理's to the province
    assert (await get("/api/v1/handoffs/{token}", f"/api/v1/handoffs/{HANDOFF_TOKEN}", PROVINCE))["to"] == "province"
    await get("/api/v1/platforms", headers=SUP)
    transfer = "/api/v1/calls/{call_id}/transfer"
    await post(transfer, "/api/v1/calls/kunming-9.9/transfer", SEAT, {"to": "police"})  # 409
    await post(transfer, "/api/v1/calls/kunming-9.9/transfer", SEAT, {"to": "province", "mode": "attended"})
    await get(transfer, "/api/v1/calls/kunming-9.9/transfer", SEAT)
    finish = "/api/v1/calls/{call_id}/transfer/{action}"
    await post(finish, "/api/v1/calls/kunming-9.9/transfer/complete", SEAT)
    found = await get("/api/v1/knowledge", "/api/v1/knowledge?q=公积金", SEAT)
    assert found["entries"]
    await get("/api/v1/knowledge/{entry_id}", f"/api/v1/knowledge/{found['entries'][0]['id']}", SEAT)
    await get("/api/v1/knowledge/{entry_id}", "/api/v1/knowledge/nope", SEAT)
    await get("/api/v1/knowledge/status", headers=SUP)
    await post("/api/v1/knowledge/reload", "/api/v1/knowledge/reload", ADMIN)
    units = (await get("/api/v1/units", headers=SEAT))["units"]
    await get("/api/v1/units/{unit_id}", f"/api/v1/units/{units[0]['id']}", SEAT)
    await get("/api/v1/units", "/api/v1/units?platform=dali", SEAT)  # 403
    await get("/api/v1/desk/codes", headers=SEAT)
    await post("/api/v1/units/reload", "/api/v1/units/reload", ADMIN)
    await get("/api/v1/openapi.json")
    # a walk that got only errors would prove little: these answered with their documented bodies
    for answered in ("POST /api/v1/seats/{seat_id}/{action} 409", "GET /api/v1/handoffs/{token} 200"):
        assert answered in checker.checked


async def test_the_case_desks_answers_match_the_document(case_desk: Desk) -> None:  # noqa: F811 - the fixture
    """cases/routes.py on the case desk's own app (tests/unit/test_cases.py's fixture)."""
    desk, http = case_desk, case_desk.client
    checker = Checker(openapi_document(http.app, title="t", version="0"))
    for call_id in ("c-1", "c-2"):
        await desk.call(call_id)
    case = "/api/v1/calls/{call_id}/case"
    answer = await checker.check(
        "POST", case, await http.post("/api/v1/calls/c-1/case", json=DISPATCH, headers=H["s1"])
    )
    await checker.check("POST", case, await http.post("/api/v1/calls/c-1/case", json=DISPATCH, headers=H["s1"]))  # 409
    await checker.check("POST", case, await http.post("/api/v1/calls/c-2/case", json={}, headers=H["s1"]))  # 400
    await checker.check("POST", case, await http.post("/api/v1/calls/c-2/case", json=DISPATCH, headers=H["s2"]))  # 403
    link = "/api/v1/calls/{call_id}/link"
    body = {"ticket_id": answer["case_id"]}
    linked = await checker.check("POST", link, await http.post("/api/v1/calls/c-2/link", json=body, headers=H["s1"]))
    assert linked["linked_call_ids"] == ["c-2"]
    history = "/api/v1/calls/{call_id}/history"
    found = await checker.check("GET", history, await http.get("/api/v1/calls/c-2/history", headers=H["s1"]))
    assert found["caller_number"]
    await checker.check("GET", history, await http.get("/api/v1/calls/nope/history", headers=H["sup"]))  # 404
    assert checker.checked == [
        f"POST {case} 201",
        f"POST {case} 409",
        f"POST {case} 400",
        f"POST {case} 403",
        f"POST {link} 200",
        f"GET {history} 200",
        f"GET {history} 404",
    ]


def test_every_handler_with_a_role_is_described_wherever_it_is_wired() -> None:
    """Optional parts the fixtures above do not build (monitors, and whatever comes next) are
    caught too: every handler in our packages that ``requires`` a role has a description."""
    import importlib
    import pkgutil
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    missing = []
    for package in pyproject["tool"]["importlinter"]["root_packages"]:  # every package of ours
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if callable(value) and hasattr(value, "required_role") and not hasattr(value, "openapi"):
                    missing.append(f"{info.name}.{name}")
    assert not missing, "handlers without @describe (web/openapi.py):\n  " + "\n  ".join(sorted(set(missing)))
