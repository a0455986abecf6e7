"""Shared fixtures. Integration fixtures start real Redis, Asterisk and the controller."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from telephony.asterisk_conf import default_asterisk_root
from tests.support.platform import PlatformUnderTest
from tests.support.sipp import reap_sipp_processes

# Hypothesis' timing checks (a per-example deadline, "data generation too slow") fail tests on a
# loaded machine without finding anything; what the tests check is the properties, not speed.
settings.register_profile("hotline", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hotline")


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
