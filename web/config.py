"""config.yaml's http section: the REST API, websocket events, web console and /metrics."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from common.config_model import ConfigModel, Port
from web.auth import ApiToken


class HttpConfig(ConfigModel):
    """The REST API, websocket events, web console and /metrics."""

    host: str = "127.0.0.1"
    port: Port = 12345
    tokens: tuple[ApiToken, ...] = ()
    recent_calls_limit: Annotated[int, Field(ge=1, le=10000)] = 200
    # websockets (seat desks, wallboards) open and still waiting for their first-message token
    # (≤ 10 s each); more are closed at once with 4429 (web/socket_auth.py PendingSockets)
    max_pending_sockets: Annotated[int, Field(ge=1, le=100_000)] = 256
    # authenticated websockets one token may hold open at once, across every socket route (a desk
    # uses one or two, a wallboard one per screen); more are refused: 429 / 4429 (TokenSockets)
    max_sockets_per_token: Annotated[int, Field(ge=1, le=10_000)] = 16
