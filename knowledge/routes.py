"""The knowledge base's HTTP routes (docs/api.md): search and read for seats, reload for admins.

A seat sees the entries of the platform whose controller serves the request, and the
province's; a province token (which may look at this controller) sees the same.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from knowledge.index import MAX_QUERY_CHARS
from knowledge.model import Entry
from knowledge.schemas import EntryView, KnowledgeStatus, SearchAnswer
from knowledge.service import MAX_LIMIT, KnowledgeLoading, KnowledgeService
from web.api_common import PRINCIPAL_KEY, error_response, reload_response, requires
from web.openapi import Param, ReloadAnswer, describe, integer

KNOWLEDGE_KEY: web.AppKey[KnowledgeService] = web.AppKey("knowledge", KnowledgeService)
MAX_MATTER_TYPE_CHARS = 32
LOADING_ERROR = "the knowledge base is loading (the controller has just started): ask again in a moment"


def loading_response() -> web.Response:
    """503 while the base is loaded at start: the seat desk shows "loading" and asks again."""
    return web.json_response({"error": LOADING_ERROR, "loading": True}, status=503, headers={"Retry-After": "1"})


def entry_view(entry: Entry, uses: int, today: date | None = None) -> dict[str, Any]:
    """An entry as the API shows it (``today``: say whether it is offered today)."""
    view: dict[str, Any] = {
        "id": entry.id,
        "platform": entry.platform,
        "question": entry.question,
        "answer": entry.answer,
        "matter_type": entry.matter_type,
        "unit": entry.unit,
        "keywords": list(entry.keywords),
        "valid_from": entry.valid_from.isoformat() if entry.valid_from else None,
        "valid_until": entry.valid_until.isoformat() if entry.valid_until else None,
        "uses": uses,
        "source": entry.source,
    }
    if today is not None:
        view["valid_now"] = entry.valid_on(today)
    return view


@describe(
    "search the knowledge base (this platform's entries and the province's)",
    response=SearchAnswer,
    query=[
        Param("q", f"words to look for (at most {MAX_QUERY_CHARS} characters)"),
        Param("matter_type", "only entries of this matter type"),
        Param("limit", "how many", integer(1, MAX_LIMIT, 20)),
    ],
    errors={400: "q, matter_type or limit out of bounds", 503: "loading at start: ask again (Retry-After)"},
)
@requires("seat")
async def search(request: web.Request) -> web.Response:
    service = request.app[KNOWLEDGE_KEY]
    query = request.query.get("q", "")
    matter_type = request.query.get("matter_type", "").strip()
    if len(query) > MAX_QUERY_CHARS:
        return error_response(400, f"q is at most {MAX_QUERY_CHARS} characters")
    if len(matter_type) > MAX_MATTER_TYPE_CHARS:
        return error_response(400, f"matter_type is at most {MAX_MATTER_TYPE_CHARS} characters")
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        return error_response(400, "limit must be a whole number")
    if not 1 <= limit <= MAX_LIMIT:
        return error_response(400, f"limit must be between 1 and {MAX_LIMIT}")
    try:
        hits = await service.search(query, matter_type, limit)
    except KnowledgeLoading:
        return loading_response()
    return web.json_response(
        {
            "platform": service.platform,
            "version": service.base.version,
            "matter_types": service.matter_types(),
            "entries": [entry_view(hit.entry, hit.uses) for hit in hits],
        }
    )


@describe(
    "one entry",
    response=EntryView,
    errors={404: "no such entry on this platform", 503: "loading at start: ask again (Retry-After)"},
)
@requires("seat")
async def get_entry(request: web.Request) -> web.Response:
    service = request.app[KNOWLEDGE_KEY]
    try:
        entry = service.get(request.match_info["entry_id"])
    except KnowledgeLoading:
        return loading_response()
    if entry is None:  # another platform's entries are not there for this one's seats
        return error_response(404, "no such knowledge entry on this platform")
    uses = (await service.uses.current()).get(entry.id, 0)
    return web.json_response(entry_view(entry, uses, service.today()))


@describe("the knowledge base loaded and its reloads", response=KnowledgeStatus)
@requires("supervisor")
async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[KNOWLEDGE_KEY].status())


@describe(
    "reload the knowledge base from its folder",
    response=ReloadAnswer,
    errors={422: ("refused: the files have problems", ReloadAnswer)},
)
@requires("admin")
async def reload(request: web.Request) -> web.Response:
    who = request[PRINCIPAL_KEY].name
    return reload_response(await request.app[KNOWLEDGE_KEY].reload(f"API request by {who}"))


def add_routes(app: web.Application, service: KnowledgeService) -> None:
    """Serve ``service`` under /api/v1/knowledge."""
    app[KNOWLEDGE_KEY] = service
    app.router.add_get("/api/v1/knowledge", search)
    app.router.add_get("/api/v1/knowledge/status", status)
    app.router.add_post("/api/v1/knowledge/reload", reload)
    app.router.add_get("/api/v1/knowledge/{entry_id}", get_entry)
