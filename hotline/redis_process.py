"""Run a local redis-server (make run and tests), with AOF on: call records must survive.

With a password, Redis requires it (``requirepass``); the password is in a 0600 config file in
the 0700 data folder, never on the command line (``ps`` shows every process's arguments)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from common.private_files import PRIVATE_FILE_MODE, PRIVATE_UMASK, private_dir, private_log
from telephony.asterisk_process import terminate


class RedisUnavailable(RuntimeError):
    """redis-server is missing or does not start."""


def _command(*words: str) -> bytes:
    """One command in RESP (any bytes in its arguments are safe)."""
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        raw = word.encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def _replies(host: str, port: int, request: bytes, count: int) -> list[bytes]:
    """The first line of each of ``count`` replies to ``request``; [] when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(request)
            data = b""
            while data.count(b"\r\n") < count:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return []
    return data.split(b"\r\n")[:count]


def redis_answers(host: str, port: int, password: str | None = None) -> bool:
    """Whether a Redis on host:port answers PING with PONG (after AUTH with ``password``)."""
    if password is None:
        return _replies(host, port, _command("PING"), 1)[-1:] == [b"+PONG"]
    replies = _replies(host, port, _command("AUTH", password) + _command("PING"), 2)
    return replies == [b"+OK", b"+PONG"]


def redis_listening(host: str, port: int) -> bool:
    """Whether a Redis answers on host:port at all (PONG, or a demand for a password)."""
    replies = _replies(host, port, _command("PING"), 1)
    return bool(replies) and (replies[0] == b"+PONG" or replies[0].startswith(b"-NOAUTH"))


class RedisProcess:
    """redis-server on ``port`` with its data in ``data_dir``; requires ``password`` if given."""

    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1", password: str | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.host = host
        self.password = password
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def arguments(self) -> list[str]:
        """The command line it was started with (never holds the password)."""
        return [str(a) for a in self._proc.args] if self._proc is not None else []  # type: ignore[union-attr]

    def _write_config(self) -> Path:
        """redis.conf with what must stay off the command line (0600)."""
        path = self.data_dir / "redis.conf"
        lines = []
        if self.password:
            escaped = self.password.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'requirepass "{escaped}"')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        path.chmod(PRIVATE_FILE_MODE)
        return path

    def start(self, timeout_s: float = 20.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable("redis-server is not installed (apt-get install redis-server)")
        private_dir(self.data_dir)  # the AOF holds call records and tickets
        config = self._write_config()
        log = private_log(self.data_dir / "redis.log")
        self._proc = subprocess.Popen(
            [
                binary,
                str(config),
                "--bind", self.host,
                "--port", str(self.port),
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--protected-mode", "yes",
                "--daemonize", "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            umask=PRIVATE_UMASK,  # its AOF and log files: 0600
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RedisUnavailable(
                    f"redis-server exited with {self._proc.returncode}; see {self.data_dir / 'redis.log'}"
                )
            if redis_answers(self.host, self.port, self.password):
                return
            time.sleep(0.05)
        raise RedisUnavailable(f"redis-server did not answer on port {self.port} within {timeout_s:g} s")

    def send_signal(self, sig: int) -> None:
        """Signal redis-server (fault drills: SIGSTOP makes it hang without closing a socket,
        SIGCONT lets it go on)."""
        if self._proc is None:
            raise RedisUnavailable("redis-server is not running")
        self._proc.send_signal(sig)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._proc is not None:
            terminate(self._proc, timeout_s)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last AOF write beyond what ``everysec`` already flushed."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
