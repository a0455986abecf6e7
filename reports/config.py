"""The ``reports:`` section of config.yaml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReportsConfig(BaseModel):
    """How long report counters and their once-only markers are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # each hour's (and day's) counters, from the last time a count created a field of them (at
    # most an hour, or a day, before their last write)
    keep_days: int = Field(default=800, ge=32, le=3650)
    # how long an event (a call, a seat state, a ticket step) is remembered as counted: longer than
    # any Redis outage a retried count could span, and than a record may stay open in Redis
    marker_days: int = Field(default=7, ge=1, le=90)
