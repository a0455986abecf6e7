"""YAML is read within bounds: alias bombs, cycles, depth, size and values Python cannot make are
located errors of config.yaml, dialplans and the directory — never a crash, a hang or all memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.yamlsource import MAX_ALIAS_NODES, MAX_DEPTH, MAX_YAML_CHARS, YamlSyntaxError, parse_yaml
from hotline.config import ConfigError, parse_config
from ivr.dialplan.directory import parse_directory
from ivr.dialplan.loader import DialplanInvalid, parse_dialplan


def laughs(levels: int) -> str:
    """The "billion laughs": each level a list of nine aliases of the level before (about 340
    bytes for 7 levels, 9**levels nodes expanded)."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


# Level 1 adds 9 x 10 nodes, level 2 9 x 91, level 3 9 x 820 (8289 in all); the first alias of
# level 4 (line 5, column 10) adds 7381 more: over the budget of 10,000.
BOMB_AT = "5:10"
BOMB_PROBLEM = f"aliases stand for more than {MAX_ALIAS_NODES} nodes at alias *a3"


def no_prompts(_name: str) -> bool:
    return False


def test_an_alias_bomb_in_config_yaml_is_refused_at_the_alias() -> None:
    # six levels: 600,000 nodes expanded; took seconds before (nine levels exhausted memory)
    with pytest.raises(ConfigError) as refused:
        parse_config(laughs(6), "config.yaml", Path("."))
    assert str(refused.value).startswith(f"config.yaml:{BOMB_AT}: invalid YAML: {BOMB_PROBLEM}")


def test_an_alias_bomb_in_a_dialplan_or_the_directory_is_refused_at_the_alias() -> None:
    with pytest.raises(DialplanInvalid) as refused:
        parse_dialplan(laughs(6), "kunming.yaml", no_prompts)
    assert str(refused.value).startswith(f"kunming.yaml:{BOMB_AT}: error: (top level): invalid YAML: {BOMB_PROBLEM}")
    with pytest.raises(DialplanInvalid) as refused:
        parse_directory(laughs(6), "directory.yaml")
    assert str(refused.value).startswith(f"directory.yaml:{BOMB_AT}: error:")


def test_aliases_within_the_budget_still_work() -> None:
    document = parse_yaml("base: &base [a, b]\none: *base\ntwo: *base\n", "x.yaml")
    assert document.data == {"base": ["a", "b"], "one": ["a", "b"], "two": ["a", "b"]}
    config = parse_config(
        "seats:\n"
        "  - {id: '1001', secret: s3cret-1001, skills: &dialect [yue, yi]}\n"
        "  - {id: '1002', secret: s3cret-1002, skills: *dialect}\n",
        "config.yaml",
        Path("."),
    )
    assert [seat.skills for seat in config.seats] == [("yue", "yi"), ("yue", "yi")]


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("a: &a [*a]\n", "1:8", "alias *a is inside the node it refers to (a cycle)"),
        ("a: &a {b: [c, *a]}\n", "1:15", "alias *a is inside the node it refers to (a cycle)"),
        ("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n", f"1:{MAX_DEPTH + 3}", "nested more than"),
        (
            "d: &d " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\ne: [*d]\n",
            "2:5",
            "alias *d nests the document more than",
        ),
        ("a: 2026-13-01\n", "1:4", "not a valid timestamp: month must be in 1..12"),
        ("a: !!timestamp x\n", "1:4", "not a valid timestamp"),
        ("a: !!bool x\n", "1:4", "not a valid bool"),
        ("a: " + "9" * 5000 + "\n", "1:4", "not a valid int: Exceeds the limit (4300 digits)"),
    ],
)
def test_cycles_depth_and_impossible_values_are_located_errors(text: str, where: str, problem: str) -> None:
    with pytest.raises(YamlSyntaxError) as refused:
        parse_yaml(text, "x.yaml")
    assert str(refused.value).startswith(f"x.yaml:{where}: invalid YAML: {problem}")
    with pytest.raises(ConfigError, match=f"^config.yaml:{where}: invalid YAML"):
        parse_config(text, "config.yaml", Path("."))
    with pytest.raises(DialplanInvalid, match=f"^kunming.yaml:{where}: error"):
        parse_dialplan(text, "kunming.yaml", no_prompts)


def test_a_file_beyond_the_size_limit_is_refused_before_parsing() -> None:
    text = "a: [" + "1, " * (MAX_YAML_CHARS // 3) + "1]\n"
    with pytest.raises(ConfigError, match=f"^config.yaml: invalid YAML: the file is longer than {MAX_YAML_CHARS}"):
        parse_config(text, "config.yaml", Path("."))
