"""The HTTP API (aiohttp) of one controller: bearer tokens with roles, and the routes of each part.

``/api/v1/health`` and ``/metrics`` are open (probes and scrapers; no personal data in them).
Everything else needs a token whose role is at least the route's. The routes live with their
part (``api_pages``, ``api_ops``, ``api_calls``, ``api_seats``, ``api_tickets``,
``api_network``; a feature package's own ``routes.py``); ``build_api`` only registers them.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from aiohttp import web

from cases.routes import CaseDesk, add_case_routes
from dialback.routes import DialbackDesk
from dialback.routes import add_routes as add_dialback_routes
from hotline import __version__
from hotline.api_calls import CALLS_KEY, CallsBackend, add_call_routes
from hotline.api_network import NETWORK_KEY, NetworkBackend, add_network_routes
from hotline.api_ops import OpsBackend, add_ops_routes
from hotline.api_pages import add_page_routes
from hotline.api_seats import SEATS_KEY, SeatsBackend, add_seat_routes
from hotline.api_tickets import TICKETS_KEY, TicketBackend, add_ticket_routes
from knowledge.routes import add_routes as add_knowledge_routes
from knowledge.service import KnowledgeService
from monitor.routes import add_routes as add_monitor_routes
from monitor.service import MonitorService
from outbound.routes import add_routes as add_outbound_routes
from outbound.service import OutboundService
from recordings.access import AuditEntry
from reports.routes import add_routes as add_report_routes
from reports.search import CallSearch
from reports.service import ReportService
from units.registry import DeskRegistry
from units.routes import add_routes as add_units_routes
from web.api_common import (
    AUDIT_KEY,
    PRINCIPAL_KEY,
    REPEATED_READS_KEY,
    SCOPE_KEY,
    SERVING_KEY,
    UNAUTHENTICATED_KEY,
    BadRequest,
    Handler,
    RepeatedReads,
    Serving,
    Unauthenticated,
    audit_request,
    error_response,
    other_platform,
)
from web.auth import Role, TokenRegistry
from web.openapi import add_openapi_route
from web.socket_auth import DEFAULT_MAX_PENDING, DEFAULT_MAX_PER_TOKEN, TOKENS_KEY, pending_sockets
from webphone.routes import PhoneBook
from webphone.routes import add_routes as add_phone_routes

log = structlog.get_logger(__name__)

OPENAPI_DESCRIPTION = (
    "The HTTP API of one platform's controller (docs/api.md). Bearer tokens with roles "
    "seat < supervisor < admin (x-required-role per operation); a token acts on its own platform's "
    'objects only, the province\'s tokens see every platform\'s. Errors are {"error": "…"}.'
)


class ApiBackend(TicketBackend, OpsBackend, CallsBackend, SeatsBackend, Protocol):
    """What the API reads from the running controller (each part's routes see their own part)."""

    @property
    def network(self) -> NetworkBackend: ...

    async def audit(self, entry: AuditEntry) -> None: ...


def make_auth_middleware(tokens: TokenRegistry) -> Any:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        needed: Role | None = getattr(handler, "required_role", None)
        if needed is None:
            return await handler(request)
        action: str = getattr(handler, "audit_action", "")
        principal = tokens.authenticate(request.headers.get("Authorization", ""))
        if principal is None:  # counted and logged, not audited: anyone can send these, endlessly
            request.app[UNAUTHENTICATED_KEY].seen(request.path, request.remote or "")
            return error_response(401, "a valid bearer token is required")
        if not principal.may(needed):
            log.warning("api.forbidden", who=principal.name, role=principal.role, needed=needed, path=request.path)
            if action:
                await audit_request(request, principal, action, "denied")
            return error_response(403, f"this needs the {needed} role")
        serving = request.app[SERVING_KEY]
        scope = serving.scope_of(principal)
        # this controller's own objects (seats, its calls, queues, parked jobs, dialplan): a token
        # of another platform may not change them, and see them only if it is the province's
        viewing = request.method in ("GET", "HEAD")
        if not (scope.may_view(serving.platform) if viewing else scope.may_change(serving.platform)):
            if action:
                await audit_request(request, principal, action, "denied")
            return other_platform(scope, serving.platform, "see" if viewing else "change", "objects")
        request[PRINCIPAL_KEY] = principal
        request[SCOPE_KEY] = scope
        try:
            return await handler(request)
        except BadRequest as exc:  # a body the endpoint cannot take: the client's mistake, not ours
            return error_response(exc.status, str(exc))

    return auth


def build_api(
    backend: ApiBackend,
    tokens: TokenRegistry,
    *,
    province: bool = False,
    desk: DeskRegistry | None = None,
    knowledge: KnowledgeService | None = None,
    cases: CaseDesk | None = None,
    monitors: MonitorService | None = None,
    dialback: DialbackDesk | None = None,
    reports: tuple[ReportService, CallSearch] | None = None,
    outbound: OutboundService | None = None,
    phones: PhoneBook | None = None,
    max_pending_sockets: int = DEFAULT_MAX_PENDING,
    max_sockets_per_token: int = DEFAULT_MAX_PER_TOKEN,
) -> web.Application:
    """The aiohttp application of the controller of ``backend.platform_id`` (``province``: the
    provincial platform's; ``desk``: the units directory and desk codes, served when given;
    ``knowledge``: the knowledge base, likewise; ``cases``: the case desk's routes, cases/routes.py;
    ``monitors``: listen / whisper / barge, monitor/routes.py; ``dialback``: seats' callbacks,
    dialback/routes.py; ``reports``: the reports and the call search, reports/routes.py)."""
    app = web.Application(middlewares=[make_auth_middleware(tokens)], client_max_size=1024 * 1024)
    app[SERVING_KEY] = Serving(backend.platform_id, province)
    app[TOKENS_KEY] = tokens  # websockets authenticate themselves (web/socket_auth.py)
    # ... capped in number while they wait for it, and per token once open
    pending_sockets(app, max_pending_sockets, max_sockets_per_token)
    app[UNAUTHENTICATED_KEY] = Unauthenticated()
    app[REPEATED_READS_KEY] = RepeatedReads()
    app[AUDIT_KEY] = backend
    app[CALLS_KEY] = backend
    app[SEATS_KEY] = backend
    app[TICKETS_KEY] = backend
    app[NETWORK_KEY] = backend.network
    add_page_routes(app)
    add_ops_routes(app, backend)
    if reports is not None:  # before the call routes: /api/v1/calls/search is not a call id
        add_report_routes(app, *reports)
    add_call_routes(app)
    if dialback is not None:  # before the seat routes: /seats/{id}/{action} would take /seats/{id}/callback
        add_dialback_routes(app, dialback)
    if phones is not None:  # before the seat routes, as above (GET …/phone: the seat's browser phone)
        add_phone_routes(app, phones)
    add_seat_routes(app)
    add_ticket_routes(app)
    add_network_routes(app)
    if desk is not None:
        add_units_routes(app, desk)
    if knowledge is not None:
        add_knowledge_routes(app, knowledge)
    if cases is not None:
        add_case_routes(app, cases)
    if monitors is not None:
        add_monitor_routes(app, monitors)
    if outbound is not None:  # automated outbound calls (outbound/routes.py)
        add_outbound_routes(app, outbound)
    # last: the document describes every route above (web/openapi.py; served open)
    add_openapi_route(app, title="hotline12345 HTTP API", version=__version__, description=OPENAPI_DESCRIPTION)
    return app
