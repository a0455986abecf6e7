"""Secrets an installation makes for itself, and Redis reached with them (a real redis-server)."""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError

from common.privacy import masked_url
from common.private_files import local_secret
from hotline.config import Config, parse_config
from hotline.local_secrets import redis_client, redis_password
from hotline.redis_process import RedisProcess, redis_answers, redis_listening
from tests.support.ports import free_port
from tests.support.waiting import wait_until


def config_of(text: str, base: Path) -> Config:
    return parse_config(text, "config.yaml", base)


def test_a_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "var" / "some-secret"
    first = local_secret(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert local_secret(path) == first
    path.chmod(0o644)  # loosened by hand: tightened again when read
    assert local_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["some-secret"]  # no temporary left behind


def test_the_redis_password_comes_from_the_url_else_the_file(tmp_path: Path) -> None:
    generated = redis_password(config_of("", tmp_path))
    assert generated is not None
    assert (tmp_path / "var" / "redis-password").read_text().strip() == generated
    assert redis_password(config_of("redis: {url: 'redis://:in-url@127.0.0.1:1/0'}", tmp_path)) is None
    assert redis_password(config_of("redis: {password_file: null}", tmp_path)) is None
    assert redis_password(config_of("redis: {password_file: pw.txt}", tmp_path)) != generated


def test_a_logged_url_never_shows_the_password() -> None:
    assert masked_url("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert masked_url("rediss://hotline:s3cret@redis.example:6380/1") == "rediss://hotline:***@redis.example:6380/1"
    assert masked_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", free_port(), password=local_secret(tmp_path / "var" / "redis-password"))
    server.start()
    yield server
    server.stop()


def test_a_redis_with_a_password_refuses_anyone_without_it(protected_redis: RedisProcess, tmp_path: Path) -> None:
    port = protected_redis.port
    anonymous = redis.Redis(port=port)
    try:
        with pytest.raises(AuthenticationError):
            anonymous.set("hotline:seats", "forged")
        with pytest.raises((AuthenticationError, ResponseError)):
            redis.Redis(port=port, password="guessed-password").ping()
    finally:
        anonymous.close()
    assert redis_listening("127.0.0.1", port)
    assert not redis_answers("127.0.0.1", port)
    # the password is in a private file, not on the command line
    config_file = protected_redis.data_dir / "redis.conf"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(protected_redis.data_dir.stat().st_mode) == 0o700
    assert protected_redis.password
    assert protected_redis.arguments and protected_redis.password not in " ".join(protected_redis.arguments)


async def test_the_controller_s_client_authenticates_with_the_password_file(
    protected_redis: RedisProcess, tmp_path: Path
) -> None:
    config = config_of(f"redis: {{url: 'redis://127.0.0.1:{protected_redis.port}/0'}}", tmp_path)
    client = redis_client(config)
    try:
        assert await client.ping()
        await client.set("hotline:probe", "1")
    finally:
        await client.aclose()
    # its files are the service's alone (AOF: call records, tickets)
    await wait_until(lambda: any(protected_redis.data_dir.rglob("*.aof")), timeout_s=10)
    for path in protected_redis.data_dir.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def _tls_material(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 (openssl)."""
    files = {name: folder / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem", "ext")}
    files["ext"].write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=hotline test CA",
            "-keyout", str(files["ca.key"]), "-out", str(files["ca.pem"]))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(files["server.key"]), "-out", str(files["server.csr"]))  # fmt: skip
    openssl("x509", "-req", "-in", str(files["server.csr"]), "-CA", str(files["ca.pem"]), "-CAkey",
            str(files["ca.key"]), "-CAcreateserial", "-days", "2", "-extfile", str(files["ext"]),
            "-out", str(files["server.pem"]))  # fmt: skip
    return files


@dataclass
class TlsRedis:
    url: str
    ca_file: Path
    password_file: Path


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    """An "external" Redis that speaks only TLS (a certificate from a CA of our own) and needs a password."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed for this test (make deps)")
    tls = _tls_material(tmp_path)
    port = free_port()
    password_file = tmp_path / "redis-password"
    conf = tmp_path / "tls.conf"
    conf.write_text(
        f"port 0\ntls-port {port}\nbind 127.0.0.1\ntls-cert-file {tls['server.pem']}\n"
        f"tls-key-file {tls['server.key']}\ntls-ca-cert-file {tls['ca.pem']}\ntls-auth-clients no\n"
        f'requirepass "{local_secret(password_file)}"\nsave ""\ndir {tmp_path}\n'
    )
    server = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield TlsRedis(f"rediss://127.0.0.1:{port}/0", tls["ca.pem"], password_file)
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_an_external_redis_over_tls_with_a_ca_file(tls_redis: TlsRedis, tmp_path: Path) -> None:
    redis_section = f"redis: {{url: '{tls_redis.url}', password_file: {tls_redis.password_file}"
    client = redis_client(config_of(f"{redis_section}, tls_ca_file: {tls_redis.ca_file}}}", tmp_path))
    try:
        await wait_until_async_ping(client)
    finally:
        await client.aclose()
    # the system's CAs do not know this server: refused, nothing sent in clear
    untrusted = redis_client(config_of(f"{redis_section}}}", tmp_path))
    try:
        with pytest.raises(ConnectionError, match="certificate verify failed"):
            await untrusted.ping()
    finally:
        await untrusted.aclose()


async def wait_until_async_ping(client: redis.asyncio.Redis) -> None:
    """PING until the freshly started server answers (it takes a moment to listen)."""
    for _ in range(200):
        try:
            assert await client.ping()
            return
        except ConnectionError:
            await asyncio.sleep(0.05)
    raise AssertionError("the TLS Redis never answered")


@pytest.mark.parametrize("stop", ["stop", "kill"])
async def test_every_pooled_connection_survives_a_redis_restart(tmp_path: Path, stop: str) -> None:
    """After Redis restarts (stopped, or killed), no command fails on a connection the client
    held from before: the pool sees each one closed and reconnects before using it. (redis-py 8's
    default maintenance notifications skipped that check: one failure per held connection.)"""
    server = RedisProcess(tmp_path / "redis", free_port())
    server.start()
    client = redis_client(config_of(f"redis:\n  url: {server.url}\n", tmp_path), socket_timeout=3)
    try:
        await asyncio.gather(*(client.blpop(["nothing"], timeout=0.2) for _ in range(8)))  # 8 held
        assert len(client.connection_pool._available_connections) == 8
        getattr(server, stop)()
        server.start()
        await asyncio.sleep(0.2)  # the loop reads each connection's end (as a running controller's does)
        replies = await asyncio.gather(*(client.ping() for _ in range(8)), return_exceptions=True)
        assert replies == [True] * 8, replies
    finally:
        await client.aclose()
        server.stop()


class _Redis7AsyncConnection:
    """redis-py 7's asyncio connection: ``redis.maint_notifications`` exists (for the blocking
    client), but this one takes no ``maint_notifications_config`` (a TypeError at the first
    command if given one)."""

    def __init__(self, *, host: str = "localhost", port: int = 6379, socket_timeout: float | None = None) -> None:
        self.host, self.port, self.socket_timeout = host, port, socket_timeout


def test_maintenance_notifications_are_turned_off_only_where_the_asyncio_client_has_them() -> None:
    from redis.asyncio.connection import Connection

    from hotline.local_secrets import _stale_connections_checked

    given = {"socket_timeout": 3}
    # the installed redis-py (8): off, and its asyncio connection takes the options as they are
    options = _stale_connections_checked(given)
    assert options["maint_notifications_config"].enabled is False
    Connection(**options)
    # redis-py 7: the keyword is never passed (its asyncio connection would refuse it)
    older = _stale_connections_checked(given, _Redis7AsyncConnection)
    assert older == given
    _Redis7AsyncConnection(**older)
