"""The running units directory and desk codes, and their safe reload.

A reload (the file watcher, SIGHUP, or the admin API) reads and checks the whole set before
swapping; a broken file is rejected with the checker's problems and the running version stays.
A reader asks the registry each time (``registry.units.lookup(...)``), never keeps a version.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import structlog

from common.reloading import FileStamp, FileWatches, ReloadResult, file_stamps
from units.loader import EMPTY, CodeBook, DeskDirectory, DeskFilesInvalid, UnitDirectory, desk_files, load_desk
from units.model import Disposition, PauseReason, Unit

log = structlog.get_logger(__name__)


class UnitLookup(Protocol):
    """What the desk's other parts ask about units (cases, reminders)."""

    def lookup(self, platform: str, unit_id: str) -> Unit | None: ...

    def for_matter_type(self, platform: str, matter_type: str) -> list[Unit]: ...


class CodeLookup(Protocol):
    """What the desk's other parts ask about codes (the ACD's wrap-up, seat pauses)."""

    def disposition(self, platform: str, code: str) -> Disposition | None: ...

    def pause_reason(self, platform: str, code: str) -> PauseReason | None: ...


class DeskRegistry:
    """Holds the current DeskDirectory (every platform's units and codes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._current: DeskDirectory = EMPTY
        self._lock = asyncio.Lock()
        self._stamp: tuple[FileStamp, ...] | None = None
        self.loaded_at: datetime | None = None
        self.last_error = ""
        self.reloads_ok = 0
        self.reloads_failed = 0

    @property
    def current(self) -> DeskDirectory:
        return self._current

    @property
    def units(self) -> UnitDirectory:
        return self._current.units

    @property
    def codes(self) -> CodeBook:
        return self._current.codes

    def _file_stamp(self) -> tuple[FileStamp, ...]:
        units, codes = desk_files(self.root)
        return file_stamps([*units, *codes])

    def load_initial(self) -> DeskDirectory:
        """Load at start; raises DeskFilesInvalid (the controller must not start on a bad file).
        A missing folder is an empty directory (a warning: the desk has no units or codes)."""
        self._stamp = self._file_stamp()
        directory = load_desk(self.root)
        self._current = directory
        self.loaded_at = datetime.now(UTC)
        if not directory.files:
            log.warning("units.none", root=str(self.root))
        log.info("units.loaded", root=str(self.root), version=directory.version, files=len(directory.files))
        return directory

    async def reload(self, reason: str) -> ReloadResult:
        """Read the files again; keep the running version if the new set is broken."""
        async with self._lock:
            self._stamp = self._file_stamp()
            previous = self._current.version
            try:
                directory = await asyncio.to_thread(load_desk, self.root)
            except DeskFilesInvalid as exc:
                self.reloads_failed += 1
                self.last_error = str(exc)
                problems = tuple(str(p) for p in exc.problems)
                log.error("units.reload_rejected", reason=reason, kept=previous, problems=list(problems))
                return ReloadResult(False, previous, False, problems)
            self._current = directory
            self.loaded_at = datetime.now(UTC)
            self.last_error = ""
            self.reloads_ok += 1
            log.info("units.reloaded", reason=reason, version=directory.version, previous=previous)
            return ReloadResult(True, directory.version, directory.version != previous)

    async def watch(self, interval_s: float = 2.0) -> None:
        """Reload when a file changes, appears or goes, watched alone."""
        watches = FileWatches()
        self.add_watch(watches, interval_s)
        await watches.run()

    def add_watch(self, watches: FileWatches, interval_s: float = 2.0) -> None:
        """Watch the files in the controller's group (one thread hop per tick for all holders)."""
        watches.add(interval_s, self._file_stamp, lambda: self._stamp, self.reload, name="units")

    def status(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "version": self._current.version,
            "files": list(self._current.files),
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "last_error": self.last_error,
            "reloads_ok": self.reloads_ok,
            "reloads_failed": self.reloads_failed,
        }
