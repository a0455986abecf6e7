"""The base of every config.yaml section model: frozen, unknown keys are errors; and the small
types the sections share. Each package keeps its own section (telephony/config.py,
acd/config.py, …); hotline/config.py composes them into the whole configuration."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]


class ConfigModel(BaseModel):
    """A config.yaml section: frozen, and a key it does not know is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)
