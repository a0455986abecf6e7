"""Small asyncio helpers for structured shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

log = structlog.get_logger(__name__)


def raise_if_cancel_requested() -> None:
    """Raise CancelledError when the current task has been asked to stop (``Task.cancelling``)
    although no await raised it: a client library that caught the cancellation of its own read
    and carried on (redis-py retrying a blocking read the cancel cut: seen in a test that waited
    for ever) must not keep a loop alive. Called at the top of every long-running loop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling() > 0:
        raise asyncio.CancelledError


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
        # where each one hangs (its innermost frame), so the cause can be found and fixed
        where = {task.get_name(): _innermost(task) for task in stuck}
        log.warning("shutdown.tasks_did_not_stop", tasks=sorted(where), where=where)


def _innermost(task: asyncio.Task[object]) -> str:
    frames = task.get_stack()
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}"
