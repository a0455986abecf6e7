"""The live dialplan: reloads swap only valid files; the file is watched."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ivr.dialplan.loader import Dialplan, DialplanInvalid
from ivr.dialplan.registry import KEEP_RECENT, DialplanRegistry
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
GREET = (REPO / "tests" / "dialplans" / "greet.yaml").read_text(encoding="utf-8")


def registry_for(path: Path, prepared: list[str] | None = None) -> DialplanRegistry:
    async def prepare(plan: Dialplan) -> None:
        if prepared is not None:
            prepared.append(plan.version)

    return DialplanRegistry(path, path.parent, "kunming", prepare)


async def test_reload_swaps_a_valid_file_and_keeps_the_old_one_on_errors(tmp_path: Path) -> None:
    path = tmp_path / "kunming.yaml"
    path.write_text(GREET, encoding="utf-8")
    prepared: list[str] = []
    registry = registry_for(path, prepared)
    first = await registry.load_initial()

    path.write_text(GREET.replace("start: welcome", "start: nowhere"), encoding="utf-8")
    rejected = await registry.reload("test")
    assert not rejected.ok
    assert registry.current is first
    assert any("start node 'nowhere' does not exist" in p for p in rejected.problems)
    assert registry.reloads_failed == 1

    path.write_text(GREET.replace("再见。", "再见！"), encoding="utf-8")
    accepted = await registry.reload("test")
    assert accepted.ok and accepted.changed
    assert registry.current.version == accepted.version != first.version
    assert prepared == [first.version, accepted.version]  # prompts built before the swap


async def test_a_file_change_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "kunming.yaml"
    path.write_text(GREET, encoding="utf-8")
    registry = registry_for(path)
    first = await registry.load_initial()
    watcher = asyncio.create_task(registry.watch(interval_s=0.05))
    try:
        path.write_text(GREET.replace("再见。", "再会。"), encoding="utf-8")
        os.utime(path, (1, 1))  # a different mtime even on coarse clocks
        await wait_until(lambda: registry.current.version != first.version)
    finally:
        watcher.cancel()


async def test_a_dialplan_for_another_platform_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kunming.yaml"
    path.write_text(GREET.replace("platform: kunming", "platform: dali"), encoding="utf-8")
    with pytest.raises(DialplanInvalid, match="this dialplan is for 'dali', but this controller runs 'kunming'"):
        await registry_for(path).load_initial()


async def test_versions_live_calls_name_are_kept_and_the_others_dropped(tmp_path: Path) -> None:
    path = tmp_path / "kunming.yaml"
    in_use: set[str] = set()

    async def prepare(_plan: Dialplan) -> None:
        return None

    registry = DialplanRegistry(path, tmp_path, "kunming", prepare, in_use=lambda: in_use)
    path.write_text(GREET, encoding="utf-8")
    first = await registry.load_initial()
    in_use.add(first.version)  # a caller waits in a queue on the first version
    loaded = [first.version]
    for n in range(KEEP_RECENT + 2):
        path.write_text(GREET.replace("再见。", f"再见{n}。"), encoding="utf-8")
        assert (await registry.reload("test")).ok
        loaded.append(registry.current.version)
    # the first (named by a live call) and the last few; the ones between are gone
    assert registry.kept == (first.version, *loaded[-KEEP_RECENT:])
    assert registry.version(first.version) is not registry.current
    assert registry.version(first.version).version == first.version
    assert registry.version(loaded[-2]).version == loaded[-2]
    assert registry.versions_missing == 0

    # the call ended: its version goes at the next reload
    in_use.clear()
    path.write_text(GREET.replace("再见。", "再见了。"), encoding="utf-8")
    assert (await registry.reload("test")).ok
    assert first.version not in registry.kept
    assert len(registry.kept) == KEEP_RECENT


async def test_a_version_that_is_gone_gives_the_current_one_and_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "kunming.yaml"
    path.write_text(GREET, encoding="utf-8")
    registry = registry_for(path)
    current = await registry.load_initial()
    # e.g. the controller restarted on a changed file: the channel names a version never loaded here
    assert registry.version("0123456789ab") is current
    assert registry.versions_missing == 1
    # no version on the channel (a call that never ran the IVR): the current one, nothing counted
    assert registry.version("") is current
    assert registry.version(current.version) is current
    assert registry.versions_missing == 1


async def test_a_text_loaded_again_is_the_newest_version(tmp_path: Path) -> None:
    path = tmp_path / "kunming.yaml"
    path.write_text(GREET, encoding="utf-8")
    registry = registry_for(path)
    first = await registry.load_initial()
    path.write_text(GREET.replace("再见。", "再会。"), encoding="utf-8")
    assert (await registry.reload("test")).ok
    second = registry.current.version
    path.write_text(GREET, encoding="utf-8")
    back = await registry.reload("test")
    assert back.ok and back.version == first.version
    assert registry.kept == (second, first.version)  # current last
    assert registry.current.version == first.version
