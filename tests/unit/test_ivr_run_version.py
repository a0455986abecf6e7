"""IvrRun names its dialplan version on the record once: a walk the entry already named is not
amended again (one record version, one watcher call fewer a call); another version is."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from calls.model import CallRecord
from calls.tracker import CallTracker
from ivr.interpreter import IvrRun
from tests.unit.test_calls import MemoryStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_the_version_is_amended_only_when_it_differs() -> None:
    tracker = CallTracker(MemoryStore(), "kunming", clock=lambda: T0)
    seen: list[CallRecord] = []
    tracker.watch(seen.append)
    await tracker.ivr_started("k-1.1", channel="PJSIP/t-1", caller="13800000001", caller_name="", called="12345")
    await tracker.amend("k-1.1", {"dialplan_version": "v1"})

    def run(version: str) -> IvrRun:  # a plan whose walk ends at once: only the version step runs
        plan = SimpleNamespace(version=version, spec=SimpleNamespace(start=None))
        return IvrRun(cast(Any, None), cast(Any, plan), cast(Any, SimpleNamespace(tracker=tracker)), "k-1.1")

    versions = len(seen)
    await run("v1").run()
    assert len(seen) == versions  # named by the entry already: no new version
    await run("v2").run()  # e.g. a later script on a call whose record names another version
    live = tracker.get_live("k-1.1")
    assert live is not None and live.dialplan_version == "v2" and len(seen) == versions + 1
