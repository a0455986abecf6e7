"""What the hot-reloaded files (dialplans, the units directory, the knowledge base) share: a
reload's result, the files' change stamps and the watch loop that reloads when they change.
Each holder keeps its own loading, checking and log events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

FileStamp = tuple[str, int, int]  # path, mtime (ns), size


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: ``version`` is the one running after it (the kept one when rejected)."""

    ok: bool
    version: str
    changed: bool
    problems: tuple[str, ...] = field(default=())


def file_stamp(path: Path) -> FileStamp | None:
    """The file's change stamp; None when it cannot be read (missing)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return str(path), stat.st_mtime_ns, stat.st_size


def file_stamps(paths: Iterable[Path]) -> tuple[FileStamp, ...]:
    """The stamps of the files that are there (a file that appears or goes is a change too)."""
    return tuple(stamp for path in paths if (stamp := file_stamp(path)) is not None)


async def watch_files(
    interval_s: float,
    stamp: Callable[[], object],
    last_stamp: Callable[[], object],
    reload: Callable[[str], Awaitable[object]],
) -> None:
    """Every ``interval_s``, take the files' stamp (in a thread: it stats files) and reload
    ("file changed") when it differs from the last reload's; a None stamp (the file is missing)
    waits. Runs until cancelled (a task of the controller)."""
    while True:
        await asyncio.sleep(interval_s)
        now = await asyncio.to_thread(stamp)
        if now is not None and now != last_stamp():
            await reload("file changed")
