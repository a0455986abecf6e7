"""Secrets an installation makes for itself, and the one way to reach Redis with them.

The AMI secret, the FastAGI key and the demo Redis password are generated at first use into
0600 files (like the demo API token) unless config.yaml gives them: ``<runtime_dir>/ami-secret``,
``<runtime_dir>/agi-secret``, ``redis.password_file``. Whoever needs one (the Asterisk config
renderer, the controller, ``stack``'s Redis, ASR workers) reads the same file, so they agree
without the secret ever being on a command line. Nothing here logs a secret.
"""

from __future__ import annotations

import inspect
import secrets
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis

from common.privacy import masked_url
from common.private_files import local_secret
from common.redis_sentinel import ReplicationAcks, parse_node, sentinel_client
from hotline.config import Config, ConfigError

AMI_SECRET_FILE = "ami-secret"  # noqa: S105 (a file name)
AGI_SECRET_FILE = "agi-secret"  # noqa: S105


@dataclass(frozen=True)
class LocalSecrets:
    """What Asterisk's files and the controller must agree on."""

    ami_secret: str
    agi_secret: str

    @classmethod
    def preview(cls, config: Config) -> LocalSecrets:
        """The configured ones, else fresh random ones (a rendering that is never written:
        previews, tests); nothing is read from or written to ``runtime_dir``."""
        return cls(
            ami_secret=config.asterisk.ami_secret or secrets.token_urlsafe(32),
            agi_secret=config.agi.secret or secrets.token_urlsafe(32),
        )


def local_secrets(config: Config) -> LocalSecrets:
    """The configured secrets, else the ones kept under ``runtime_dir`` (made at first use)."""
    runtime = config.paths.runtime_dir
    return LocalSecrets(
        ami_secret=config.asterisk.ami_secret or local_secret(runtime / AMI_SECRET_FILE),
        agi_secret=config.agi.secret or local_secret(runtime / AGI_SECRET_FILE),
    )


def configured_secrets(config: Config) -> list[str]:
    """The keys of config.yaml that hold a secret (the file must then be its owner's alone)."""
    keys = [f"seats[{i}].secret" for i, seat in enumerate(config.seats) if seat.secret]
    given = {
        "asterisk.ami_secret": config.asterisk.ami_secret,
        "agi.secret": config.agi.secret,
        "redis.url": urlsplit(config.redis.url).password,
        "tickets.webhook_token": config.tickets.webhook_token,
    }
    return [key for key, value in given.items() if value] + keys


def redis_password(config: Config) -> str | None:
    """The password to AUTH with when the URL has none: ``redis.password_file``'s (made at first
    use); None with no password file."""
    if urlsplit(config.redis.url).password is not None or config.redis.password_file is None:
        return None
    return local_secret(config.redis.password_file)


def redis_where(config: Config) -> str:
    """Where Redis is, for logs: the URL with ``***`` for a password, or the sentinels."""
    sentinel = config.redis.sentinel
    if sentinel is None:
        return masked_url(config.redis.url)
    return f"sentinel {sentinel.service_name}@{','.join(sentinel.nodes)}"


def _no_late_writes(options: dict[str, Any]) -> dict[str, Any]:
    """TCP_USER_TIMEOUT at 2/3 of the read timeout: bytes a cut link holds back unacknowledged are
    dropped by the kernel (the connection aborted) before the client gives up and retries, so a
    write can never land *after* its own retry. Without it a record written during a cut reached
    Redis by TCP retransmission once the link returned, after the retried later version, and
    overwrote it (the separate-hosts Redis-cut test caught an ended record back at ``in_ivr``).
    (A hung Redis, whose kernel still acknowledges, is not covered by this.)"""
    read_timeout = options.get("socket_timeout")
    user_timeout = getattr(socket, "TCP_USER_TIMEOUT", None)
    if not read_timeout or user_timeout is None or "socket_keepalive_options" in options:
        return options
    keepalive = {  # redis-py's own keepalive defaults, and the user timeout
        getattr(socket, name): value
        for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
        if hasattr(socket, name)
    }
    keepalive[user_timeout] = max(1, int(read_timeout * 1000 * 2 / 3))
    return {**options, "socket_keepalive": True, "socket_keepalive_options": keepalive}


def _takes_maint_notifications(connection_class: type) -> bool:
    """Whether redis-py's asyncio connections take ``maint_notifications_config``: redis-py 7
    has the setting (``redis.maint_notifications``) for its blocking client only, and its asyncio
    connection refuses the keyword (TypeError at the first command)."""
    try:
        parameters = inspect.signature(connection_class).parameters
    except (TypeError, ValueError):
        return False
    return "maint_notifications_config" in parameters


def _stale_connections_checked(
    options: dict[str, Any], connection_class: type = aioredis.connection.AbstractConnection
) -> dict[str, Any]:
    """Maintenance notifications off (a Redis Enterprise/Cloud feature we do not use). redis-py 8
    speaks RESP3 and turns them on by default ("auto"), and while they are on its pool skips the
    check that a pooled connection is still open before handing it out: after every Redis
    restart, each connection the client held failed its next command with "Connection closed by
    server" (CI: a tickets page answered 503 right after the restart). With them off, the pool
    sees the closed connection and reconnects first. (An asyncio client without them — redis-py
    before 8 — has nothing to turn off, and must not be given the keyword.)"""
    if not _takes_maint_notifications(connection_class):
        return options
    from redis.maint_notifications import MaintNotificationsConfig

    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False), **options}


def redis_client(config: Config, **options: Any) -> aioredis.Redis:
    """An asyncio Redis client as configured: the URL (a password in it wins), the password
    file, TLS files for ``rediss://``; ``options`` are redis-py's (timeouts). With
    ``redis.sentinel``, a client of the primary the sentinels name (it follows a failover)."""
    options = _stale_connections_checked(_no_late_writes(options))
    extra: dict[str, Any] = {}
    password = redis_password(config)
    if password is not None:
        extra["password"] = password
    settings = config.redis
    if settings.sentinel is not None:
        return _sentinel_client(config, extra, options)
    if settings.url.startswith("rediss://"):
        extra["ssl_cert_reqs"] = "required"
        extra["ssl_check_hostname"] = True
        if settings.tls_ca_file is not None:
            extra["ssl_ca_certs"] = str(settings.tls_ca_file)
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            extra["ssl_certfile"] = str(settings.tls_cert_file)
            extra["ssl_keyfile"] = str(settings.tls_key_file)
    return aioredis.Redis.from_url(settings.url, **extra, **options)


def _sentinel_client(config: Config, extra: dict[str, Any], options: dict[str, Any]) -> aioredis.Redis:
    """The data nodes' user, password and database come from the URL (or the password file)."""
    sentinel = config.redis.sentinel
    assert sentinel is not None
    url = urlsplit(config.redis.url)
    if url.username:
        extra["username"] = unquote(url.username)
    if url.password is not None:
        extra["password"] = unquote(url.password)
    database = url.path.lstrip("/")
    if database.isdigit():
        extra["db"] = int(database)
    own = None
    if sentinel.password_file is not None:  # the sentinels' admin made it: never made up here
        try:
            own = sentinel.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"redis.sentinel.password_file: cannot read it ({exc.strerror})") from None
        if not own:  # else the sentinels would be asked without one: a NOAUTH far from its cause
            raise ConfigError(f"redis.sentinel.password_file: {sentinel.password_file} is empty")
    return sentinel_client(
        sentinel.service_name,
        [parse_node(node) for node in sentinel.nodes],
        sentinel_password=own,
        acks=ReplicationAcks(sentinel.replicas_to_ack, sentinel.ack_timeout_ms),
        **extra,
        **options,
    )
