"""The HTTP API's operations side: health and /metrics (open: probes and scrapers, no personal
data in them), the dialplans' status and reload."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from common.metrics import CONTENT_TYPE, Metric, MetricsExposition
from common.reloading import ReloadResult
from hotline.api_schemas import DialplanStatus, Health
from web.api_common import PRINCIPAL_KEY, UNAUTHENTICATED_KEY, reload_response, requires
from web.openapi import ReloadAnswer, describe
from web.socket_auth import PENDING_SOCKETS_KEY, TOKEN_SOCKETS_KEY


class OpsBackend(Protocol):
    """What these routes read from the running controller."""

    async def health(self) -> dict[str, Any]: ...

    async def metrics(self) -> list[Metric]: ...

    async def dialplan_status(self) -> dict[str, Any]: ...

    async def reload_dialplan(self, reason: str) -> ReloadResult: ...


OPS_KEY: web.AppKey[OpsBackend] = web.AppKey("ops_backend")
EXPOSITION_KEY = web.AppKey("metrics_exposition", MetricsExposition)


@describe(
    "health (open): ok, or degraded with reasons",
    response=Health,
    errors={503: ("a component is down (AMI, Redis, FastAGI)", Health)},
)
async def health(request: web.Request) -> web.Response:
    """503 when a component is down (AMI, Redis, FastAGI); else 200, ``degraded`` with reasons
    included: a warning still serves calls, and a load balancer must not pull the platform."""
    status = await request.app[OPS_KEY].health()
    serving = all(state != "down" for state in status["components"].values())
    return web.json_response(status, status=200 if serving else 503)


@describe("Prometheus metrics (open; text format 0.0.4)", content="text/plain")
async def metrics(request: web.Request) -> web.Response:
    unauthenticated = Metric(
        "hotline_api_unauthenticated_total",
        "counter",
        "API requests without a valid token (refused with 401; logged at most once a minute)",
        request.app[UNAUTHENTICATED_KEY].total,
    )
    pending, per_token = request.app[PENDING_SOCKETS_KEY], request.app[TOKEN_SOCKETS_KEY]
    sockets = [
        Metric(
            "hotline_websockets_pending_auth",
            "gauge",
            "websockets open and waiting for their first-message token (capped: http.max_pending_sockets)",
            pending.waiting,
        ),
        Metric(
            "hotline_websockets_pending_refused_total",
            "counter",
            "websockets closed at once with 4429: as many were already waiting for their token",
            pending.refused,
        ),
        Metric(
            "hotline_websockets_authenticated",
            "gauge",
            "authenticated websockets open (capped per token: http.max_sockets_per_token)",
            per_token.total,
        ),
        Metric(
            "hotline_websockets_token_refused_total",
            "counter",
            "authenticated websockets refused (429 / 4429): their token had its fill of open sockets",
            per_token.refused,
        ),
    ]
    samples = [*await request.app[OPS_KEY].metrics(), unauthenticated, *sockets]
    body = request.app[EXPOSITION_KEY].render(samples)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "X-Content-Format": "0.0.4"})


@describe("the dialplan in use and its reloads", response=DialplanStatus)
@requires("supervisor")
async def dialplan_status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[OPS_KEY].dialplan_status())


@describe(
    "reload the dialplan from its file",
    response=ReloadAnswer,
    errors={422: ("refused: the file has problems", ReloadAnswer)},
)
@requires("admin")
async def reload_dialplan(request: web.Request) -> web.Response:
    who = request[PRINCIPAL_KEY].name
    return reload_response(await request.app[OPS_KEY].reload_dialplan(f"API request by {who}"))


def add_ops_routes(app: web.Application, backend: OpsBackend) -> None:
    """Health, metrics (with this app's own registry) and the dialplan routes."""
    app[OPS_KEY] = backend
    app[EXPOSITION_KEY] = MetricsExposition()
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/dialplans", dialplan_status)
    app.router.add_post("/api/v1/dialplans/reload", reload_dialplan)
