"""A call's dialplan version lives on its record, not on its channel (issue 20, fourth round): the
entry sends no SET VARIABLE, and the scripts that take a caller back later (overflow,
transfer-failed, after-seat) find the version the call started with on its record, across a
reload — the same version the channel variable gave before. A channel an older controller
marked (its record not live here) is still read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from calls.model import CallRecord
from ivr.dialplan.loader import Dialplan
from ivr.dialplan.registry import DialplanRegistry
from ivr.entry import started_version
from telephony.dialplan_names import DIALPLAN_VARIABLE

REPO = Path(__file__).resolve().parents[2]
GREET = (REPO / "tests" / "dialplans" / "greet.yaml").read_text(encoding="utf-8")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class ChannelVariables:
    """The AGI session's GET VARIABLE, counted (the only command started_version may send)."""

    def __init__(self, variables: dict[str, str]) -> None:
        self.variables = variables
        self.asked: list[str] = []

    async def get_variable(self, name: str) -> str | None:
        self.asked.append(name)
        return self.variables.get(name)


def record(version: str) -> CallRecord:
    return CallRecord(call_id="k-1.1", platform="kunming", started_at=T0, dialplan_version=version)


async def _prepare(_plan: Dialplan) -> None:
    return None


async def test_the_version_a_call_started_with_comes_from_its_record_across_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "kunming.yaml"
    path.write_text(GREET, encoding="utf-8")
    started_on: set[str] = set()
    registry = DialplanRegistry(path, tmp_path, "kunming", _prepare, in_use=lambda: started_on)
    first = await registry.load_initial()
    started_on.add(first.version)  # a live call's record names it (the entry amends it at once)
    path.write_text(GREET.replace("再见。", "再见！"), encoding="utf-8")
    assert (await registry.reload("test")).ok
    second = registry.current
    assert second.version != first.version

    # the record names the old version: no round trip, the old plan (as the channel gave before)
    channel = ChannelVariables({})
    assert await started_version(channel, registry, record(first.version)) is registry.version(first.version)  # type: ignore[arg-type]
    assert (await started_version(channel, registry, record(first.version), "")).version == first.version  # type: ignore[arg-type]
    assert channel.asked == []
    # a channel an older controller marked, its record not live here: the channel's version
    older = ChannelVariables({DIALPLAN_VARIABLE: first.version})
    assert (await started_version(older, registry, None)).version == first.version  # type: ignore[arg-type]
    assert older.asked == [DIALPLAN_VARIABLE]
    assert (await started_version(older, registry, record(""), first.version)).version == first.version  # type: ignore[arg-type]
    assert older.asked == [DIALPLAN_VARIABLE]  # passed as the overflow's argument: not asked again
    # nothing anywhere (a call that never ran the IVR): the current version, nothing counted missing
    assert (await started_version(ChannelVariables({}), registry, None)).version == second.version  # type: ignore[arg-type]
    assert (await started_version(ChannelVariables({}), registry, record(""), "")).version == second.version  # type: ignore[arg-type]
    assert registry.versions_missing == 0
