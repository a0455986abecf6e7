"""Waiting for a condition in async tests, with a hang guard (not a speed threshold)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(predicate: Callable[[], object], timeout_s: float = 5.0) -> None:
    """Poll ``predicate`` until truthy; raise TimeoutError after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polling state owned by other tasks
            await asyncio.sleep(0.01)
