"""What every fuzz target shares: its budget of examples, the tally of examples that really ran,
and the guard that turns a hang into a failure.

Budgets are per run of ``make test`` (profile ``fuzz``); ``HOTLINE_FUZZ_PROFILE=fuzz-long``
runs ten times as many, ``fuzz-quick`` a tenth (while writing a fuzzer). Each fuzz test checks
that it ran its whole budget, and a run of the whole suite checks that the examples that ran add
up to at least ``MIN_EXAMPLES`` (tests/fuzz/conftest.py prints the tally).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

MIN_EXAMPLES = 10_000
# one example that runs this long is a hang (a generous bound: this is no performance test)
HANG_S = 10.0
_ALARM_S = HANG_S + 5.0  # after run_async's own timeout: for a loop that never yields

BUDGETS: dict[str, int] = {
    "agi.environment": 1200,
    "agi.reply": 1200,
    "agi.server": 600,
    "ami.bytes": 1000,
    "ami.events": 1000,
    "ami.responses": 600,
    "api.bodies": 1000,
    "api.raw_bodies": 600,
    "api.paths": 1000,
    "api.feature_bodies": 400,
    "api.feature_queries": 400,
    "api.wrong_tokens": 300,
    "config.yaml": 800,
    "config.text": 500,
    "dialplan.yaml": 700,
    "dialplan.text": 400,
    "directory.yaml": 400,
    "units.yaml": 400,
    "knowledge.yaml": 400,
}

_SCALES = {"fuzz": 1.0, "fuzz-long": 10.0, "fuzz-quick": 0.1}
PROFILE = os.environ.get("HOTLINE_FUZZ_PROFILE", "fuzz")
if PROFILE not in _SCALES:
    raise RuntimeError(f"HOTLINE_FUZZ_PROFILE is one of {', '.join(_SCALES)}, not {PROFILE!r}")
for _name in _SCALES:
    settings.register_profile(
        _name,
        # time is bounded per example by the hang guard, not by hypothesis' deadline (which
        # fails a slow example on a loaded machine)
        deadline=None,
        derandomize=False,
        database=None,  # a failure prints its example and how to reproduce it
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,  # the app or server under test lives for the whole test
        ],
    )


def budget(target: str) -> int:
    """Examples this target runs in this profile."""
    return max(1, int(BUDGETS[target] * _SCALES[PROFILE]))


def full_budget() -> int:
    return sum(budget(target) for target in BUDGETS)


@dataclass
class Tally:
    """Examples that ran, and the time they took, per target."""

    examples: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def total(self) -> int:
        return sum(self.examples.values())


TALLY = Tally()

F = TypeVar("F", bound=Callable[..., Any])


def fuzz_target(target: str) -> Callable[[F], F]:
    """Apply the profile with this target's budget; the test is known by its target."""

    def decorate(test: F) -> F:
        decorated: F = settings(settings.get_profile(PROFILE), max_examples=budget(target))(test)
        decorated.fuzz_target = target  # type: ignore[attr-defined]
        return decorated

    return decorate


class FuzzHang(BaseException):
    """One example ran longer than HANG_S (BaseException: no ``except Exception`` under test,
    such as aiohttp's 500 handler, may swallow it)."""


@contextmanager
def hang_guard(what: str, seconds: float = _ALARM_S) -> Iterator[None]:
    """Raise FuzzHang in the code under test if it runs longer than ``seconds`` (a SIGALRM
    reaches Python code that loops without yielding; tests/fuzz/conftest.py adds a watchdog for
    a hang in C)."""

    def hang(_signum: int, _frame: FrameType | None) -> None:
        raise FuzzHang(f"{what}: one example ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def example(target: str) -> Iterator[None]:
    """One example of ``target``: counted, timed, and failed if it hangs."""
    TALLY.examples[target] = TALLY.examples.get(target, 0) + 1
    started = time.perf_counter()
    try:
        with hang_guard(target):
            yield
    finally:
        TALLY.seconds[target] = TALLY.seconds.get(target, 0.0) + time.perf_counter() - started


T = TypeVar("T")


def run_async(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T], timeout_s: float = HANG_S) -> T:
    """Run one async example on the test's loop; TimeoutError if it takes longer than ``timeout_s``."""
    return loop.run_until_complete(asyncio.wait_for(work, timeout_s))
