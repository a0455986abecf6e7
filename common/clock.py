"""The controller's clock: real UTC time, or (for tests and drills) a shifted one."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
TEST_NOW_VARIABLE = "HOTLINE_TEST_NOW"


def system_clock() -> datetime:
    return datetime.now(UTC)


def shifted_clock(start: datetime) -> Clock:
    """A clock that reads ``start`` now and runs on at real speed (service-hours drills, tests)."""
    origin = time.monotonic()

    def now() -> datetime:
        return start + timedelta(seconds=time.monotonic() - origin)

    return now


def clock_from_environment(environ: Mapping[str, str]) -> Clock:
    """``HOTLINE_TEST_NOW=2026-10-01T10:00:00+08:00`` starts the clock there; otherwise real time."""
    text = environ.get(TEST_NOW_VARIABLE, "").strip()
    if not text:
        return system_clock
    start = datetime.fromisoformat(text)
    if start.tzinfo is None:
        raise ValueError(f"{TEST_NOW_VARIABLE} needs a UTC offset, e.g. 2026-10-01T10:00:00+08:00")
    return shifted_clock(start)
