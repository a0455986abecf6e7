"""Load knowledge files: YAML with positions → schema → cross-file checks → entries.

Every problem is reported as ``file:line:column: error: key.path: what is wrong``. The base is
``<root>/province/*.yaml`` (every platform's seats see these) and ``<root>/<platform id>/*.yaml``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from common.yamlcheck import Problem, ProblemsFound, parse_document, plain_key_path, read_file, schema_problems
from common.yamlsource import KeyPath, Position
from knowledge.model import RESERVED_IDS, Entry, FileSpec

PLATFORM_FOLDER = re.compile(r"[a-z][a-z0-9_]{1,31}")
MAX_FILES = 1000


class References(Protocol):
    """What a knowledge entry names that lives elsewhere (the units directory and its matter
    types, ``units/``): asked while checking, so an entry never names a unit or a matter type
    the desk does not know. The app shell answers it; without one, neither is checked."""

    def has_unit(self, platform: str, unit_id: str) -> bool: ...

    def has_matter_type(self, platform: str, matter_type: str) -> bool: ...


class KnowledgeInvalid(ProblemsFound):
    """The files cannot be used; ``problems`` says why."""


@dataclass(frozen=True)
class KnowledgeBase:
    """A checked set of entries. Immutable: a reload builds a new one."""

    entries: tuple[Entry, ...]
    version: str
    files: int

    @classmethod
    def empty(cls) -> KnowledgeBase:
        return cls((), "empty", 0)


def _key_path(loc: tuple[int | str, ...]) -> KeyPath:
    # a BeforeValidator's type name ('function-before[…]') is no part of the key path
    return tuple(p for p in plain_key_path(loc) if not (isinstance(p, str) and p.startswith("function-")))


@dataclass(frozen=True)
class ParsedFile:
    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...]
    version: str
    id_positions: tuple[Position | None, ...] = ()  # of each entry's id


def parse_file(text: str, filename: str, platform: str, references: References | None = None) -> ParsedFile:
    """Check one file's text (``platform``: the folder it is in). Never raises for bad content:
    the problems are returned, located."""
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    document, problems = parse_document(text, filename)
    if document is None:
        return ParsedFile((), tuple(problems), version)
    if not isinstance(document.data, dict):
        problems.append(Problem(filename, Position(1, 1), (), "a knowledge file is a mapping with `entries:`"))
        return ParsedFile((), tuple(problems), version)
    try:
        spec = FileSpec.model_validate(document.data)
    except ValidationError as exc:
        return ParsedFile((), (*problems, *schema_problems(document, exc, _key_path)), version)
    entries = []
    id_positions = []
    for index, item in enumerate(spec.entries):

        def at(key: str, index: int = index) -> tuple[Position | None, KeyPath]:
            path: KeyPath = ("entries", index, key)
            return document.position_of(path), path

        if item.id in RESERVED_IDS:
            problems.append(Problem(filename, *at("id"), f"{item.id!r} is reserved (an API path), choose another id"))
        if item.valid_from and item.valid_until and item.valid_until < item.valid_from:
            problems.append(
                Problem(filename, *at("valid_until"), f"{item.valid_until} is before valid_from {item.valid_from}")
            )
        if item.unit is not None and references is not None and not references.has_unit(platform, item.unit):
            problems.append(
                Problem(filename, *at("unit"), f"unknown unit {item.unit!r} (not in {platform}'s units directory)")
            )
        if references is not None and not references.has_matter_type(platform, item.matter_type):
            problems.append(
                Problem(
                    filename, *at("matter_type"), f"unknown matter type {item.matter_type!r} (not in the desk codes)"
                )
            )
        position = document.position_of(("entries", index))
        source = f"{filename}:{position.line}" if position else filename
        entries.append(Entry.from_spec(item, platform, source, version))
        id_positions.append(at("id")[0])
    return ParsedFile(tuple(entries), tuple(problems), version, tuple(id_positions))


def knowledge_files(
    root: Path, platforms: Collection[str] | None = None
) -> tuple[list[tuple[str, Path]], list[Problem]]:
    """(platform, file) for every ``<root>/<platform>/*.yaml`` (of ``platforms`` only, if given),
    in a stable order; problems for folders that cannot be a platform's."""
    found: list[tuple[str, Path]] = []
    problems: list[Problem] = []
    if not root.is_dir():
        return found, problems
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        if not PLATFORM_FOLDER.fullmatch(folder.name):
            problems.append(
                Problem(str(folder), None, (), "a folder of the knowledge base is named after a platform id")
            )
            continue
        if platforms is None or folder.name in platforms:
            found += [(folder.name, path) for path in sorted(folder.glob("*.yaml")) if path.is_file()]
    if len(found) > MAX_FILES:
        problems.append(Problem(str(root), None, (), f"more than {MAX_FILES} knowledge files"))
    return found, problems


def check_files(files: Iterable[tuple[str, Path]], references: References | None = None) -> KnowledgeBase:
    """Load and check files together (ids are unique across all of them); raise KnowledgeInvalid."""
    problems: list[Problem] = []
    entries: list[Entry] = []
    versions: list[str] = []
    first: dict[str, str] = {}  # entry id → where it was first given
    for platform, path in files:
        text = read_file(path)
        if isinstance(text, Problem):
            problems.append(text)
            continue
        parsed = parse_file(text, str(path), platform, references)
        problems += parsed.problems
        versions.append(f"{path}:{parsed.version}")
        for index, entry in enumerate(parsed.entries):
            if entry.id in first:
                where = parsed.id_positions[index]
                message = f"id {entry.id!r} is already used at {first[entry.id]}"
                problems.append(Problem(str(path), where, ("entries", index, "id"), message))
                continue
            first[entry.id] = entry.source
            entries.append(entry)
    if problems:
        raise KnowledgeInvalid(problems)
    version = hashlib.sha256("\n".join(versions).encode("utf-8")).hexdigest()[:12] if versions else "empty"
    return KnowledgeBase(tuple(entries), version, len(versions))


def load_base(
    root: Path, platforms: Collection[str] | None = None, references: References | None = None
) -> KnowledgeBase:
    """The knowledge base under ``root`` (only ``platforms``' folders, if given); KnowledgeInvalid
    with every located problem. A missing root is an empty base."""
    files, problems = knowledge_files(root, platforms)
    if problems:
        raise KnowledgeInvalid(problems)
    return check_files(files, references)


def check_path(path: Path, references: References | None = None) -> KnowledgeBase:
    """For ``knowledge check``: a file (its folder names its platform), a platform's folder, or a
    knowledge base root."""
    if path.is_file():
        return check_files([(path.resolve().parent.name, path)], references)
    if not path.is_dir():
        raise KnowledgeInvalid([Problem(str(path), None, (), "no such file or folder")])
    if any(child.suffix == ".yaml" for child in path.iterdir() if child.is_file()):
        return check_files([(path.resolve().name, p) for p in sorted(path.glob("*.yaml")) if p.is_file()], references)
    return load_base(path, None, references)
