"""The HTTP API's call records, recordings, callback list and audit trail (supervisors and
admins; callers masked except where they are to be dialled, and that access is audited)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from calls.callbacks import Callback
from calls.model import CallRecord
from calls.store import StoreUnavailable
from common.privacy import mask_name, mask_number
from hotline.api_schemas import AuditList, CallbackList, CallList, CallView
from recordings.access import AuditEntry, AuditFilter, audit_json
from web.api_common import (
    PRINCIPAL_KEY,
    REPEATED_READS_KEY,
    SCOPE_KEY,
    audit_request,
    error_response,
    other_platform,
    requires,
)
from web.openapi import Param, describe, integer, one_of


class CallsBackend(Protocol):
    """What these routes read from the running controller."""

    async def recent_calls(self, limit: int) -> list[CallRecord]: ...

    async def get_call(self, call_id: str) -> CallRecord | None: ...

    async def recording_file(self, call_id: str, kind: str) -> Path | None: ...

    async def callbacks(self, limit: int) -> list[Callback]: ...

    async def audit_trail(self, limit: int, keep: AuditFilter | None = None) -> list[AuditEntry]: ...


CALLS_KEY: web.AppKey[CallsBackend] = web.AppKey("calls_backend")


def call_view(record: CallRecord) -> dict[str, Any]:
    """A call record as the API shows it: caller masked."""
    return {
        "call_id": record.call_id,
        "platform": record.platform,
        "caller": mask_number(record.caller),
        "caller_name": mask_name(record.caller_name),
        "called": record.called,
        "state": record.state.value,
        "started_at": record.started_at.isoformat(),
        "answered_at": record.answered_at.isoformat() if record.answered_at else None,
        "ended_at": record.ended_at.isoformat() if record.ended_at else None,
        "ended_at_estimated": record.ended_at_estimated,  # the hang-up was not seen (controller away)
        "ivr_path": list(record.ivr_path),
        "digits": list(record.digits),
        "tags": record.tags,
        "survey_score": record.survey_score,
        "queue": record.queue,
        "queued_at": record.queued_at.isoformat() if record.queued_at else None,
        "seat": record.seat,
        "seat_answered_at": record.seat_answered_at.isoformat() if record.seat_answered_at else None,
        "transfer_to": record.transfer_to,
        "dialplan_version": record.dialplan_version,
        "outcome": record.outcome.value if record.outcome else None,
        "hangup_cause": record.hangup_cause,
        "has_recording": bool(record.recording),
        "has_call_recording": bool(record.call_recording),
        "case_id": record.case_id,
        "direction": record.direction,  # outbound: a seat called the citizen back (dialback/)
    }


@describe(
    "the latest call records, newest first",
    response=CallList,
    query=[Param("limit", "how many", integer(1, 1000, 50))],
    errors={400: "limit is not a whole number in 1..1000", 503: "the call records store (Redis) is away"},
)
@requires("supervisor")
async def list_calls(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        return error_response(400, "limit must be a whole number")
    if not 1 <= limit <= 1000:
        return error_response(400, "limit must be between 1 and 1000")
    try:
        records = await request.app[CALLS_KEY].recent_calls(limit)
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    return web.json_response({"calls": [call_view(r) for r in records]})


@describe(
    "one call record",
    response=CallView,
    errors={404: "no such call", 503: "the call records store (Redis) is away"},
)
@requires("supervisor")
async def get_call(request: web.Request) -> web.Response:
    try:
        record = await request.app[CALLS_KEY].get_call(request.match_info["call_id"])
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    if record is None:
        return error_response(404, "no such call")
    if not request[SCOPE_KEY].may_view(record.platform):  # records of every platform share the Redis
        return other_platform(request[SCOPE_KEY], record.platform, "see", "calls")
    return web.json_response(call_view(record))


@describe(
    "a call's recording (WAV; every fetch audited)",
    content="audio/wav",
    query=[
        Param(
            "kind",
            "the seat conversation or the voicemail / fallback message",
            one_of("conversation", "message", default="conversation"),
        )
    ],
    errors={
        400: "kind is neither conversation nor message",
        404: "no such recording (never made, or purged)",
        503: "the call records store (Redis) is away",
    },
)
@requires("supervisor", audit="recording.fetch")
async def get_recording(request: web.Request) -> web.StreamResponse:
    kind = request.query.get("kind", "conversation")
    if kind not in ("conversation", "message"):
        return error_response(400, "kind is conversation (the seat call) or message (voicemail / fallback)")
    principal = request[PRINCIPAL_KEY]
    backend = request.app[CALLS_KEY]
    try:
        record = await backend.get_call(request.match_info["call_id"])
        if record is not None and not request[SCOPE_KEY].may_view(record.platform):
            await audit_request(request, principal, f"recording.fetch.{kind}", "denied")
            return other_platform(request[SCOPE_KEY], record.platform, "hear", "calls")
        path = await backend.recording_file(request.match_info["call_id"], kind)
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    if path is None:
        await audit_request(request, principal, f"recording.fetch.{kind}", "missing")
        return error_response(
            404, f"no {kind} recording for this call (never made, or purged after the retention period)"
        )
    await audit_request(request, principal, f"recording.fetch.{kind}", "allowed")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store"})


@describe(
    "callers to call back (numbers whole: the read is audited)",
    response=CallbackList,
    errors={503: "the call records store (Redis) is away"},
)
@requires("supervisor", audit="callbacks.list")
async def list_callbacks(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    if request.app[REPEATED_READS_KEY].due(request[SCOPE_KEY].platform, principal.name, "callbacks.list"):
        await audit_request(request, principal, "callbacks.list", "allowed")  # consoles poll it
    try:
        entries = await request.app[CALLS_KEY].callbacks(200)
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    return web.json_response(
        {
            "callbacks": [
                {
                    "caller": entry.caller,  # whole: it is to be dialled; this access is audited
                    "platform": entry.platform,
                    "first_missed_at": entry.first_missed_at.isoformat(),
                    "last_missed_at": entry.last_missed_at.isoformat(),
                    "attempts": entry.attempts,
                    "last_call_id": entry.last_call_id,
                    "last_ivr_path": list(entry.last_ivr_path),
                }
                for entry in entries
            ]
        }
    )


@describe(
    "the audit trail of sensitive reads and changes",
    response=AuditList,
    errors={503: "the call records store (Redis) is away"},
)
@requires("admin")
async def audit_trail(request: web.Request) -> web.Response:
    # one stream for every platform: an entry is shown to those who may see its platform's objects
    scope = request[SCOPE_KEY]
    try:
        shown = await request.app[CALLS_KEY].audit_trail(200, lambda entry: scope.may_view(entry.platform))
    except StoreUnavailable as exc:
        return error_response(503, str(exc))
    return web.json_response({"audit": [audit_json(entry) for entry in shown]})


def add_call_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/calls", list_calls)
    app.router.add_get("/api/v1/calls/{call_id}", get_call)
    app.router.add_get("/api/v1/calls/{call_id}/recording", get_recording)
    app.router.add_get("/api/v1/callbacks", list_callbacks)
    app.router.add_get("/api/v1/audit", audit_trail)
