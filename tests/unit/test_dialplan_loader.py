"""The dialplan checker: every error names file, line, column and what was expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.dialplan.directory import dialplan_files, load_platform_dialplan
from ivr.dialplan.loader import DialplanInvalid, parse_dialplan
from ivr.dialplan.schema import MenuNode
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
platform: dali
name: 大理州12345
area_code: "0872"
prompts:
  welcome: 您好
  menu: 请按键
  bye: 再见
  leave: 请留言
start: entry
nodes:
  entry: {kind: hours, open: welcome, closed: vm}
  welcome: {kind: play, prompts: [welcome], next: menu}
  menu:
    kind: menu
    prompt: menu
    options: {0: seat, 1: tag}
    default: seat
  tag: {kind: set, tags: {category: complaint}, next: seat}
  seat: {kind: queue, next: vm}
  vm: {kind: voicemail, prompt: leave, next: bye}
  bye: {kind: hangup, prompt: bye}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(DialplanInvalid) as caught:
        parse_dialplan(textwrap.dedent(text), "dali.yaml", lambda name: False)
    return [str(p) for p in caught.value.problems]


def edited(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def test_good_dialplan_loads() -> None:
    plan = parse_dialplan(GOOD, "dali.yaml", lambda name: False)
    menu = plan.node("menu")
    assert isinstance(menu, MenuNode)
    assert menu.options == {"0": "seat", "1": "tag"}  # YAML integers become keys
    assert plan.warnings == ()
    assert len(plan.version) == 12


def test_every_shipped_dialplan_is_valid() -> None:
    files = dialplan_files(REPO / "dialplans")
    assert len(files) == 17
    for path in files:
        plan = load_platform_dialplan(path)
        assert plan.spec.platform == path.stem
        assert plan.warnings == ()


def test_unknown_node_kind() -> None:
    [problem] = problems(edited("tag: {kind: set,", "tag: {kind: sett,"))
    assert problem.startswith("dali.yaml:18:3:")
    assert "nodes.tag: unknown node kind 'sett' (expected one of: callback, caller_list, hangup, hours, menu" in problem


def test_dangling_target_names_the_expected_ids() -> None:
    dangling, unreachable = problems(edited("options: {0: seat, 1: tag}", "options: {0: seat, 1: tga}"))
    assert dangling.startswith("dali.yaml:16:")
    assert "nodes.menu.options.1: target 'tga' is not a node (expected one of: entry, welcome, menu, tag" in dangling
    assert "nodes.tag: node 'tag' cannot be reached from start 'entry'" in unreachable


def test_unreachable_node() -> None:
    found = problems(GOOD + "  orphan: {kind: hangup}\n")
    assert any("dali.yaml:22:3: error: nodes.orphan: node 'orphan' cannot be reached" in p for p in found)


def test_loop_with_no_exit() -> None:
    text = edited("  bye: {kind: hangup, prompt: bye}\n", "  bye: {kind: play, prompts: [bye], next: vm}\n")
    found = problems(text)
    assert any("nodes.bye: node 'bye' is in a loop with no exit" in p for p in found)


def test_menu_without_a_way_to_a_human() -> None:
    found = problems(edited("options: {0: seat, 1: tag}\n    default: seat", "options: {1: vm}\n    default: vm"))
    assert any("nodes.menu.options: menu 'menu' has no way to a human" in p for p in found)


def test_missing_prompt() -> None:
    [problem] = problems(edited("prompts: [welcome]", "prompts: [welcom]"))
    assert "dali.yaml:12:" in problem
    assert "nodes.welcome.prompts.0: prompt 'welcom' has no text under prompts: and no recorded file" in problem


def test_recorded_prompt_counts() -> None:
    text = edited("prompts: [welcome]", "prompts: [recorded_welcome]")
    plan = parse_dialplan(text, "dali.yaml", lambda name: name == "recorded_welcome")
    assert plan.node("welcome").kind == "play"


def test_digit_used_twice() -> None:
    text = edited("options: {0: seat, 1: tag}", "options:\n      0: seat\n      1: tag\n      1: seat")
    found = problems(text)
    assert any(p.startswith("dali.yaml:19:7: error: nodes.menu.options.1: key '1' is given twice") for p in found)


def test_bad_times_and_bad_digits() -> None:
    text = GOOD.replace("start: entry", "hours:\n  workday: ['20:00-08:00']\nstart: entry").replace(
        "options: {0: seat, 1: tag}", "options: {0: seat, 12: tag}"
    )
    found = problems(text)
    assert any("hours.workday: Value error, '20:00-08:00' ends before it starts" in p for p in found)
    assert any("nodes.menu.options: Value error, option '12' is not one key of 0-9, * or #" in p for p in found)


def test_yaml_syntax_error_position() -> None:
    [problem] = problems("platform: dali\nnodes: {a: [\n")
    assert problem.startswith("dali.yaml:3:1: error:")


def test_deep_menus_warn_only() -> None:
    text = GOOD.replace("1: tag}", "1: menu2}").replace(
        "  tag: {kind: set,",
        "  menu2: {kind: menu, prompt: menu, options: {0: seat, 1: menu3}, default: seat}\n"
        "  menu3: {kind: menu, prompt: menu, options: {0: seat, 1: tag}, default: seat}\n"
        "  tag: {kind: set,",
    )
    plan = parse_dialplan(text, "dali.yaml", lambda name: False)
    assert [str(w).split(": ", 3)[-1] for w in plan.warnings] == ["menu 'menu3' is 3 menus deep (more than 2)"]


def test_zero_should_reach_a_human_is_a_warning() -> None:
    plan = parse_dialplan(edited("options: {0: seat, 1: tag}", "options: {1: tag}"), "dali.yaml", lambda name: False)
    assert any("key 0 should reach a human" in str(w) for w in plan.warnings)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_random_text_never_crashes_the_loader(text: str) -> None:
    try:
        parse_dialplan(text, "fuzz.yaml", lambda name: False)
    except DialplanInvalid as exc:
        assert exc.problems


_yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
_yaml_values = st.recursive(
    _yaml_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["platform", "name", "area_code", "start", "nodes", "prompts", "hours"]), _yaml_values
    )
)
def test_random_structures_never_crash_the_loader(data: dict[str, object]) -> None:
    import yaml

    try:
        parse_dialplan(yaml.safe_dump(data, allow_unicode=True), "fuzz.yaml", lambda name: False)
    except DialplanInvalid as exc:
        assert exc.problems


def test_cli_check(tmp_path: Path) -> None:
    bad = tmp_path / "dali.yaml"
    bad.write_text(edited("options: {0: seat, 1: tag}", "options: {0: seat, 1: tga}"), encoding="utf-8")
    good = REPO / "dialplans" / "dali.yaml"
    result = run_cli("dialplan", "check", str(good), str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}:16:" in result.stdout
    assert f"{good}: ok" in result.stdout
    ok = run_cli("dialplan", "check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": ok") == 19  # 17 dialplans, the hotline directory and the caller lists
    assert "directory.yaml: ok (" in ok.stdout
