"""The ``reports:`` section of config.yaml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReportsConfig(BaseModel):
    """How long report counters and their once-only markers are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_days: int = Field(default=800, ge=32, le=3650)  # each hour's counters, from their last write
    # how long an event (a call, a seat state, a ticket step) is remembered as counted: longer than
    # any Redis outage a retried count could span, and than a record may stay open in Redis
    marker_days: int = Field(default=7, ge=1, le=90)
