"""Deletes recordings older than the retention period (a periodic job of the controller)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


def purge_expired(folder: Path, retention: timedelta, now: datetime) -> list[Path]:
    """Remove ``*.wav`` in ``folder`` last written before ``now - retention``; returns them."""
    if not folder.is_dir():
        return []
    cutoff = (now - retention).timestamp()
    removed = []
    for path in sorted(folder.glob("*.wav")):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    if removed:
        log.info("recordings.purged", count=len(removed), retention_days=retention.days)
    return removed
