"""A SIGKILLed integration run leaves its ``h12345-<pid>-*`` network namespaces behind: the next
run removes those whose pid is gone, and nothing else (tests/support/netns.py ``remove_stale``)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

import pytest

from tests.support.netns import IpNetns, pid_alive, remove_stale, unavailable_reason


@dataclass
class FakeNamespaces:
    present: list[str]
    deleted: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        return list(self.present)

    def delete(self, name: str) -> None:
        self.deleted.append(name)
        self.present.remove(name)


def test_only_our_namespaces_of_dead_runs_are_removed() -> None:
    me = os.getpid()
    namespaces = FakeNamespaces(
        [
            "h12345-4242-hub",  # a killed run: gone
            "h12345-4242-province",
            "h12345-probe-4242",
            "h12345-5151-redis",  # another run still going
            f"h12345-{me}-hub",  # this run's own (never stale, whatever the check says)
            "h12345-abc-hub",  # not a pid
            "h12345-4242",  # no host part
            "x-h12345-4242-hub",  # not ours
            "docker-4242-hub",
            "h12345-4242-hub; reboot",  # not a name we make
        ]
    )
    dead = {4242, me}
    removed = remove_stale(namespaces, alive=lambda pid: pid not in dead)
    assert removed == ["h12345-4242-hub", "h12345-4242-province", "h12345-probe-4242"]
    assert namespaces.deleted == removed
    assert "h12345-5151-redis" in namespaces.present and f"h12345-{me}-hub" in namespaces.present


def test_nothing_of_ours_nothing_removed() -> None:
    namespaces = FakeNamespaces(["blue", "green"])
    assert remove_stale(namespaces, alive=lambda pid: False) == []
    assert namespaces.deleted == []


def test_a_real_dead_pid_is_seen_dead() -> None:
    assert pid_alive(os.getpid())
    assert pid_alive(1)  # init: alive (possibly someone else's)
    # a pid above the kernel's maximum is never alive
    with open("/proc/sys/kernel/pid_max", encoding="ascii") as handle:
        assert not pid_alive(int(handle.read()) + 1)


def test_a_real_leftover_namespace_is_removed() -> None:
    """``ip netns`` itself: a namespace named for a finished process goes, a live run's stays."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    child = subprocess.Popen(["true"])
    child.wait()
    dead, live = f"h12345-{child.pid}-unit", f"h12345-{os.getpid()}-unit"
    for name in (dead, live):
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # only the namespace made here counts as dead (another run's leftovers are not this test's)
        removed = remove_stale(IpNetns(), alive=lambda pid: pid != child.pid)
        assert removed == [dead]
        assert dead not in IpNetns().names() and live in IpNetns().names()
    finally:
        for name in (dead, live):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
