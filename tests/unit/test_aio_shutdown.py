"""common/aio.py: a task that does not end on cancellation is named with where it hangs."""

from __future__ import annotations

import asyncio
import contextlib

from structlog.testing import capture_logs

from common.aio import cancel_and_wait


async def swallows_its_cancellation(release: asyncio.Event) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await release.wait()  # as a client library's cleanup that waits on a dead peer


async def test_a_stuck_task_is_named_with_where_it_hangs_and_others_end() -> None:
    release = asyncio.Event()
    stuck = asyncio.create_task(swallows_its_cancellation(release), name="stuck-one")
    fine = asyncio.create_task(asyncio.sleep(3600), name="fine-one")
    await asyncio.sleep(0)
    with capture_logs() as logs:
        await cancel_and_wait([stuck, fine], timeout_s=0.05)
    assert fine.cancelled() and not stuck.done()
    [warning] = [line for line in logs if line["event"] == "shutdown.tasks_did_not_stop"]
    assert warning["tasks"] == ["stuck-one"]
    assert "swallows_its_cancellation" in warning["where"]["stuck-one"]
    assert "test_aio_shutdown.py:" in warning["where"]["stuck-one"]
    release.set()
    await stuck
