"""Small asyncio helpers for structured shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

log = structlog.get_logger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], timeout_s: float = 5.0) -> None:
    """Cancel ``tasks`` and wait for them, at most ``timeout_s``: a task that swallows its
    cancellation (seen inside client libraries) must not hang the shutdown."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, stuck = await asyncio.wait(pending, timeout=timeout_s)
    if stuck:
        log.warning("shutdown.tasks_did_not_stop", tasks=sorted(task.get_name() for task in stuck))
