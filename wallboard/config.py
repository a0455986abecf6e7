"""config.yaml's ``wallboard`` section: how often the board is pushed, and its alerts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from common.config_model import ConfigModel

# the figures an alert may watch (per queue and for the whole platform, queue "all")
Figure = Literal["service_level_15s", "answer_rate", "abandon_rate", "satisfaction_rate", "longest_wait_s", "waiting"]
RATES: frozenset[str] = frozenset({"service_level_15s", "answer_rate", "abandon_rate", "satisfaction_rate"})
MAX_WINDOW_S = 24 * 3600


class AlertRule(ConfigModel):
    """One threshold: ``figure`` ``below`` or ``above`` a value. Rates are taken over the calls
    that entered the queue in the last ``window_s`` (unset: today, since 00:00 China time) and
    raise nothing while nothing was offered (no score is not a bad one)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    figure: Figure
    below: float | None = None
    above: float | None = None
    window_s: Annotated[int, Field(ge=60, le=MAX_WINDOW_S)] | None = None
    queues: tuple[str, ...] = ()  # only these queues ("all": the platform); empty: every queue and "all"

    @model_validator(mode="after")
    def _one_bound(self) -> AlertRule:
        if (self.below is None) == (self.above is None):
            raise ValueError(f"alert {self.name}: give exactly one of below / above")
        if self.window_s is not None and self.figure not in RATES:
            raise ValueError(f"alert {self.name}: window_s applies to rates only, not to {self.figure}")
        return self

    @property
    def threshold(self) -> float:
        return self.below if self.below is not None else self.above  # type: ignore[return-value]


DEFAULT_ALERTS = (
    AlertRule(name="service_level_low", figure="service_level_15s", below=0.8, window_s=900),
    AlertRule(name="longest_wait_high", figure="longest_wait_s", above=120),
    AlertRule(name="waiting_high", figure="waiting", above=10),
)


class WallboardConfig(ConfigModel):
    """The live wallboard: pushed every ``push_interval_s`` and on every seat or queue event."""

    push_interval_s: Annotated[float, Field(ge=0.5, le=60)] = 2.0
    alerts: tuple[AlertRule, ...] = DEFAULT_ALERTS

    @model_validator(mode="after")
    def _unique(self) -> WallboardConfig:
        names = [rule.name for rule in self.alerts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"alert names must be unique: {', '.join(twice)} given twice")
        return self
