"""The running knowledge base of a platform: safe (hot) reload, search, use counts.

A reload (file change, SIGHUP, the admin API) loads and checks every file and builds the search
index before swapping; a broken file is rejected with the checker's located problems and the
running version stays (as ivr/dialplan/registry.py does for dialplans). Unlike a dialplan, a
broken knowledge base at start does not stop the controller: calls matter more than answers, so
it starts with an empty base and says why (``last_error``, the status endpoint, the log).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog

from common.clock import Clock, system_clock
from common.metrics import Metric
from common.reloading import FileStamp, FileWatches, ReloadResult, file_stamps
from knowledge.index import JiebaSegmenter, SearchIndex, Segmenter
from knowledge.loader import KnowledgeBase, KnowledgeInvalid, References, load_base
from knowledge.model import ENTRY_ID, Entry
from knowledge.uses import UseCounts, UseStore
from telephony.dialplan_names import PROVINCE_PLATFORM as PROVINCE  # its folder: every platform's seats see it

log = structlog.get_logger(__name__)

MAX_LIMIT = 50


@dataclass(frozen=True)
class Hit:
    entry: Entry
    uses: int
    score: float | None  # bm25 (lower is better); None when listed without a query


class UnknownEntry(LookupError):
    """No entry with that id is offered on this platform."""


class KnowledgeLoading(RuntimeError):
    """The base is still being loaded at start (a second or two: jieba's dictionary); ask again."""


class KnowledgeService:
    """One platform's view of the knowledge base: its own entries and the province's."""

    def __init__(
        self,
        root: Path,
        platform: str,
        uses: UseStore,
        *,
        load_platforms: Collection[str] | None = None,
        clock: Clock = system_clock,
        timezone: str = "Asia/Shanghai",
        references: References | None = None,
        segmenter: Segmenter | None = None,
    ) -> None:
        """``load_platforms``: the folders to load (None: every one; a prefecture's controller
        needs only its own and the province's)."""
        self.root = root
        self.platform = platform
        self._load_platforms = load_platforms
        self._clock = clock
        self._zone = ZoneInfo(timezone)
        self._references = references
        self._segmenter = segmenter or JiebaSegmenter()
        self.uses = UseCounts(uses, platform)
        self.base = KnowledgeBase.empty()
        self._index: SearchIndex | None = None
        self._by_id: dict[str, Entry] = {}
        self._lock = asyncio.Lock()
        self._stamp: tuple[FileStamp, ...] | None = None
        self.loaded_at: datetime | None = None
        self.last_error = ""
        self.reloads_ok = 0
        self.reloads_failed = 0
        # set when the load at start has ended, loaded or not (the controller serves calls meanwhile)
        self._started = asyncio.Event()

    @property
    def loading(self) -> bool:
        """True until the load at start has ended: search and get raise KnowledgeLoading."""
        return not self._started.is_set()

    async def wait_loaded(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the load at start to end; False if it has not."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._started.wait()
        return not self.loading

    def visible_platforms(self, platform: str | None = None) -> tuple[str, ...]:
        """The folders a seat of ``platform`` (default: this one) sees."""
        own = platform or self.platform
        return (own,) if own == PROVINCE else (own, PROVINCE)

    def today(self) -> date:
        """The platform's local date (validity windows are local days)."""
        return self._clock().astimezone(self._zone).date()

    def _file_stamp(self) -> tuple[FileStamp, ...]:
        stamps: list[FileStamp] = []
        if self.root.is_dir():
            for folder in sorted(self.root.iterdir()):
                if not folder.is_dir() or (
                    self._load_platforms is not None and folder.name not in self._load_platforms
                ):
                    continue
                stamps.append((str(folder), 0, 0))  # a new or removed folder is a change too
                stamps += file_stamps(sorted(folder.glob("*.yaml")))
        return tuple(stamps)

    def _build(self) -> tuple[KnowledgeBase, SearchIndex]:
        base = load_base(self.root, self._load_platforms, self._references)
        return base, SearchIndex(base.entries, self._segmenter)

    def _swap(self, base: KnowledgeBase, index: SearchIndex) -> None:
        self.base, self._index = base, index
        self._by_id = {entry.id: entry for entry in base.entries}
        self.loaded_at = datetime.now(UTC)

    async def load_initial(self) -> None:
        """Load at start. A broken base leaves an empty one and ``last_error`` (never raises for it).
        The controller runs this in the background once it serves calls: until it ends, ``loading``."""
        try:
            if not self.root.is_dir():
                log.warning("knowledge.no_folder", root=str(self.root))
            result = await self.reload("start")
            if not result.ok:
                log.error("knowledge.started_empty", problems=list(result.problems))
        finally:
            self._started.set()

    async def reload(self, reason: str) -> ReloadResult:
        """Load the files again; keep the running version if the new one is broken."""
        async with self._lock:
            try:
                return await self._reload(reason)
            finally:
                self._started.set()  # a first load has ended: no longer "loading"

    async def _reload(self, reason: str) -> ReloadResult:
        """One load (under the lock)."""
        self._stamp = await asyncio.to_thread(self._file_stamp)
        previous = self.base.version
        try:
            base, index = await asyncio.to_thread(self._build)
        except KnowledgeInvalid as exc:
            self.reloads_failed += 1
            self.last_error = str(exc)
            problems = tuple(str(p) for p in exc.problems)
            log.error("knowledge.reload_rejected", reason=reason, kept=previous, problems=list(problems))
            return ReloadResult(False, previous, False, problems)
        except Exception as exc:  # e.g. the segmenter's dictionary: keep what works
            self.reloads_failed += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("knowledge.reload_failed", reason=reason, kept=previous)
            return ReloadResult(False, previous, False, (self.last_error,))
        self._swap(base, index)
        self.last_error = ""
        self.reloads_ok += 1
        log.info("knowledge.loaded", reason=reason, version=base.version, previous=previous, entries=len(base.entries))
        return ReloadResult(True, base.version, base.version != previous)

    async def watch(self, interval_s: float = 2.0) -> None:
        """Reload when a file changes, watched alone."""
        watches = FileWatches()
        self.add_watch(watches, interval_s)
        await watches.run()

    def add_watch(self, watches: FileWatches, interval_s: float = 2.0) -> None:
        """Watch the files in the controller's group (one thread hop per tick for all holders)."""
        watches.add(interval_s, self._file_stamp, lambda: self._stamp, self.reload, name="knowledge")

    def get(self, entry_id: str, platform: str | None = None) -> Entry | None:
        """The entry, if a seat of ``platform`` may see it (valid today or not); KnowledgeLoading
        while the base is loaded at start."""
        if self.loading:
            raise KnowledgeLoading("the knowledge base is loading")
        entry = self._by_id.get(entry_id)
        return entry if entry is not None and entry.platform in self.visible_platforms(platform) else None

    async def search(
        self, query: str = "", matter_type: str = "", limit: int = 20, platform: str | None = None
    ) -> list[Hit]:
        """Entries offered today to a seat of ``platform``: with a query, by bm25 and then by use;
        without one, the most used first (per matter type when one is given). KnowledgeLoading
        while the base is loaded at start."""
        if self.loading:
            raise KnowledgeLoading("the knowledge base is loading")
        limit = max(1, min(limit, MAX_LIMIT))
        counts = await self.uses.current()
        platforms = self.visible_platforms(platform)
        day = self.today()
        if query.strip():
            if self._index is None:
                return []
            matches = self._index.search(query, platforms, matter_type, day)
            hits = [Hit(m.entry, counts.get(m.entry.id, 0), m.score) for m in matches]
            hits.sort(key=lambda h: (round(h.score or 0.0, 6), -h.uses, h.entry.id))
        else:
            hits = [
                Hit(e, counts.get(e.id, 0), None)
                for e in self.base.entries
                if e.platform in platforms and (not matter_type or e.matter_type == matter_type) and e.valid_on(day)
            ]
            hits.sort(key=lambda h: (-h.uses, h.entry.matter_type, h.entry.id))
        return hits[:limit]

    def matter_types(self, platform: str | None = None) -> list[str]:
        """The matter types of the entries offered today (the desk's filter)."""
        platforms, day = self.visible_platforms(platform), self.today()
        return sorted({e.matter_type for e in self.base.entries if e.platform in platforms and e.valid_on(day)})

    async def record_use(self, entry_id: str) -> None:
        """A case was answered directly with this entry (the case desk calls this). UnknownEntry
        for an id this platform is not offered today."""
        entry = self.get(entry_id) if ENTRY_ID.fullmatch(entry_id) else None
        if entry is None or not entry.valid_on(self.today()):
            raise UnknownEntry(f"no knowledge entry {entry_id[:70]!r} is offered on {self.platform}")
        await self.uses.record(entry_id)

    def status(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "version": self.base.version,
            "files": self.base.files,
            "entries": len(self.base.entries),
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "last_error": self.last_error,
            "loading": self.loading,
            "reloads_ok": self.reloads_ok,
            "reloads_failed": self.reloads_failed,
            "uses_unsaved": self.uses.unsaved,
        }

    def metrics(self) -> list[Metric]:
        ok, rejected = (("result", "ok"),), (("result", "rejected"),)
        return [
            Metric("hotline_knowledge_entries", "gauge", "Knowledge base entries loaded", len(self.base.entries)),
            Metric("hotline_knowledge_reloads_total", "counter", "Knowledge base reloads", self.reloads_ok, ok),
            Metric(
                "hotline_knowledge_reloads_total", "counter", "Knowledge base reloads", self.reloads_failed, rejected
            ),
            Metric("hotline_knowledge_uses_unsaved", "gauge", "Entry uses waiting for Redis", self.uses.unsaved),
        ]
