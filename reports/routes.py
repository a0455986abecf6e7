"""The reports' HTTP routes (docs/api.md): supervisors read the rollups of their platform (the
province's tokens, any platform's) as JSON or CSV, and search calls.

- ``GET /api/v1/reports/{queues|seats|ivr|cases}?from=YYYY-MM-DD&to=YYYY-MM-DD&by=hour|day|week|month
  [&platform=…][&format=csv]``
- ``GET /api/v1/calls/search?from=&to=[&caller=&seat=&queue=&outcome=&case=&platform=&limit=&cursor=]``
  — a search by caller number (the whole number, nothing partial) is audited.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from redis.exceptions import RedisError

from reports.buckets import BadRange, Period, parse_range
from reports.counting import KINDS
from reports.schemas import CallSearchAnswer, ReportAnswer
from reports.search import (
    CALLER,
    MAX_LIMIT,
    VALUE,
    BadQuery,
    CallQuery,
    CallSearch,
    checked,
    parse_cursor,
    parse_outcome,
    result_view,
)
from reports.service import ReportService, csv_text
from web.api_common import (
    PRINCIPAL_KEY,
    SCOPE_KEY,
    SERVING_KEY,
    audit_request,
    error_response,
    other_platform,
    requires,
)
from web.openapi import Param, describe, integer, one_of

REPORTS_KEY: web.AppKey[ReportService] = web.AppKey("reports", ReportService)
SEARCH_KEY: web.AppKey[CallSearch] = web.AppKey("call_search", CallSearch)
MAX_REPORT_DAYS = 400
MAX_HOURLY_DAYS = 31  # 744 hours: a row per hour and queue / seat stays a readable size
MAX_SEARCH_DAYS = 92
PLATFORM = re.compile(r"[a-z][a-z0-9_]{1,31}")


def _platform(request: web.Request) -> str | web.Response:
    """The platform asked for (default: this controller's), if the token may see it."""
    platform = request.query.get("platform", "") or request.app[SERVING_KEY].platform
    if not PLATFORM.fullmatch(platform):
        return error_response(400, "platform is a platform id such as kunming")
    if not request[SCOPE_KEY].may_view(platform):
        return other_platform(request[SCOPE_KEY], platform, "see", "reports")
    return platform


def _report_query(request: web.Request) -> tuple[str, date, date, Period, str]:
    """kind, from, to, by and format; BadRange naming what is wrong."""
    kind = request.match_info["kind"]
    if kind not in KINDS:
        raise BadRange(f"no report {kind!r}: one of {', '.join(KINDS)}")
    first, last = parse_range(request.query.get("from", ""), request.query.get("to", ""), MAX_REPORT_DAYS)
    try:
        period = Period(request.query.get("by", "day"))
    except ValueError:
        raise BadRange("by is hour, day, week or month") from None
    if period is Period.HOUR and (last - first).days + 1 > MAX_HOURLY_DAYS:
        raise BadRange(f"by=hour covers at most {MAX_HOURLY_DAYS} days (by day, week or month: {MAX_REPORT_DAYS})")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRange("format is json or csv")
    return kind, first, last, period, fmt


_SCOPE = Param("platform", "whose report (default: this controller's; the province's tokens: any platform's)")
_RANGE = [
    Param("from", "the first local day, YYYY-MM-DD", required=True),
    Param("to", "the last local day, YYYY-MM-DD (both included)", required=True),
]


@describe(
    "a report over any period, from the counters (queues, seats, ivr, cases); JSON, or CSV with format=csv",
    response=ReportAnswer,
    query=[
        *_RANGE,
        Param("by", "rows per", one_of("hour", "day", "week", "month", default="day")),
        Param("format", "json, or csv (a download)", one_of("json", "csv", default="json")),
        _SCOPE,
    ],
    errors={
        400: "an unknown report, a bad date, a reversed or too long range, bad by or format",
        403: "another prefecture's platform",
        503: "Redis does not answer",
    },
    description=f"At most {MAX_REPORT_DAYS} days ({MAX_HOURLY_DAYS} by hour). The CSV (text/csv): the same rows.",
)
@requires("supervisor")
async def get_report(request: web.Request) -> web.StreamResponse:
    platform = _platform(request)
    if isinstance(platform, web.Response):
        return platform
    try:
        kind, first, last, period, fmt = _report_query(request)
    except BadRange as exc:
        return error_response(400, str(exc))
    service = request.app[REPORTS_KEY]
    try:
        report = await service.report(kind, platform, first, last, period)
    except RedisError as exc:
        return error_response(503, f"reports are unavailable: Redis: {exc}")
    if fmt == "csv":
        name = f"{platform}-{kind}-{first:%Y%m%d}-{last:%Y%m%d}-{period.value}.csv"
        return web.Response(
            text=csv_text(kind, report),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return web.json_response(
        {
            "report": kind, "platform": platform, "from": first.isoformat(), "to": last.isoformat(),
            "by": period.value, "timezone": service.tz.key, "rows": report,
        }
    )  # fmt: skip


def _search_query(request: web.Request, platform: str, tz_name: str) -> CallQuery:
    try:
        first, last = parse_range(request.query.get("from", ""), request.query.get("to", ""), MAX_SEARCH_DAYS)
    except BadRange as exc:
        raise BadQuery(str(exc)) from None
    tz = ZoneInfo(tz_name)
    since = datetime.combine(first, time(0), tz)
    until = datetime.combine(last + timedelta(days=1), time(0), tz)
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise BadQuery("limit must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit must be between 1 and {MAX_LIMIT}")
    until_ms, offset = int(until.timestamp() * 1000) - 1, 0
    cursor = parse_cursor(request.query.get("cursor", ""))
    if cursor is not None:
        until_ms, offset = min(cursor[0], until_ms), cursor[1]
    return CallQuery(
        platform=platform,
        since_ms=int(since.timestamp() * 1000),
        until_ms=until_ms,
        caller=checked("caller (the whole number, digits only)", request.query.get("caller", ""), CALLER),
        seat=checked("seat", request.query.get("seat", ""), VALUE),
        queue=checked("queue", request.query.get("queue", ""), VALUE),
        outcome=parse_outcome(request.query.get("outcome", "").strip()),
        case=checked("case", request.query.get("case", ""), VALUE),
        limit=limit,
        offset=offset,
    )


@describe(
    "search calls by date, caller number (whole, audited), seat, queue, outcome or case; callers masked",
    response=CallSearchAnswer,
    query=[
        *_RANGE,
        Param("caller", "the caller's whole number (digits, optional +): the search is audited"),
        Param("seat", "seat id"),
        Param("queue", "queue name"),
        Param("outcome", "how the call ended"),
        Param("case", "the case (ticket) id"),
        Param("limit", "at most this many calls", integer(1, MAX_LIMIT, 50)),
        Param("cursor", "next_cursor of the page before"),
        _SCOPE,
    ],
    errors={400: "a bad parameter (named)", 403: "another prefecture's platform", 503: "Redis does not answer"},
    description=f"At most {MAX_SEARCH_DAYS} days per search.",
)
@requires("supervisor")
async def search_calls(request: web.Request) -> web.Response:
    platform = _platform(request)
    if isinstance(platform, web.Response):
        return platform
    try:
        query = _search_query(request, platform, request.app[REPORTS_KEY].tz.key)
    except BadQuery as exc:
        return error_response(400, str(exc))
    if query.caller:  # who looked for which caller's calls: on the audit trail (the number is not)
        await audit_request(request, request[PRINCIPAL_KEY], "calls.search.caller", "ok")
    try:
        found, cursor = await request.app[SEARCH_KEY].search(query)
    except BadQuery as exc:
        return error_response(400, str(exc))
    except RedisError as exc:
        return error_response(503, f"call search is unavailable: Redis: {exc}")
    return web.json_response({"platform": platform, "calls": [result_view(r) for r in found], "next_cursor": cursor})


def add_routes(app: web.Application, reports: ReportService, search: CallSearch) -> None:
    app[REPORTS_KEY] = reports
    app[SEARCH_KEY] = search
    app.router.add_get("/api/v1/reports/{kind}", get_report)
    app.router.add_get("/api/v1/calls/search", search_calls)
