"""The running dialplan of a platform, and its safe reload.

A reload (SIGHUP, file change, or the admin API) loads and checks the file and builds its
prompts before swapping; a broken file is rejected with the checker's message and the running
version stays.

A call keeps the version it started with for its whole life: the IVR puts the version id on the
call record (older controllers put it on the caller's channel too), and a caller who comes back
to the IVR later (after a queue's max wait, a failed transfer, the seat hanging up first) is
walked on ``version(id)``. The registry keeps every version a live call still names, plus the
last few loaded (a call taking a version while a reload swaps it has not named it on its record
yet); older ones are dropped. A version that is gone (the controller restarted on a changed
file) gives the current one, with a log line and ``versions_missing`` (/metrics) counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from common.reloading import FileStamp, FileWatches, ReloadResult, file_stamp
from common.yamlcheck import Problem
from ivr.dialplan.caller_lists import CALLER_LISTS_FILE
from ivr.dialplan.directory import DIRECTORY_FILE, load_platform_dialplan
from ivr.dialplan.loader import Dialplan, DialplanInvalid

log = structlog.get_logger(__name__)

Prepare = Callable[[Dialplan], Awaitable[None]]
InUse = Callable[[], Iterable[str]]
KEEP_RECENT = 3  # versions kept besides those live calls name (the current one among them)


def _nothing_in_use() -> Iterable[str]:
    return ()


class DialplanRegistry:
    """Holds the current Dialplan of one platform, and the older versions calls still use.

    ``in_use`` names the versions live calls run on (their records' ``dialplan_version``)."""

    def __init__(
        self,
        path: Path,
        recorded_prompts_dir: Path,
        platform_id: str,
        prepare: Prepare,
        in_use: InUse = _nothing_in_use,
    ) -> None:
        self.path = path
        self.directory_path = path.parent / DIRECTORY_FILE  # shared by every platform's dialplan
        self.caller_lists_path = path.parent / CALLER_LISTS_FILE  # likewise
        self._recorded = recorded_prompts_dir
        self._platform_id = platform_id
        self._prepare = prepare
        self._current: Dialplan | None = None
        self._in_use = in_use
        self._versions: dict[str, Dialplan] = {}  # by version id, oldest loaded first
        self._lock = asyncio.Lock()
        self._stamp: tuple[FileStamp | None, ...] | None = None
        self.loaded_at: datetime | None = None
        self.last_error = ""
        self.reloads_ok = 0
        self.reloads_failed = 0
        self.versions_missing = 0  # a call named a version no longer here: it went on with the current one

    @property
    def current(self) -> Dialplan:
        if self._current is None:
            raise RuntimeError("no dialplan loaded yet")
        return self._current

    @property
    def kept(self) -> tuple[str, ...]:
        """The version ids held now, oldest loaded first (the current one last)."""
        return tuple(self._versions)

    def version(self, version_id: str) -> Dialplan:
        """The version a call started with (the id its channel carries). Gone (the controller
        restarted on a changed file): the current one, logged and counted. No id (a call that
        never ran the IVR, e.g. a callback): the current one."""
        current = self.current
        if not version_id or version_id == current.version:
            return current
        plan = self._versions.get(version_id)
        if plan is None:
            self.versions_missing += 1
            log.warning("dialplan.version_missing", wanted=version_id[:64], using=current.version)
            return current
        return plan

    def _adopt(self, plan: Dialplan) -> None:
        """Make ``plan`` current; drop the versions no live call names, except the last few."""
        self._current = plan
        self._versions.pop(plan.version, None)
        self._versions[plan.version] = plan  # the newest last, even when a reload brings an old text back
        in_use = set(self._in_use())
        recent = set(list(self._versions)[-KEEP_RECENT:])
        for version_id in [v for v in self._versions if v not in in_use and v not in recent]:
            del self._versions[version_id]
            log.info("dialplan.version_dropped", version=version_id)

    def _file_stamp(self) -> tuple[FileStamp | None, ...] | None:
        """The dialplan's, the directory's and the caller lists' change stamps; None while the
        dialplan is missing."""
        stamps = tuple(file_stamp(path) for path in (self.path, self.directory_path, self.caller_lists_path))
        return None if stamps[0] is None else stamps

    async def _load(self) -> Dialplan:
        plan = await asyncio.to_thread(load_platform_dialplan, self.path, self._recorded, self._platform_id)
        if plan.spec.platform != self._platform_id:
            raise DialplanInvalid(
                [
                    Problem(
                        str(self.path),
                        None,
                        ("platform",),
                        f"this dialplan is for {plan.spec.platform!r}, but this controller runs {self._platform_id!r}",
                    )
                ]
            )
        await self._prepare(plan)
        return plan

    async def load_initial(self) -> Dialplan:
        """Load at start; raises DialplanInvalid (the controller must not start on a bad file)."""
        self._stamp = self._file_stamp()
        plan = await self._load()
        self._adopt(plan)
        self.loaded_at = datetime.now(UTC)
        for warning in plan.warnings:
            log.warning("dialplan.warning", problem=str(warning))
        log.info("dialplan.loaded", source=str(self.path), version=plan.version, nodes=len(plan.spec.nodes))
        return plan

    async def reload(self, reason: str) -> ReloadResult:
        """Load the file again; keep the running version if the new one is broken."""
        async with self._lock:
            self._stamp = self._file_stamp()
            previous = self.current.version
            try:
                plan = await self._load()
            except DialplanInvalid as exc:
                self.reloads_failed += 1
                self.last_error = str(exc)
                log.error(
                    "dialplan.reload_rejected", reason=reason, kept=previous, problems=[str(p) for p in exc.problems]
                )
                return ReloadResult(False, previous, False, tuple(str(p) for p in exc.problems))
            except Exception as exc:  # e.g. a prompt could not be built: keep running what works
                self.reloads_failed += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("dialplan.reload_failed", reason=reason, kept=previous)
                return ReloadResult(False, previous, False, (self.last_error,))
            self._adopt(plan)
            self.loaded_at = datetime.now(UTC)
            self.last_error = ""
            self.reloads_ok += 1
            log.info("dialplan.reloaded", reason=reason, version=plan.version, previous=previous)
            return ReloadResult(True, plan.version, plan.version != previous)

    async def watch(self, interval_s: float = 1.0) -> None:
        """Reload when the file changes, watched alone."""
        watches = FileWatches()
        self.add_watch(watches, interval_s)
        await watches.run()

    def add_watch(self, watches: FileWatches, interval_s: float = 1.0) -> None:
        """Watch the files in the controller's group (one thread hop per tick for all holders)."""
        watches.add(interval_s, self._file_stamp, lambda: self._stamp, self.reload, name="dialplan")
