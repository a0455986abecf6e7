"""Load a dialplan file: YAML with positions → schema → graph checks → a runnable Dialplan.

Every problem is reported as ``file:line:column: error|warning: key.path: what is wrong``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from common.yamlcheck import Problem, ProblemsFound, parse_document, read_file, schema_message
from common.yamlcheck import schema_problems as located_schema_problems
from common.yamlsource import KeyPath, Position, YamlDocument
from ivr.calendar import DayInfo, DayType, LocalHoliday, PlatformCalendar
from ivr.dialplan.checks import Finding, check_graph
from ivr.dialplan.schema import Destination, DialplanSpec, Node

if TYPE_CHECKING:
    from ivr.dialplan.caller_lists import CallerLists

_NODE_KINDS = {
    "play",
    "menu",
    "hours",
    "queue",
    "transfer",
    "voicemail",
    "callback",
    "survey",
    "set",
    "caller_list",
    "hangup",
}


class DialplanInvalid(ProblemsFound):
    """The file cannot be used; ``problems`` says why (errors first)."""


@dataclass(frozen=True)
class Dialplan:
    """A checked dialplan, ready to run. Immutable: a call keeps the version it started with."""

    spec: DialplanSpec
    calendar: PlatformCalendar
    source: str
    version: str
    warnings: tuple[Problem, ...] = field(default=())
    # the dialplan's own destinations over the shared directory's (ivr/dialplan/directory.py)
    destinations: Mapping[str, Destination] = field(default_factory=dict)
    # the caller lists this platform sees (ivr/dialplan/caller_lists.py); None: no file
    caller_lists: CallerLists | None = None

    def node(self, node_id: str) -> Node:
        return self.spec.nodes[node_id]


def _schema_path(loc: tuple[int | str, ...]) -> KeyPath:
    """pydantic's error location → the YAML key path (drop the union tag it inserts)."""
    path = [p for p in loc if isinstance(p, str | int)]
    if len(path) >= 3 and path[0] == "nodes" and path[2] in _NODE_KINDS:
        del path[2]
    return tuple(path)


def _schema_message(item: ErrorDetails) -> str:
    if item["type"] == "union_tag_invalid":
        return f"unknown node kind {item['input'].get('kind')!r} (expected one of: {', '.join(sorted(_NODE_KINDS))})"
    if item["type"] == "union_tag_not_found":
        return f"node has no kind (expected one of: {', '.join(sorted(_NODE_KINDS))})"
    return schema_message(item)


def schema_problems(document: YamlDocument, error: ValidationError) -> list[Problem]:
    return located_schema_problems(document, error, _schema_path, _schema_message)


def _calendar(spec: DialplanSpec) -> PlatformCalendar:
    local = [
        LocalHoliday(h.name, h.date or h.first or date.min, h.date or h.last or date.min) for h in spec.local_holidays
    ]
    extension = {d.date: DayInfo(DayType(d.type), d.name) for d in spec.calendar_extension}
    return PlatformCalendar(local, extension)


def read_mapping(text: str, filename: str, what: str) -> tuple[YamlDocument, list[Problem]]:
    """YAML text that must be a mapping → the document and its duplicate-key problems; raise
    DialplanInvalid when it is not YAML or not a mapping (``what`` names it in the message)."""
    document, problems = parse_document(text, filename)
    if document is None:
        raise DialplanInvalid(problems) from None
    if not isinstance(document.data, dict):
        raise DialplanInvalid([*problems, Problem(filename, Position(1, 1), (), f"{what} is a mapping of keys")])
    return document, problems


def read_source(path: Path) -> str:
    """The file's text; DialplanInvalid naming the file when it cannot be read as UTF-8."""
    text = read_file(path)
    if isinstance(text, Problem):
        raise DialplanInvalid([text])
    return text


def parse_dialplan(
    text: str,
    filename: str,
    prompt_exists: Callable[[str], bool],
    shared_destinations: Mapping[str, Destination] | None = None,
    caller_lists: Collection[str] = (),
) -> Dialplan:
    """Validate dialplan text; raise DialplanInvalid with every located error.
    ``shared_destinations``: the directory's entries for this platform; ``caller_lists``: the
    names of the caller lists it sees."""
    document, problems = read_mapping(text, filename, "a dialplan")
    try:
        spec = DialplanSpec.model_validate(document.data)
    except ValidationError as exc:
        raise DialplanInvalid(problems + schema_problems(document, exc)) from None
    destinations = {**(shared_destinations or {}), **spec.destinations}
    findings: list[Finding] = check_graph(spec, prompt_exists, destinations, caller_lists)
    located = [Problem(filename, document.position_of(f.path), f.path, f.message, f.severity) for f in findings]
    problems += [p for p in located if p.severity == "error"]
    if problems:
        raise DialplanInvalid(problems + [p for p in located if p.severity != "error"])
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    warnings = tuple(p for p in located if p.severity != "error")
    return Dialplan(
        spec=spec,
        calendar=_calendar(spec),
        source=filename,
        version=version,
        warnings=warnings,
        destinations=destinations,
    )


def load_dialplan(
    path: Path,
    recorded_prompts_dir: Path | None = None,
    shared_destinations: Mapping[str, Destination] | None = None,
    caller_lists: Collection[str] = (),
) -> Dialplan:
    """Read and check one dialplan file. A prompt counts as existing if ``<dir>/<name>.wav`` does."""
    text = read_source(path)

    def recorded(name: str) -> bool:
        return recorded_prompts_dir is not None and (recorded_prompts_dir / f"{name}.wav").is_file()

    return parse_dialplan(text, str(path), recorded, shared_destinations, caller_lists)
