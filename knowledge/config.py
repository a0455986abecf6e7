"""The ``knowledge:`` section of config.yaml."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class KnowledgeConfig(BaseModel):
    """Where the knowledge base's reviewed files are, and how often they are looked at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path = Path("knowledge_base")  # province/*.yaml and <platform id>/*.yaml
    watch_interval_s: float = Field(default=2.0, gt=0, le=3600)
