"""The live units directory and desk codes: a reload swaps only a valid set, the files are
watched, and the CLI's check exits 0/1 with located problems."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
from pathlib import Path

import pytest

from hotline.cli import main
from tests.support.waiting import wait_until
from units.check import check_paths
from units.loader import DeskFilesInvalid
from units.registry import DeskRegistry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "directory", tmp_path / "directory")
    return tmp_path / "directory"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a new stamp on coarse clocks


async def test_reload_keeps_the_last_good_version_on_a_broken_file(root: Path) -> None:
    registry = DeskRegistry(root)
    first = registry.load_initial()
    assert registry.units.lookup("kunming", "km_housing_fund") is not None

    edit(root / "units" / "kunming.yaml", 'number: "087100000101"', 'number: "0871000001;01"')
    rejected = await registry.reload("test")
    assert not rejected.ok and not rejected.changed
    assert registry.current is first  # nothing half-loaded: the whole set stays
    assert any("kunming.yaml:11:10: error: units.0.contacts.0.number: a number to dial" in p for p in rejected.problems)
    assert registry.reloads_failed == 1 and "kunming.yaml" in registry.last_error
    assert registry.units.lookup("kunming", "km_housing_fund").contacts[0].number == "087100000101"  # type: ignore[union-attr]

    edit(root / "units" / "kunming.yaml", 'number: "0871000001;01"', 'number: "087100000109"')
    accepted = await registry.reload("test")
    assert accepted.ok and accepted.changed and registry.last_error == ""
    assert registry.units.lookup("kunming", "km_housing_fund").contacts[0].number == "087100000109"  # type: ignore[union-attr]
    assert registry.current.version == accepted.version != first.version


async def test_a_changed_codes_file_is_picked_up_by_the_watcher(root: Path) -> None:
    registry = DeskRegistry(root)
    first = registry.load_initial()
    assert registry.codes.disposition("dali", "callback_scheduled") is None
    watcher = asyncio.create_task(registry.watch(interval_s=0.05))
    try:
        edit(
            root / "codes" / "dali.yaml",
            "matter_types:",
            "dispositions:\n  - {id: callback_scheduled, label: 约定回电}\nmatter_types:",
        )
        await wait_until(lambda: registry.current.version != first.version)
        assert registry.codes.disposition("dali", "callback_scheduled") is not None
        (root / "units" / "dali.yaml").unlink()  # a file that goes is a change too
        await wait_until(lambda: registry.units.lookup("dali", "dl_erhai") is None)
    finally:
        watcher.cancel()


def test_a_broken_set_at_start_is_refused(root: Path) -> None:
    edit(root / "codes" / "province.yaml", "{id: dispatched, label: 派单", "{id: dispatched, label: 派单, colour: red")
    with pytest.raises(
        DeskFilesInvalid, match=r"codes/province\.yaml:13:\d+: error: dispositions\.1\.colour: unknown key"
    ):
        DeskRegistry(root).load_initial()


def test_units_check_exits_0_or_1_with_located_problems(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert check_paths([root], out) == 0
    assert "ok (6 files, 23 units" in out.getvalue()
    assert main(["units", "check", str(root / "units" / "kunming.yaml")]) == 0
    edit(root / "units" / "dali.yaml", "matter_types: [tourism]", "matter_types: [tourisme]")
    assert main(["units", "check", str(root)]) == 1
    printed = capsys.readouterr().out
    assert "dali.yaml:33:20: error: units.3.matter_types.0" in printed and "unknown matter type 'tourisme'" in printed
    out = io.StringIO()
    assert check_paths([root.parent / "nowhere", root.parent], out) == 1
    assert "no such file or folder" in out.getvalue() and "no units/*.yaml or codes/*.yaml files" in out.getvalue()
    draft = root.parent / "draft.yaml"
    draft.write_text("units: []\n", encoding="utf-8")
    out = io.StringIO()
    assert check_paths([draft], out) == 1
    assert "a file is checked with its set" in out.getvalue()
