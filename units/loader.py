"""Load and check the units directory and the desk codes as one set.

Layout (``units.dir`` in config.yaml, default ``directory/``)::

    directory/units/province.yaml   province-wide units (every platform sees them)
    directory/units/<platform>.yaml a platform's own units
    directory/codes/province.yaml   the province-wide codes: the default of every platform
    directory/codes/<platform>.yaml a platform's own codes, added to the default (``omit`` drops some)

A file's name is its platform. The whole set is checked together (a unit's parent, its matter
types and its id are checked against the other files) and is used whole or not at all. Every
problem is reported as ``file:line:column: error: key.path: what is wrong``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from common.yamlcheck import Problem, ProblemsFound, parse_document, read_file, schema_message, schema_problems
from common.yamlsource import KeyPath, Position, YamlDocument
from units.model import PROVINCE, CodesFile, DeskCodes, Disposition, Omit, PauseReason, PlacedUnit, Unit, UnitsFile

UNITS_DIR = "units"
CODES_DIR = "codes"
MAX_FILES = 64  # per folder: the province and 16 prefectures, with room to spare
_PLATFORM = re.compile(r"[a-z][a-z0-9_]{1,31}")
_Parsed = TypeVar("_Parsed", bound=BaseModel)


class DeskFilesInvalid(ProblemsFound):
    """The set cannot be used; ``problems`` says why."""


@dataclass(frozen=True)
class Source:
    """One file's text; ``filename`` is what problems name."""

    filename: str
    text: str


@dataclass(frozen=True)
class UnitDirectory:
    """The checked units: a platform sees its own and the province-wide ones."""

    by_platform: Mapping[str, Mapping[str, PlacedUnit]] = field(default_factory=dict)

    def visible(self, platform: str) -> list[PlacedUnit]:
        """The platform's own units, then the province-wide ones (the province: its own only)."""
        own = list(self.by_platform.get(platform, {}).values())
        if platform == PROVINCE:
            return own
        return own + list(self.by_platform.get(PROVINCE, {}).values())

    def lookup(self, platform: str, unit_id: str) -> Unit | None:
        placed = self.placed(platform, unit_id)
        return placed.unit if placed else None

    def placed(self, platform: str, unit_id: str) -> PlacedUnit | None:
        return self.by_platform.get(platform, {}).get(unit_id) or self.by_platform.get(PROVINCE, {}).get(unit_id)

    def for_matter_type(self, platform: str, matter_type: str) -> list[Unit]:
        """The units the platform sees that handle ``matter_type`` (its own first)."""
        return [p.unit for p in self.visible(platform) if matter_type in p.unit.matter_types]


@dataclass(frozen=True)
class CodeBook:
    """Every platform's codes; a platform without a codes file has the province-wide ones."""

    by_platform: Mapping[str, DeskCodes] = field(default_factory=dict)

    def for_platform(self, platform: str) -> DeskCodes:
        return self.by_platform.get(platform) or self.by_platform.get(PROVINCE) or DeskCodes()

    def disposition(self, platform: str, code: str) -> Disposition | None:
        return self.for_platform(platform).disposition(code)

    def pause_reason(self, platform: str, code: str) -> PauseReason | None:
        return self.for_platform(platform).pause_reason(code)


@dataclass(frozen=True)
class DeskDirectory:
    """One checked version of the whole set. Immutable: a reload makes a new one."""

    units: UnitDirectory = UnitDirectory()
    codes: CodeBook = CodeBook()
    version: str = ""
    files: tuple[str, ...] = ()


EMPTY = DeskDirectory()


def _read_mapping(source: Source, problems: list[Problem]) -> YamlDocument | None:
    document, found = parse_document(source.text, source.filename)
    problems += found
    if document is None:
        return None
    if document.data is None:
        return YamlDocument(source.filename, {}, document.positions)
    if not isinstance(document.data, dict):
        problems.append(Problem(source.filename, Position(1, 1), (), "the file is a mapping of keys"))
        return None
    return document


def _schema(document: YamlDocument, model: type[_Parsed], problems: list[Problem]) -> _Parsed | None:
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        # a list whose only item is wrong: pydantic also calls it empty
        problems += schema_problems(document, exc, message=_message, skip_covered_too_short=True)
        return None


def _message(item: ErrorDetails) -> str:
    return schema_message(item).removeprefix("Value error, ")


def _platform_of(source: Source, problems: list[Problem]) -> str | None:
    platform = Path(source.filename).stem
    if _PLATFORM.fullmatch(platform) is None:
        problems.append(
            Problem(source.filename, None, (), "the file's name is its platform: lower-case letters, digits and '_'")
        )
        return None
    return platform


@dataclass(frozen=True)
class _CodesSource:
    platform: str
    document: YamlDocument
    codes: CodesFile


class _Coded(Protocol):
    @property
    def id(self) -> str: ...


_Code = TypeVar("_Code", bound=_Coded)


def _where(document: YamlDocument, path: KeyPath) -> str:
    position = document.position_of(path)
    return f"{document.filename}:{position.line}" if position else document.filename


def _merge(
    kind: str,
    own: tuple[_Code, ...],
    parsed: _CodesSource,
    province: _CodesSource | None,
    problems: list[Problem],
) -> tuple[_Code, ...]:
    """The province-wide ``kind`` codes a platform does not omit, then its own; problems for
    ids given twice, ids already province-wide and omissions of nothing."""
    doc = parsed.document
    inherited: dict[str, tuple[_Code, KeyPath]] = {}
    if parsed.platform != PROVINCE and province is not None:
        defaults: tuple[_Code, ...] = getattr(province.codes, kind)
        omitted: tuple[str, ...] = getattr(parsed.codes.omit, kind)
        default_ids = {item.id for item in defaults}
        for index, code in enumerate(omitted):
            if code not in default_ids:
                path: KeyPath = ("omit", kind, index)
                message = f"{code!r} is not among the province-wide {kind}: nothing to omit"
                problems.append(Problem(doc.filename, doc.position_of(path), path, message))
        inherited = {item.id: (item, (kind, i, "id")) for i, item in enumerate(defaults) if item.id not in omitted}
    first_at: dict[str, KeyPath] = {}
    for index, item in enumerate(own):
        path = (kind, index, "id")
        if item.id in first_at:
            message = f"id {item.id!r} is given twice (first at {_where(doc, first_at[item.id])})"
            problems.append(Problem(doc.filename, doc.position_of(path), path, message))
        elif item.id in inherited and province is not None:
            first = _where(province.document, inherited[item.id][1])
            message = f"id {item.id!r} is already province-wide ({first}): list it under omit.{kind} to define your own"
            problems.append(Problem(doc.filename, doc.position_of(path), path, message))
        first_at.setdefault(item.id, path)
    return tuple(item for item, _ in inherited.values()) + own


def _check_codes(files: list[_CodesSource], problems: list[Problem]) -> dict[str, DeskCodes]:
    province = next((f for f in files if f.platform == PROVINCE), None)
    result: dict[str, DeskCodes] = {}
    for parsed in files:
        doc, codes = parsed.document, parsed.codes
        if parsed.platform == PROVINCE and codes.omit != Omit():
            message = "the province-wide file has nothing to omit (only a platform's file omits)"
            problems.append(Problem(doc.filename, doc.position_of(("omit",)), ("omit",), message))
        merged = DeskCodes(
            dispositions=_merge("dispositions", codes.dispositions, parsed, province, problems),
            pause_reasons=_merge("pause_reasons", codes.pause_reasons, parsed, province, problems),
            matter_types=_merge("matter_types", codes.matter_types, parsed, province, problems),
        )
        keys: dict[str, str] = {}
        for reason in merged.pause_reasons:
            if reason.key is None:
                continue
            if reason.key in keys:
                index = codes.pause_reasons.index(reason) if reason in codes.pause_reasons else None
                path: KeyPath = ("pause_reasons", index, "key") if index is not None else ()
                message = f"key {reason.key!r} is already the key of pause reason {keys[reason.key]!r}"
                problems.append(Problem(doc.filename, doc.position_of(path), path, message))
            keys[reason.key] = reason.id
        result[parsed.platform] = merged
    return result


def _check_units(
    files: list[tuple[str, YamlDocument, UnitsFile]], book: CodeBook | None, problems: list[Problem]
) -> dict[str, dict[str, PlacedUnit]]:
    """Ids, parents, contact numbers and (with ``book``: every codes file was readable) matter types."""
    found: dict[str, dict[str, PlacedUnit]] = {}
    where: dict[tuple[str, str], str] = {}  # (platform, id) → file:line of its definition
    ordered = sorted(files, key=lambda f: f[0] != PROVINCE)  # the province's first
    for platform, doc, parsed in ordered:
        units = found.setdefault(platform, {})
        for index, unit in enumerate(parsed.units):
            path: KeyPath = ("units", index, "id")
            first = where.get((platform, unit.id)) or (where.get((PROVINCE, unit.id)) if platform != PROVINCE else None)
            if first is not None:
                message = f"unit id {unit.id!r} is already used ({first}): unique in a platform and province-wide"
                problems.append(Problem(doc.filename, doc.position_of(path), path, message))
                continue
            where[(platform, unit.id)] = _where(doc, path)
            units[unit.id] = PlacedUnit(unit, platform)
    for platform, doc, parsed in ordered:
        known = {m.id for m in book.for_platform(platform).matter_types} if book else None
        visible = UnitDirectory(found)
        for index, unit in enumerate(parsed.units):
            for m_index, matter in enumerate(unit.matter_types):
                path = ("units", index, "matter_types", m_index)
                if known is not None and matter not in known:
                    message = f"unknown matter type {matter!r} (not in the codes' matter_types for {platform})"
                    problems.append(Problem(doc.filename, doc.position_of(path), path, message))
                elif unit.matter_types.index(matter) != m_index:
                    problems.append(Problem(doc.filename, doc.position_of(path), path, f"{matter!r} is given twice"))
            numbers = [c.number for c in unit.contacts]
            for c_index, number in enumerate(numbers):
                if numbers.index(number) != c_index:
                    path = ("units", index, "contacts", c_index, "number")
                    problems.append(Problem(doc.filename, doc.position_of(path), path, f"{number} is given twice"))
            problems += _parent_problems(platform, doc, index, unit, visible)
    return found


def _parent_problems(platform: str, doc: YamlDocument, index: int, unit: Unit, visible: UnitDirectory) -> list[Problem]:
    if unit.parent is None:
        return []
    path = ("units", index, "parent")
    seen = {unit.id}
    parent: str | None = unit.parent
    while parent is not None:
        above = visible.placed(platform, parent)
        if above is None:
            scope = "province-wide" if platform == PROVINCE else f"of {platform} or province-wide"
            return [Problem(doc.filename, doc.position_of(path), path, f"no unit {parent!r} {scope}")]
        if parent in seen:
            return [Problem(doc.filename, doc.position_of(path), path, f"the parents of {unit.id!r} go round a cycle")]
        seen.add(parent)
        parent = above.unit.parent
        platform = above.platform
    return []


def parse_desk(units: Iterable[Source], codes: Iterable[Source]) -> DeskDirectory:
    """Check the set's texts; raise DeskFilesInvalid with every located problem."""
    units, codes = list(units), list(codes)
    problems: list[Problem] = []
    parsed_codes: list[_CodesSource] = []
    for source in codes:
        platform = _platform_of(source, problems)
        document = _read_mapping(source, problems)
        if document is None or platform is None:
            continue
        spec = _schema(document, CodesFile, problems)
        if spec is not None:
            parsed_codes.append(_CodesSource(platform, document, spec))
    codes_readable = len(parsed_codes) == len(codes)
    book = CodeBook(_check_codes(parsed_codes, problems))
    parsed_units: list[tuple[str, YamlDocument, UnitsFile]] = []
    for source in units:
        platform = _platform_of(source, problems)
        document = _read_mapping(source, problems)
        if document is None or platform is None:
            continue
        units_spec = _schema(document, UnitsFile, problems)
        if units_spec is not None:
            parsed_units.append((platform, document, units_spec))
    # a codes file that cannot be read would make every unit's matter types look unknown
    directory = UnitDirectory(_check_units(parsed_units, book if codes_readable else None, problems))
    if problems:
        raise DeskFilesInvalid(problems)
    digest = hashlib.sha256()
    for source in [*units, *codes]:
        digest.update(f"{source.filename}\0{source.text}\0".encode())
    return DeskDirectory(directory, book, digest.hexdigest()[:12], tuple(s.filename for s in [*units, *codes]))


def desk_files(root: Path) -> tuple[list[Path], list[Path]]:
    """The units and codes files under ``root`` (a missing folder has none)."""
    return sorted((root / UNITS_DIR).glob("*.yaml")), sorted((root / CODES_DIR).glob("*.yaml"))


def read_source(path: Path, problems: list[Problem]) -> Source | None:
    text = read_file(path)
    if isinstance(text, Problem):
        problems.append(text)
        return None
    return Source(str(path), text)


def load_desk(root: Path) -> DeskDirectory:
    """Read and check every units and codes file under ``root``."""
    units_paths, codes_paths = desk_files(root)
    problems: list[Problem] = []
    for folder, paths in ((UNITS_DIR, units_paths), (CODES_DIR, codes_paths)):
        if len(paths) > MAX_FILES:
            problems.append(Problem(str(root / folder), None, (), f"more than {MAX_FILES} files"))
    units = [s for p in units_paths[:MAX_FILES] if (s := read_source(p, problems))]
    codes = [s for p in codes_paths[:MAX_FILES] if (s := read_source(p, problems))]
    if problems:
        raise DeskFilesInvalid(problems)
    return parse_desk(units, codes)
