"""Hosts for tests that need platforms on separate machines: network namespaces on one star.

``Star`` makes a hub namespace holding a bridge and, per host, a namespace with one veth into
that bridge and an address of 198.18.0.0/24 (the benchmark range, RFC 2544): the addresses exist
only inside these namespaces, nothing routes out of them, and every name carries the test run's
id, so parallel runs never meet. ``delete`` removes them all (the veths go with them); callers
use it in a ``finally``.

``inside(host)`` moves the calling thread into a host's namespace for a ``with`` block:
processes started there (Asterisk, the controller, SIPp) live in it, and sockets opened there
(HTTP to the controller on its loopback, Redis) are that host's. ``cut``/``restore`` drop every
packet between two hosts (nftables, on both sides) and take the rule away again.

A run killed with SIGKILL never reaches ``delete``: ``remove_stale`` (called at fixture start)
removes the namespaces of runs whose process is gone — only names of our pattern
(``h12345-<pid>-<host>``, ``h12345-probe-<pid>``), never one whose pid is alive. The pid is
judged in this pid namespace: runs in other containers sharing ``/run/netns`` are not supported.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

SUBNET = "198.18.0"  # /24, host i at .i (1-254)
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (scripts/install-system-deps.sh)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"h12345-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


_OURS = re.compile(r"^h12345-(?:(?P<pid>[0-9]{1,9})-[a-z0-9_]{1,32}|probe-(?P<probe>[0-9]{1,9}))$")


class Namespaces(Protocol):
    """The host's named network namespaces (``ip netns``; a fake in unit tests)."""

    def names(self) -> list[str]: ...

    def delete(self, name: str) -> None: ...


class IpNetns:
    def names(self) -> list[str]:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
        return [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]

    def delete(self, name: str) -> None:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(namespaces: Namespaces | None = None, alive: Callable[[int], bool] = pid_alive) -> list[str]:
    """Delete our namespaces whose run's pid is no longer alive; returns their names."""
    namespaces = namespaces or IpNetns()
    stale = []
    for name in namespaces.names():
        found = _OURS.match(name)
        if found is None:
            continue
        pid = int(found.group("pid") or found.group("probe"))
        if pid != os.getpid() and not alive(pid):
            namespaces.delete(name)
            stale.append(name)
    return stale


def _run(*words: str) -> None:
    done = subprocess.run(list(words), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(words)}: {done.stderr.strip()}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


@dataclass
class Star:
    """Hosts on one bridge; ``hosts`` in order get .1, .2, …"""

    tag: str
    hosts: Sequence[str]
    made: list[str] = field(default_factory=list)

    def namespace(self, host: str) -> str:
        return f"h12345-{self.tag}-{host}"

    def address(self, host: str) -> str:
        return f"{SUBNET}.{list(self.hosts).index(host) + 1}"

    def create(self) -> None:
        hub = self.namespace("hub")
        self._add(hub)
        _run("ip", "-n", hub, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", hub, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts, start=1):
            ns = self.namespace(host)
            self._add(ns)
            _run("ip", "-n", hub, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _run("ip", "-n", hub, "link", "set", f"p{i}", "master", "br0", "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")

    def _add(self, ns: str) -> None:
        _run("ip", "netns", "add", ns)
        self.made.append(ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")

    def delete(self) -> None:
        """Every namespace this star made (and so its veths, bridge and rules); never raises."""
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.made.clear()

    @contextmanager
    def inside(self, host: str) -> Iterator[None]:
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            there = os.open(f"/run/netns/{self.namespace(host)}", os.O_RDONLY)
            try:
                _setns(there)
            finally:
                os.close(there)
            try:
                yield
            finally:
                _setns(here)
        finally:
            os.close(here)

    def cut(self, a: str, b: str) -> None:
        """Drop every packet between hosts ``a`` and ``b``, silently (as a cut cable): each side
        drops what arrives from the other (an output rule would tell the sender at once)."""
        for near, far in ((a, b), (b, a)):
            exec_nft = ("ip", "netns", "exec", self.namespace(near), "nft")
            _run(*exec_nft, "add", "table", "inet", "cut")
            _run(*exec_nft, "add", "chain", "inet", "cut", "input", "{ type filter hook input priority 0; }")
            _run(*exec_nft, "add", "rule", "inet", "cut", "input", "ip", "saddr", self.address(far), "drop")

    def restore(self, a: str, b: str) -> None:
        for host in (a, b):
            _run("ip", "netns", "exec", self.namespace(host), "nft", "delete", "table", "inet", "cut")
