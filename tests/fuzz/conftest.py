"""Fuzz suite plumbing: the ``fuzz`` marker, a per-test check that the whole budget ran, a
watchdog for hangs in C code, and the tally of examples in the terminal summary (a run of the
whole suite fails if fewer than MIN_EXAMPLES examples ran)."""

from __future__ import annotations

import asyncio
import faulthandler
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.redis_process import RedisProcess
from tests.fuzz.harness import BUDGETS, MIN_EXAMPLES, PROFILE, TALLY, budget, full_budget
from tests.support.ports import free_port

HERE = Path(__file__).resolve().parent
# the whole test may take this long before the watchdog dumps every thread and exits: a hang in
# C code (a regular expression, a blocking call) that no signal handler can interrupt
WATCHDOG_S = 900.0

_wall: dict[str, float] = {}
_verdict: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.fuzz)


def _target(item: pytest.Item) -> str | None:
    function = getattr(item, "function", None)
    target: str | None = getattr(function, "fuzz_target", None)
    return target


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    target = _target(item)
    if target is None:
        return (yield)
    before = TALLY.examples.get(target, 0)
    started = time.perf_counter()
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    try:
        result = yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        _wall[target] = time.perf_counter() - started
    ran = TALLY.examples.get(target, 0) - before
    if ran < budget(target):
        raise AssertionError(f"fuzz target {target} ran {ran} examples, fewer than its budget of {budget(target)}")
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not TALLY.examples:
        return
    if set(BUDGETS) <= set(TALLY.examples) and full_budget() >= MIN_EXAMPLES and TALLY.total() < MIN_EXAMPLES:
        _verdict.append(f"FAILED: the fuzz suite ran {TALLY.total()} examples, fewer than {MIN_EXAMPLES}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY.examples:
        return
    write = terminalreporter.write_line
    terminalreporter.section(f"fuzz (profile {PROFILE})")
    write(f"{'target':<18} {'examples':>9} {'budget':>7} {'in examples s':>14} {'test s':>7}")
    for target in sorted(TALLY.examples):
        write(
            f"{target:<18} {TALLY.examples[target]:>9} {budget(target):>7}"
            f" {TALLY.seconds.get(target, 0.0):>14.1f} {_wall.get(target, 0.0):>7.1f}"
        )
    in_examples, in_tests = sum(TALLY.seconds.values()), sum(_wall.values())
    write(f"{'total':<18} {TALLY.total():>9} {full_budget():>7} {in_examples:>14.1f} {in_tests:>7.1f}")
    for line in _verdict:
        write(line, red=True, bold=True)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fuzz_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for a module's async targets (the app or server lives across examples)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
