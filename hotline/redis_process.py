"""Run a local redis-server (make run and tests), with AOF on: call records must survive."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from telephony.asterisk_process import terminate


class RedisUnavailable(RuntimeError):
    """redis-server is missing or does not start."""


def redis_answers(host: str, port: int) -> bool:
    """Whether something on host:port answers PING with PONG."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """redis-server on ``port`` with its data in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.port = port
        self.host = host
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable("redis-server is not installed (apt-get install redis-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "redis.log").open("ab")
        self._proc = subprocess.Popen(
            [
                binary,
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
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RedisUnavailable(
                    f"redis-server exited with {self._proc.returncode}; see {self.data_dir / 'redis.log'}"
                )
            if redis_answers(self.host, self.port):
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
