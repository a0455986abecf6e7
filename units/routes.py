"""The HTTP side of the units directory and the desk codes (docs/api.md, "Units and desk codes").

A seat sees its platform's units and the province-wide ones; ``?platform=`` asks for another
platform's view, allowed to the province's tokens only (PlatformScope).
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from aiohttp import web

from units.model import PlacedUnit
from units.registry import DeskRegistry
from units.schemas import DeskCodes, UnitList, UnitView
from web.api_common import PRINCIPAL_KEY, SCOPE_KEY, error_response, other_platform, reload_response, requires
from web.openapi import Param, ReloadAnswer, describe

log = structlog.get_logger(__name__)

DESK_KEY: web.AppKey[DeskRegistry] = web.AppKey("desk", DeskRegistry)
_ID = re.compile(r"[a-z0-9_-]{1,64}")
_PLATFORM = re.compile(r"[a-z][a-z0-9_]{1,31}")
MAX_QUERY_CHARS = 64
MAX_UNITS = 500


def unit_view(placed: PlacedUnit) -> dict[str, Any]:
    unit = placed.unit
    return {
        "id": unit.id,
        "name": unit.name,
        "platform": placed.platform,
        "department": unit.department,
        "parent": unit.parent,
        # a unit's office numbers, not a citizen's: shown whole (the seat may call them)
        "contacts": [{"number": c.number, "label": c.label} for c in unit.contacts],
        "matter_types": list(unit.matter_types),
    }


def _platform(request: web.Request) -> str | web.Response:
    """The platform whose view is asked for: the token's, or ``?platform=`` if it may see it."""
    scope = request[SCOPE_KEY]
    platform = request.query.get("platform", scope.platform)
    if _PLATFORM.fullmatch(platform) is None:
        return error_response(400, "platform is a platform id such as kunming")
    if not scope.may_view(platform):
        return other_platform(scope, platform, "see", "units and codes")
    return platform


@describe(
    "the units a case may be dispatched to (this platform's and province-wide)",
    response=UnitList,
    query=[
        Param("q", f"words in the id, name or department (at most {MAX_QUERY_CHARS} characters)"),
        Param("matter_type", "only units that handle this matter type"),
        Param("platform", "another platform's view (province tokens)"),
    ],
    errors={400: "a bad filter"},
)
@requires("seat")
async def list_units(request: web.Request) -> web.Response:
    platform = _platform(request)
    if isinstance(platform, web.Response):
        return platform
    matter_type = request.query.get("matter_type", "")
    if matter_type and _ID.fullmatch(matter_type) is None:
        return error_response(400, "matter_type is 1-64 of a-z, 0-9, '_' and '-'")
    q = request.query.get("q", "").strip().casefold()
    if len(q) > MAX_QUERY_CHARS:
        return error_response(400, f"q is at most {MAX_QUERY_CHARS} characters")
    found = []
    for placed in request.app[DESK_KEY].units.visible(platform):
        unit = placed.unit
        if matter_type and matter_type not in unit.matter_types:
            continue
        if q and not any(q in text.casefold() for text in (unit.id, unit.name, unit.department or "")):
            continue
        found.append(unit_view(placed))
    return web.json_response(
        {"platform": platform, "units": found[:MAX_UNITS], "truncated": len(found) > MAX_UNITS},
    )


@describe(
    "one unit",
    response=UnitView,
    query=[Param("platform", "another platform's view (province tokens)")],
    errors={400: "a bad platform", 404: "no such unit"},
)
@requires("seat")
async def get_unit(request: web.Request) -> web.Response:
    platform = _platform(request)
    if isinstance(platform, web.Response):
        return platform
    unit_id = request.match_info["unit_id"]
    placed = request.app[DESK_KEY].units.placed(platform, unit_id) if _ID.fullmatch(unit_id) else None
    if placed is None:
        return error_response(404, f"no such unit for {platform} (unit ids look like km_housing_fund)")
    return web.json_response(unit_view(placed))


@describe(
    "the desk codes: dispositions, pause reasons, matter types",
    response=DeskCodes,
    query=[Param("platform", "another platform's view (province tokens)")],
    errors={400: "a bad platform"},
)
@requires("seat")
async def desk_codes(request: web.Request) -> web.Response:
    platform = _platform(request)
    if isinstance(platform, web.Response):
        return platform
    codes = request.app[DESK_KEY].codes.for_platform(platform)
    return web.json_response(
        {
            "platform": platform,
            "version": request.app[DESK_KEY].current.version,
            "dispositions": [d.model_dump(mode="json") for d in codes.dispositions],
            "pause_reasons": [p.model_dump(mode="json") for p in codes.pause_reasons],
            "matter_types": [m.model_dump(mode="json") for m in codes.matter_types],
        }
    )


@describe(
    "reload the units directory and desk codes",
    response=ReloadAnswer,
    errors={422: ("refused: the files have problems", ReloadAnswer)},
)
@requires("admin")
async def reload_units(request: web.Request) -> web.Response:
    who = request[PRINCIPAL_KEY].name
    return reload_response(await request.app[DESK_KEY].reload(f"API request by {who}"))


def add_routes(app: web.Application, registry: DeskRegistry) -> None:
    """Serve the units directory and the desk codes from ``registry`` on ``app`` (whose auth
    middleware sets the principal and the platform scope)."""
    app[DESK_KEY] = registry
    app.router.add_get("/api/v1/units", list_units)
    app.router.add_post("/api/v1/units/reload", reload_units)
    app.router.add_get("/api/v1/units/{unit_id}", get_unit)
    app.router.add_get("/api/v1/desk/codes", desk_codes)
