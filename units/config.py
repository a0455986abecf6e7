"""The ``units:`` section of config.yaml."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class UnitsConfig(BaseModel):
    """config.yaml ``units:``: where the units directory and the desk codes are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path = Field(default=Path("directory"), description="holds units/<platform>.yaml and codes/<platform>.yaml")
    watch_interval_s: float = Field(default=2.0, gt=0, le=3600)
