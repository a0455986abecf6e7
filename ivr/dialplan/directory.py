"""The hotline directory: the numbers 12345 hands callers to, shared by every platform.

``dialplans/directory.yaml`` lists the emergency numbers (110/119/120/122), the department
hotlines the province keeps (保留的部门热线: the seed keeps them at the provincial level only) and
the public utility hotlines (供水、供电、供气、公共交通) a platform works with. Every platform's
dialplan sees them as destinations (a dialplan's own ``destinations`` win on a name clash), so a
transfer node, a seat's transfer (API) and the console's one-key emergency buttons use the same
names. An entry may give a platform its own number (a city's water company) or be limited to
some platforms (a department hotline reached through the province).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.yamlcheck import Problem
from ivr.dialplan.caller_lists import CALLER_LISTS_FILE, load_caller_lists
from ivr.dialplan.loader import (
    Dialplan,
    DialplanInvalid,
    load_dialplan,
    read_mapping,
    read_source,
    schema_problems,
)
from ivr.dialplan.schema import Destination, DestinationKind, TransferMode, check_transfer_modes
from telephony.values import DialNumber, PlatformId, TrunkName

DIRECTORY_FILE = "directory.yaml"
EntryName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalNumber(_Model):
    """A platform's own number (and trunk) for an entry, e.g. its city's water company."""

    number: DialNumber
    trunk: TrunkName | None = None


class DirectoryEntry(_Model):
    name: str = Field(min_length=1, description="what seats and supervisors read, e.g. 供电服务热线 95598")
    kind: DestinationKind
    number: DialNumber
    trunk: TrunkName = Field(description="an outbound trunk of config.yaml (sip.trunks)")
    modes: tuple[TransferMode, ...] = Field(default=(TransferMode.BLIND, TransferMode.ATTENDED), min_length=1)
    platforms: tuple[PlatformId, ...] = Field(default=(), description="only these platforms; empty: every one")
    local: dict[PlatformId, LocalNumber] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _modes(self) -> DirectoryEntry:
        check_transfer_modes(self.kind, self.modes)
        return self

    def for_platform(self, platform: str) -> Destination | None:
        if self.platforms and platform not in self.platforms:
            return None
        local = self.local.get(platform)
        return Destination(
            trunk=(local.trunk if local and local.trunk else self.trunk),
            number=local.number if local else self.number,
            name=self.name,
            kind=self.kind,
            modes=self.modes,
        )


class HotlineDirectory(_Model):
    hotlines: dict[EntryName, DirectoryEntry] = Field(default_factory=dict)
    version: str = Field(default="", exclude=True)  # of the file's text; "" with no file

    def destinations_for(self, platform: str) -> dict[str, Destination]:
        found = {key: entry.for_platform(platform) for key, entry in self.hotlines.items()}
        return {key: destination for key, destination in found.items() if destination is not None}


EMPTY_DIRECTORY = HotlineDirectory()


def parse_directory(text: str, filename: str) -> HotlineDirectory:
    """Validate the directory's text; raise DialplanInvalid with every located error."""
    document, problems = read_mapping(text, filename, "the directory")
    if "version" in document.data:
        problems.append(Problem(filename, document.position_of(("version",)), ("version",), "unknown key"))
    try:
        directory = HotlineDirectory.model_validate(document.data)
    except ValidationError as exc:
        raise DialplanInvalid(problems + schema_problems(document, exc)) from None
    if problems:
        raise DialplanInvalid(problems)
    return directory.model_copy(update={"version": hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]})


def load_directory(path: Path) -> HotlineDirectory:
    """The directory at ``path``; a platform without one has none (only its own destinations)."""
    if not path.exists():
        return EMPTY_DIRECTORY
    return parse_directory(read_source(path), str(path))


def dialplan_files(dialplans_dir: Path) -> list[Path]:
    """The platforms' dialplan files in ``dialplans_dir`` (not the shared files beside them)."""
    shared = (DIRECTORY_FILE, CALLER_LISTS_FILE)
    return sorted(path for path in dialplans_dir.glob("*.yaml") if path.name not in shared)


def load_platform_dialplan(path: Path, recorded_prompts_dir: Path | None = None, platform: str = "") -> Dialplan:
    """A platform's dialplan with the directory and the caller lists beside it (``platform``:
    default the file's name)."""
    platform = platform or path.stem
    directory = load_directory(path.parent / DIRECTORY_FILE)
    lists = load_caller_lists(path.parent / CALLER_LISTS_FILE).for_platform(platform)
    plan = load_dialplan(path, recorded_prompts_dir, directory.destinations_for(platform), tuple(lists.lists))
    plan = dataclasses.replace(plan, caller_lists=lists)
    if not directory.version and not lists.version:
        return plan
    # a changed directory or caller list is a new version of every dialplan that sees it
    both = hashlib.sha256(f"{plan.version}:{directory.version}:{lists.version}".encode()).hexdigest()[:12]
    return dataclasses.replace(plan, version=both)
