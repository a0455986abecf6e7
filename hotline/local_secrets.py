"""Secrets an installation makes for itself, and the one way to reach Redis with them.

The AMI secret, the FastAGI key and the demo Redis password are generated at first use into
0600 files (like the demo API token) unless config.yaml gives them: ``<runtime_dir>/ami-secret``,
``<runtime_dir>/agi-secret``, ``redis.password_file``. Whoever needs one (the Asterisk config
renderer, the controller, ``stack``'s Redis, ASR workers) reads the same file, so they agree
without the secret ever being on a command line. Nothing here logs a secret.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis

from hotline.config import Config

AMI_SECRET_FILE = "ami-secret"  # noqa: S105 (a file name)
AGI_SECRET_FILE = "agi-secret"  # noqa: S105
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PRIVATE_UMASK = 0o077  # what the controller and the processes it starts create: theirs alone


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700: what is inside is nobody else's."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def private_log(path: Path) -> BinaryIO:
    """``path`` opened for appending, 0600 (a child process's output: Asterisk's console shows
    the AGI key and callers' numbers)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "ab")


def local_secret(path: Path) -> str:
    """The secret kept in ``path``; when there is none, a new random one, written 0600.

    Creation is atomic (a complete temporary file linked into place): two processes starting at
    once end up with the same secret."""
    with contextlib.suppress(FileNotFoundError):
        value = path.read_text(encoding="utf-8").strip()
        if value:
            if path.stat().st_mode & 0o077:
                path.chmod(PRIVATE_FILE_MODE)
            return value
    private_dir(path.parent)
    value = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text(encoding="utf-8").strip()  # another process made it first
    finally:
        temporary.unlink(missing_ok=True)
    return value


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


def redis_client(config: Config, **options: Any) -> aioredis.Redis:
    """An asyncio Redis client as configured: the URL (a password in it wins), the password
    file, TLS files for ``rediss://``; ``options`` are redis-py's (timeouts)."""
    extra: dict[str, Any] = {}
    password = redis_password(config)
    if password is not None:
        extra["password"] = password
    settings = config.redis
    if settings.url.startswith("rediss://"):
        extra["ssl_cert_reqs"] = "required"
        extra["ssl_check_hostname"] = True
        if settings.tls_ca_file is not None:
            extra["ssl_ca_certs"] = str(settings.tls_ca_file)
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            extra["ssl_certfile"] = str(settings.tls_cert_file)
            extra["ssl_keyfile"] = str(settings.tls_key_file)
    return aioredis.Redis.from_url(settings.url, **extra, **options)


def masked_url(url: str) -> str:
    """``url`` fit for a log: a password in it is replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))
