"""The fuzz harness itself: a hang fails the example, in Python code that never yields and in a
coroutine that never finishes (else "no hang" would be a claim nobody checked)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fuzz.harness import FuzzHang, hang_guard, run_async


def test_a_loop_that_never_yields_is_interrupted() -> None:
    give_up = time.monotonic() + 60  # a broken guard fails the test (DID NOT RAISE), late
    with pytest.raises(FuzzHang, match=r"^spin: one example ran longer than 0\.2 s$"), hang_guard("spin", 0.2):
        while time.monotonic() < give_up:
            pass


def test_a_coroutine_that_never_finishes_times_out(fuzz_loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TimeoutError):
        run_async(fuzz_loop, asyncio.Event().wait(), timeout_s=0.2)
