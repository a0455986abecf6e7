"""Located problems of checked YAML files: read a file, parse it with positions, and turn
pydantic's ValidationErrors into problems that name ``file:line:column`` and the key path.

Shared by the loaders of the knowledge base, the units directory and the dialplans: each keeps
its own messages for what only it checks (a file that is not a mapping, its own cross checks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from common.textfiles import read_text_file
from common.yamlsource import KeyPath, Position, YamlDocument, YamlSyntaxError, parse_yaml


@dataclass(frozen=True)
class Problem:
    """One located problem in a file: ``file:line:column: severity: key.path: message``."""

    filename: str
    position: Position | None
    path: KeyPath
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.filename}:{self.position.line}:{self.position.column}" if self.position else self.filename
        dotted = ".".join(str(p) for p in self.path) or "(top level)"
        return f"{where}: {self.severity}: {dotted}: {self.message}"


class ProblemsFound(ValueError):
    """Files that cannot be used; ``problems`` says why (one line each)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def read_file(path: Path) -> str | Problem:
    """The file's text, or the problem naming it (cannot be read, not UTF-8)."""
    try:
        return read_text_file(path)
    except OSError as exc:
        return Problem(str(path), None, (), f"cannot read: {exc.strerror}")
    except UnicodeDecodeError:
        return Problem(str(path), None, (), "not UTF-8 text")


def parse_document(text: str, filename: str) -> tuple[YamlDocument | None, list[Problem]]:
    """The YAML document (None when the text is not YAML) and its problems: the syntax error,
    or each key given twice."""
    try:
        document = parse_yaml(text, filename)
    except YamlSyntaxError as exc:
        return None, [Problem(filename, exc.position, (), f"invalid YAML: {exc.problem}")]
    problems = [
        Problem(filename, position, path, f"key {path[-1]!r} is given twice (only the last would count)")
        for path, position in document.duplicate_keys
    ]
    return document, problems


def plain_key_path(loc: tuple[int | str, ...]) -> KeyPath:
    """pydantic's error location as a YAML key path."""
    return tuple(p for p in loc if isinstance(p, str | int))


def schema_message(item: ErrorDetails) -> str:
    """What is wrong, in the loaders' words for an unknown or a missing key; else pydantic's."""
    if item["type"] == "extra_forbidden":
        return "unknown key"
    if item["type"] == "missing":
        return "required key is missing"
    return item["msg"]


def schema_problems(
    document: YamlDocument,
    error: ValidationError,
    key_path: Callable[[tuple[int | str, ...]], KeyPath] = plain_key_path,
    message: Callable[[ErrorDetails], str] = schema_message,
    *,
    skip_covered_too_short: bool = False,
) -> list[Problem]:
    """One located problem per validation error. ``skip_covered_too_short``: pass over a list
    said to be too short when an item in it is wrong (pydantic calls it empty as well)."""
    errors = error.errors()
    paths = [key_path(item["loc"]) for item in errors]
    problems = []
    for item, path in zip(errors, paths, strict=True):
        if (
            skip_covered_too_short
            and item["type"] == "too_short"
            and any(len(o) > len(path) and o[: len(path)] == path for o in paths)
        ):
            continue
        problems.append(Problem(document.filename, document.position_of(path), path, message(item)))
    return problems
