"""A Redis primary, its replica and three sentinels on free loopback ports (failover tests).

Every node requires a password (generated per test), the replica authenticates to the primary
(``masterauth``), the sentinels to the data nodes (``auth-pass``) and to each other
(``sentinel-pass``). Processes are killed on ``stop``."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from hotline.redis_process import RedisProcess
from tests.support.platform import wait_for
from tests.support.ports import free_port

SERVICE = "hotline"


class DataNode(RedisProcess):
    """redis-server whose config file also holds ``lines`` (masterauth, replicaof)."""

    def __init__(self, data_dir: Path, port: int, password: str, lines: list[str]) -> None:
        super().__init__(data_dir, port, password=password)
        self.lines = lines

    def _write_config(self) -> Path:
        path = super()._write_config()
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(self.lines) + "\n")
        return path


@dataclass
class SentinelCluster:
    """Primary, replica, three sentinels (quorum 2, down after 1 s)."""

    root: Path
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    sentinel_password: str = field(default_factory=lambda: secrets.token_hex(16))
    nodes: list[DataNode] = field(init=False)
    sentinel_ports: list[int] = field(init=False)
    _sentinels: list[subprocess.Popen[bytes]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        primary_port, replica_port = free_port(), free_port()
        common = [f'masterauth "{self.password}"', "repl-diskless-sync no"]
        self.nodes = [
            DataNode(self.root / "primary", primary_port, self.password, common),
            DataNode(
                self.root / "replica", replica_port, self.password, [*common, f"replicaof 127.0.0.1 {primary_port}"]
            ),
        ]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinel_password_file = self.root / "sentinel-password"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sentinel_password_file.write_text(self.sentinel_password + "\n", encoding="utf-8")
        self.sentinel_password_file.chmod(0o600)
        for node in self.nodes:
            node.start()
        wait_for("the replica in sync", lambda: self.info(self.nodes[1].port).get("master_link_status") == "up", 30)
        binary = shutil.which("redis-server")
        assert binary is not None
        for index, port in enumerate(self.sentinel_ports):
            folder = self.root / f"sentinel{index}"
            folder.mkdir()
            conf = folder / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f'requirepass "{self.sentinel_password}"\nsentinel sentinel-pass "{self.sentinel_password}"\n'
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.nodes[0].port} 2\n"
                f'sentinel auth-pass {SERVICE} "{self.password}"\n'
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n",
                encoding="utf-8",
            )
            conf.chmod(0o600)
            with (folder / "sentinel.log").open("ab") as log:
                self._sentinels.append(
                    subprocess.Popen(
                        [binary, str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT, cwd=folder
                    )
                )

        def sentinels_know_each_other() -> bool:
            for port in self.sentinel_ports:
                try:
                    with self.sentinel(port) as client:
                        state: dict[str, Any] = client.sentinel_master(SERVICE)
                except redis.RedisError:
                    return False
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                    return False
            return True

        wait_for("three sentinels that know each other and the replica", sentinels_know_each_other, 60, 0.25)

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.sentinel_password, socket_timeout=2, decode_responses=True)

    def info(self, port: int) -> dict[str, str]:
        try:
            with redis.Redis(port=port, password=self.password, socket_timeout=2) as client:
                return {str(k): str(v) for k, v in client.info("replication").items()}
        except redis.RedisError:
            return {}

    def primary_port(self) -> int | None:
        """The port every sentinel names as the primary's now (None while they disagree)."""
        ports = set()
        for port in self.sentinel_ports:
            try:
                with self.sentinel(port) as client:
                    ports.add(int(client.sentinel_get_master_addr_by_name(SERVICE)[1]))
            except redis.RedisError:
                return None
        return ports.pop() if len(ports) == 1 else None

    def client(self) -> redis.Redis:
        """A client of the current primary (tests read what is stored)."""
        port = wait_for("a primary the sentinels agree on", self.primary_port, 30)
        return redis.Redis(port=port, password=self.password, socket_timeout=5)

    def stop(self) -> None:
        for proc in self._sentinels:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._sentinels.clear()
        for node in self.nodes:
            node.kill()
