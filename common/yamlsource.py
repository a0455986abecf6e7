"""Load YAML with source positions, so validation errors can name file, line and column.

Pure: text in, values out. Used for config.yaml, the dialplans and the hotline directory.

Bounded: a file is at most ``MAX_YAML_CHARS`` long and nested at most ``MAX_DEPTH`` levels, and
aliases may add at most ``MAX_ALIAS_NODES`` nodes in all. An alias is a reference to an anchored
node, so a few hundred bytes of aliases of aliases ("billion laughs") stand for billions of
nodes: every walk over the document (positions, validation) would pay for all of them. The
budget is counted while the document is composed, before anything is expanded, and the error
names the alias that breaks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

KeyPath = tuple[str | int, ...]

MAX_YAML_CHARS = 256 * 1024  # the largest shipped file is about 6 KB
MAX_DEPTH = 64  # levels of nesting, aliases expanded
MAX_ALIAS_NODES = 10_000  # nodes that aliases add to the document, in all


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


class _Bounded(yaml.composer.Composer, yaml.constructor.SafeConstructor):
    """PyYAML's composer and safe constructor, counting what aliases stand for while the
    document is composed (see above) and naming the node a value cannot be made of (a date
    such as 2026-13-01, an integer of more than 4300 digits, ``!!timestamp x``, ``!!bool x``)."""

    def _start_bounds(self) -> None:
        self.alias_nodes = 0  # nodes added by aliases so far
        self._depth = 0  # of the node being composed
        self._open: set[str] = set()  # anchors whose node is being composed
        # per composed node (by id; the nodes live as long as the loader's tree): its size and
        # its height with every alias in it expanded
        self._size: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]  # the parser's, a base beside ours
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor or "")
            if target is not None:  # an unknown alias: PyYAML's own error follows
                self._count_alias(event, target)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            self._refuse(f"nested more than {MAX_DEPTH} levels deep", event)
        anchor: str | None = getattr(event, "anchor", None)
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor or "")
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        sizes = [self._size[id(child)] for child in children]
        self._size[id(node)] = (1 + sum(size for size, _ in sizes), 1 + max((height for _, height in sizes), default=0))
        return node

    def _count_alias(self, event: yaml.AliasEvent, target: yaml.Node) -> None:
        if event.anchor in self._open:
            self._refuse(f"alias *{event.anchor} is inside the node it refers to (a cycle)", event)
        size, height = self._size[id(target)]
        if self._depth + height > MAX_DEPTH:
            self._refuse(f"alias *{event.anchor} nests the document more than {MAX_DEPTH} levels deep", event)
        self.alias_nodes += size
        if self.alias_nodes > MAX_ALIAS_NODES:
            self._refuse(
                f"aliases stand for more than {MAX_ALIAS_NODES} nodes at alias *{event.anchor}"
                " (an alias is for reusing a block, not for multiplying it)",
                event,
            )

    @staticmethod
    def _refuse(problem: str, event: yaml.Event) -> NoReturn:
        mark = event.start_mark  # libyaml's Mark has the same line and column
        raise yaml.composer.ComposerError(None, None, problem, mark)  # type: ignore[arg-type]

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # what int(), date(), a regex or a table lookup in PyYAML raised
            kind = node.tag.rpartition(":")[2]
            problem = f"not a valid {kind}" + (f": {exc}" if isinstance(exc, ValueError | OverflowError) else "")
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


try:
    from yaml._yaml import CParser

    class _Loader(_Bounded, CParser, yaml.resolver.Resolver):
        """libyaml's parser under PyYAML's composer: about five times faster than the
        pure-Python parser, with the same events."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            yaml.composer.Composer.__init__(self)
            self._start_bounds()

except ImportError:  # PyYAML built without libyaml

    class _Loader(_Bounded, yaml.SafeLoader):  # type: ignore[no-redef]
        def __init__(self, text: str) -> None:
            yaml.SafeLoader.__init__(self, text)
            self._start_bounds()


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
    """Parse one YAML document; raise YamlSyntaxError with a position when it is not YAML or
    breaks a bound (size, depth, aliases)."""
    if len(text) > MAX_YAML_CHARS:
        raise YamlSyntaxError(filename, None, f"the file is longer than {MAX_YAML_CHARS} characters")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        # walked before construction: merging ``<<`` keys rewrites the nodes
        positions: dict[KeyPath, Position] = {}
        duplicates: list[tuple[KeyPath, Position]] = []
        if node is not None:
            _walk(node, (), positions, duplicates)
        data = loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise YamlSyntaxError(filename, None, "nesting too deep") from None
    except yaml.MarkedYAMLError as exc:
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        raise YamlSyntaxError(filename, _mark_position(exc.problem_mark), problem) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(filename, None, str(exc)) from None
    finally:
        loader.dispose()
    return YamlDocument(filename=filename, data=data, positions=positions, duplicate_keys=tuple(duplicates))
