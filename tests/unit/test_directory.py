"""The shared hotline directory: entries per platform, located errors, dialplans that use it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivr.dialplan.directory import DIRECTORY_FILE, load_platform_dialplan, parse_directory
from ivr.dialplan.loader import DialplanInvalid
from ivr.dialplan.registry import DialplanRegistry
from ivr.dialplan.schema import DestinationKind, TransferMode

REPO = Path(__file__).resolve().parents[2]

DIRECTORY = """\
hotlines:
  police: {name: 公安报警 110, kind: emergency, number: "110", trunk: carrier, modes: [three_way, blind]}
  tax: {name: 纳税服务 12366, kind: department, number: "12366", trunk: carrier, platforms: [province]}
  water:
    name: 供水服务
    kind: utility
    number: "96666"
    trunk: carrier
    local: {dali: {number: "087296666", trunk: dali_carrier}}
"""

DIALPLAN = """\
platform: kunming
name: 昆明市12345
area_code: "0871"
prompts: {bye: 再见}
destinations:
  water: {trunk: own, number: "12319"}
start: police
nodes:
  police: {kind: transfer, to: police, next: bye}
  bye: {kind: hangup, prompt: bye}
"""


def test_entries_per_platform() -> None:
    directory = parse_directory(DIRECTORY, DIRECTORY_FILE)
    kunming = directory.destinations_for("kunming")
    assert set(kunming) == {"police", "water"}  # tax is the province's only
    assert kunming["police"].kind is DestinationKind.EMERGENCY
    assert kunming["police"].modes == (TransferMode.THREE_WAY, TransferMode.BLIND)
    assert kunming["water"].number == "96666"
    dali = directory.destinations_for("dali")
    assert (dali["water"].number, dali["water"].trunk) == ("087296666", "dali_carrier")
    assert directory.destinations_for("province")["tax"].number == "12366"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('number: "110"', 'number: "1 10"', "directory.yaml:2:"),
        ("kind: emergency", "kind: urgent", "hotlines.police.kind"),
        ("modes: [three_way, blind]", "modes: [attended]", "never attended"),
        ("platforms: [province]", "platforms: [Province]", "hotlines.tax.platforms.0"),
        (
            "    trunk: carrier\n    local",
            "    trunk: carrier\n    trunc: x\n    local",
            "hotlines.water.trunc: unknown key",
        ),
    ],
)
def test_a_broken_entry_is_named_with_file_and_line(old: str, new: str, expected: str) -> None:
    with pytest.raises(DialplanInvalid) as caught:
        parse_directory(DIRECTORY.replace(old, new), DIRECTORY_FILE)
    assert expected in str(caught.value)


def test_a_dialplan_transfers_to_directory_entries_and_its_own_win(tmp_path: Path) -> None:
    (tmp_path / DIRECTORY_FILE).write_text(DIRECTORY, encoding="utf-8")
    (tmp_path / "kunming.yaml").write_text(DIALPLAN, encoding="utf-8")
    plan = load_platform_dialplan(tmp_path / "kunming.yaml")
    assert plan.destinations["police"].number == "110"
    assert plan.destinations["water"].number == "12319"  # the dialplan's own
    (tmp_path / "kunming.yaml").write_text(DIALPLAN.replace("to: police", "to: tax"), encoding="utf-8")
    with pytest.raises(DialplanInvalid) as caught:
        load_platform_dialplan(tmp_path / "kunming.yaml")
    [problem] = caught.value.problems
    assert "kunming.yaml:9:28:" in str(problem)
    assert "destination 'tax' is neither under destinations: nor in the directory" in str(problem)


def test_a_dialplans_own_emergency_destination_is_never_attended(tmp_path: Path) -> None:
    own = DIALPLAN.replace(
        'water: {trunk: own, number: "12319"}', 'fire: {trunk: own, number: "119", kind: emergency, modes: [attended]}'
    )
    (tmp_path / "kunming.yaml").write_text(own, encoding="utf-8")
    with pytest.raises(DialplanInvalid) as caught:
        load_platform_dialplan(tmp_path / "kunming.yaml")
    assert "kunming.yaml:6:" in str(caught.value)
    assert "never attended" in str(caught.value)


async def test_a_broken_directory_keeps_the_running_dialplan(tmp_path: Path) -> None:
    directory = tmp_path / DIRECTORY_FILE
    directory.write_text(DIRECTORY, encoding="utf-8")
    (tmp_path / "kunming.yaml").write_text(DIALPLAN, encoding="utf-8")

    async def prepare(plan: object) -> None:
        return None

    registry = DialplanRegistry(tmp_path / "kunming.yaml", tmp_path, "kunming", prepare)
    first = await registry.load_initial()
    directory.write_text(DIRECTORY.replace("hotlines:", "hotlines: [", 1), encoding="utf-8")
    rejected = await registry.reload("test")
    assert not rejected.ok
    assert registry.current is first
    assert any(p.startswith(f"{directory}:") for p in rejected.problems)
    directory.write_text(DIRECTORY.replace('number: "110"', 'number: "110110"'), encoding="utf-8")
    accepted = await registry.reload("test")
    assert accepted.ok and accepted.changed  # the directory is part of the dialplan's version
    assert registry.current.destinations["police"].number == "110110"


def test_the_shipped_directory_serves_every_platform() -> None:
    text = (REPO / "dialplans" / DIRECTORY_FILE).read_text(encoding="utf-8")
    directory = parse_directory(textwrap.dedent(text), DIRECTORY_FILE)
    for platform in ("kunming", "dali", "province"):
        emergencies = {
            d.number for d in directory.destinations_for(platform).values() if d.kind is DestinationKind.EMERGENCY
        }
        assert emergencies == {"110", "119", "120", "122"}
