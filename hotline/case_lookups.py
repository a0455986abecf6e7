"""The case desk's lookups (cases/model.py's seams) answered by the units directory and the
knowledge base: the app shell joins the three features; none of them imports another."""

from __future__ import annotations

from cases.service import Unavailable
from knowledge.service import KnowledgeService
from units.registry import DeskRegistry


class DirectoryUnits:
    """``UnitLookup`` over the live units directory (asked at call time: reloads count)."""

    def __init__(self, desk: DeskRegistry) -> None:
        self._desk = desk

    async def has_unit(self, platform: str, unit_id: str) -> bool:
        return self._desk.units.lookup(platform, unit_id) is not None

    async def has_matter_type(self, platform: str, matter_type: str) -> bool:
        return self._desk.codes.for_platform(platform).matter_type(matter_type) is not None


class KnowledgeEntries:
    """``KnowledgeLookup`` over the knowledge base: an entry the platform's seats are offered today."""

    def __init__(self, knowledge: KnowledgeService, load_wait_s: float = 10.0) -> None:
        self._knowledge = knowledge
        self._load_wait_s = load_wait_s

    async def has_entry(self, platform: str, entry_id: str) -> bool:
        """Unavailable (503, nothing saved) if the base is still loading at start after ``load_wait_s``."""
        if not await self._knowledge.wait_loaded(self._load_wait_s):
            raise Unavailable("the knowledge base is still loading: try again in a moment")
        entry = self._knowledge.get(entry_id, platform)
        return entry is not None and entry.valid_on(self._knowledge.today())

    async def record_use(self, platform: str, entry_id: str) -> None:
        await self._knowledge.record_use(entry_id)


class DirectoryReferences:
    """``knowledge.loader.References`` over the live units directory: an entry names a unit and a
    matter type the platform's desk knows (its own or the province's)."""

    def __init__(self, desk: DeskRegistry) -> None:
        self._desk = desk

    def has_unit(self, platform: str, unit_id: str) -> bool:
        return self._desk.units.lookup(platform, unit_id) is not None

    def has_matter_type(self, platform: str, matter_type: str) -> bool:
        return self._desk.codes.for_platform(platform).matter_type(matter_type) is not None
