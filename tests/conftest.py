"""Shared fixtures. Integration fixtures start real Redis, Asterisk and the controller."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from telephony.asterisk_conf import default_asterisk_root
from tests.support.platform import PlatformUnderTest
from tests.support.sipp import reap_sipp_processes

# Hypothesis' timing checks (a per-example deadline, "data generation too slow") fail tests on a
# loaded machine without finding anything; what the tests check is the properties, not speed.
settings.register_profile("hotline", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hotline")

# `make test` runs pytest-xdist workers with `--dist loadfile` (Makefile): each module runs whole
# on one worker (so its module-scoped platform starts once), and these fault modules together on
# one, one after another: they kill, stop or hang Asterisk and Redis and time how the controller
# rides it out (Asterisk restarts, a Redis SIGSTOPped for a whole call with no IVR step over a
# second, a Sentinel failover), so never two fault scenarios at once. (Not with `xdist_group`
# marks: xdist 3.8's `--dist loadgroup` renames node ids, which pytest 9 no longer honours.)
FAULT_MODULES = frozenset(
    {
        "tests/integration/test_chaos.py",
        "tests/integration/test_resilience.py",
        "tests/integration/test_redis_failover.py",
    }
)


def scheduling_scope(nodeid: str) -> str:
    """What a test is scheduled with: its module, or "faults" for the fault modules."""
    module = nodeid.split("::", 1)[0]
    return "faults" if module in FAULT_MODULES else module


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None  # xdist's own
    from xdist.scheduler import LoadFileScheduling

    class ModulesAndFaults(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scheduling_scope(nodeid)

    return ModulesAndFaults(config, log)


@pytest.fixture(autouse=True)
def _reap_sipp() -> Iterator[None]:
    yield
    reap_sipp_processes()


def _require_asterisk() -> None:
    root = default_asterisk_root()
    if not (root / "usr/sbin/asterisk").is_file():
        pytest.fail(
            f"no provisioned Asterisk in {root}: run `make test` (it provisions) or scripts/provision-asterisk.sh"
        )


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformUnderTest]:
    """One platform (Redis + Asterisk + controller) shared by a test module."""
    _require_asterisk()
    under_test = PlatformUnderTest(tmp_path_factory.mktemp("platform"))
    under_test.start_all()
    try:
        yield under_test
    finally:
        under_test.stop_all()


@pytest.fixture
def fresh_platform(tmp_path: Path) -> Iterator[PlatformUnderTest]:
    """A platform of the test's own, for tests that break things."""
    _require_asterisk()
    under_test = PlatformUnderTest(tmp_path / "platform")
    under_test.start_all()
    try:
        yield under_test
    finally:
        under_test.stop_all()
