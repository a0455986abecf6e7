"""Fuzz the YAML loaders: config.yaml (hotline/config.py), a dialplan (ivr/dialplan/loader.py) and
the hotline directory (ivr/dialplan/directory.py), from the shipped files.

Two kinds of input: the shipped file's data with values replaced, keys dropped or added (wrong
types, huge numbers, dates, unicode, nesting), dumped back to YAML; and the shipped text with YAML
tokens spliced into its lines (tags, anchors and aliases, merges, flow brackets, impossible dates,
4300-digit integers). Whatever the file says, loading it returns a value or raises the loader's
own error, which names the file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from hotline.config import ConfigError, parse_config
from ivr.dialplan.directory import parse_directory
from ivr.dialplan.loader import DialplanInvalid, parse_dialplan
from tests.fuzz.harness import example, fuzz_target

ROOT = Path(__file__).resolve().parents[2]
CONFIG_TEXT = (ROOT / "config.yaml").read_text(encoding="utf-8")
DIALPLAN_TEXT = (ROOT / "dialplans" / "kunming.yaml").read_text(encoding="utf-8")
DIRECTORY_TEXT = (ROOT / "dialplans" / "directory.yaml").read_text(encoding="utf-8")
DIRECTORY = parse_directory(DIRECTORY_TEXT, "directory.yaml")
SHARED = DIRECTORY.destinations_for("kunming")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**80), 10**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.text(max_size=30),
    st.sampled_from(["", "0871", "0871\n", "kunming", "menu", "hangup", "08:00-20:00", "25:00-26:00", "a;b", "-f/etc"]),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in ``data`` (mappings and sequences)."""
    found = [prefix]
    if isinstance(data, dict):
        for key, child in data.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(data, list):
        for index, child in enumerate(data):
            found += _paths(child, (*prefix, index))
    return found


def _mutate(data: Any, draw: Callable[..., Any]) -> Any:
    """Replace, drop or add at a few drawn places."""
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if not path:
            data = draw(values) if action == "replace" else data
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10) | st.sampled_from(["nodes", "seats", "hotlines", "<<"]))] = draw(values)
        else:
            parent.append(draw(values))
    return data


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


tokens = st.sampled_from(
    [
        "2026-13-01",
        "2026-02-30",
        "9" * 5000,
        "0x",
        "0o9",
        "1e999",
        "-.inf",
        ".nan",
        "~",
        "!!binary x",
        "!!binary aGVsbG8=",
        "!!python/object/apply:os.system ['true']",
        "!!timestamp 2026-01-01",
        "!!set {a, b}",
        "!!omap [a: 1]",
        "&a [1, 2]",
        "*a",
        "*nowhere",
        "&b {x: *b}",
        "<<: *a",
        "<<: [*a, *a]",
        "? [a, b]",
        "? {a: 1}",
        "[",
        "{",
        "]",
        "}",
        "'",
        '"',
        "|",
        ">-",
        "- ",
        ": ",
        "%YAML 1.1",
        "---",
        "...",
        "\t",
        "\x00",
        "\ufeff",
        "\u2028",
        "#",
        "张三丰",
        "[" * 70 + "]" * 70,
    ]
)


@st.composite
def spliced(draw: Callable[..., Any], text: str) -> str:
    """``text`` with a few lines given YAML tokens (or generated text) in place of their values."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        token = draw(st.one_of(tokens, tokens, st.text(max_size=20)))
        how = draw(st.sampled_from(["value", "insert", "append", "replace"]))
        key, sep, _ = line.partition(": ")
        if how == "value" and sep:
            lines[index] = f"{key}: {token}"
        elif how == "insert":
            lines.insert(index, token)
        elif how == "append":
            lines[index] = line + token
        else:
            lines[index] = token
    return "\n".join(lines)


def _config(text: str) -> None:
    try:
        parse_config(text, "config.yaml", Path("/srv/hotline"))
    except ConfigError as exc:
        assert str(exc).startswith("config.yaml")


def _dialplan(text: str) -> None:
    try:
        parse_dialplan(text, "kunming.yaml", lambda _name: False, SHARED)
    except DialplanInvalid as exc:
        assert exc.problems
        assert all(problem.filename == "kunming.yaml" for problem in exc.problems)


def _directory(text: str) -> None:
    try:
        directory = parse_directory(text, "directory.yaml")
    except DialplanInvalid as exc:
        assert exc.problems
        assert all(problem.filename == "directory.yaml" for problem in exc.problems)
    else:
        for platform in ("kunming", "province", "dali", ""):
            directory.destinations_for(platform)


@fuzz_target("config.yaml")
@given(st.data())
def test_config_with_changed_values_loads_or_is_refused(data: st.DataObject) -> None:
    text = _dump(_mutate(yaml.safe_load(CONFIG_TEXT), data.draw))
    with example("config.yaml"):
        _config(text)


@fuzz_target("config.text")
@given(st.one_of(spliced(CONFIG_TEXT), st.text(max_size=300), st.lists(tokens | st.text(max_size=8)).map(" ".join)))
def test_config_text_with_yaml_tokens_loads_or_is_refused(text: str) -> None:
    with example("config.text"):
        _config(text)


@fuzz_target("dialplan.yaml")
@given(st.data())
def test_dialplan_with_changed_values_loads_or_is_refused(data: st.DataObject) -> None:
    text = _dump(_mutate(yaml.safe_load(DIALPLAN_TEXT), data.draw))
    with example("dialplan.yaml"):
        _dialplan(text)


@fuzz_target("dialplan.text")
@given(st.one_of(spliced(DIALPLAN_TEXT), st.text(max_size=300), st.lists(tokens | st.text(max_size=8)).map("\n".join)))
def test_dialplan_text_with_yaml_tokens_loads_or_is_refused(text: str) -> None:
    with example("dialplan.text"):
        _dialplan(text)


@fuzz_target("directory.yaml")
@given(st.data(), st.booleans())
def test_directory_loads_or_is_refused(data: st.DataObject, as_text: bool) -> None:
    text = data.draw(spliced(DIRECTORY_TEXT)) if as_text else _dump(_mutate(yaml.safe_load(DIRECTORY_TEXT), data.draw))
    with example("directory.yaml"):
        _directory(text)
