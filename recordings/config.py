"""config.yaml's recordings section."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from common.config_model import ConfigModel


class RecordingsConfig(ConfigModel):
    """Seat-call recording (MixMonitor, both parties mixed) and how long it is kept."""

    enabled: bool = True
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 180
    purge_interval_s: Annotated[float, Field(ge=10, le=86400)] = 3600
