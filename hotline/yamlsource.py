"""Load YAML with source positions, so validation errors can name file, line and column.

Pure: text in, values out. Used for config.yaml now and for dialplans later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a source file."""

    line: int
    column: int


class YamlSyntaxError(ValueError):
    """The text is not YAML; carries the position the parser stopped at."""

    def __init__(self, filename: str, position: Position | None, problem: str) -> None:
        where = f"{filename}:{position.line}:{position.column}" if position else filename
        super().__init__(f"{where}: invalid YAML: {problem}")
        self.filename = filename
        self.position = position
        self.problem = problem


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML document and where each key path starts in the source."""

    filename: str
    data: Any
    positions: dict[KeyPath, Position]
    duplicate_keys: tuple[tuple[KeyPath, Position], ...] = ()

    def position_of(self, path: KeyPath) -> Position | None:
        """The position of the deepest prefix of ``path`` that exists in the source."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


def _mark_position(mark: yaml.Mark | None) -> Position | None:
    return Position(mark.line + 1, mark.column + 1) if mark is not None else None


def _walk(
    node: yaml.Node,
    path: KeyPath,
    positions: dict[KeyPath, Position],
    duplicates: list[tuple[KeyPath, Position]],
) -> None:
    positions.setdefault(path, Position(node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*path, key)
            position = Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in seen:
                # PyYAML keeps the last value silently; a digit used twice in a menu hides here
                duplicates.append((child, position))
                continue
            seen.add(key)
            positions[child] = position
            _walk(value_node, child, positions, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), positions, duplicates)


def parse_yaml(text: str, filename: str) -> YamlDocument:
    """Parse one YAML document; raise YamlSyntaxError with a position when it is not YAML."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except RecursionError:
        raise YamlSyntaxError(filename, None, "nesting too deep") from None
    except yaml.MarkedYAMLError as exc:
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        raise YamlSyntaxError(filename, _mark_position(exc.problem_mark), problem) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(filename, None, str(exc)) from None
    positions: dict[KeyPath, Position] = {}
    duplicates: list[tuple[KeyPath, Position]] = []
    if node is not None:
        _walk(node, (), positions, duplicates)
    return YamlDocument(filename=filename, data=data, positions=positions, duplicate_keys=tuple(duplicates))
