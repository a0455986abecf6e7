"""Prometheus text exposition of the controller's gauges, counters and histograms (pure rendering)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Metric:
    """One sample: name, type, help text, value and labels."""

    name: str
    kind: str  # "gauge", "counter" or "histogram"
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()
    family: str = ""  # a histogram's name, for its _bucket/_sum/_count samples' HELP and TYPE


@dataclass
class Histogram:
    """Observations counted into cumulative buckets (upper bounds in seconds, say)."""

    name: str
    help: str
    buckets: tuple[float, ...]
    counts: list[int] = field(init=False)
    count: int = 0
    sum: float = 0.0
    max: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.count += 1
        self.sum += value
        self.max = max(self.max, value)

    def metrics(self) -> list[Metric]:
        """The samples: one cumulative ``_bucket`` per bound and +Inf, ``_sum``, ``_count``."""
        samples = []
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            samples.append(self._sample("_bucket", running, (("le", f"{bound:g}"),)))
        samples.append(self._sample("_bucket", self.count, (("le", "+Inf"),)))
        samples.append(self._sample("_sum", self.sum))
        samples.append(self._sample("_count", self.count))
        return samples

    def _sample(self, suffix: str, value: float, labels: tuple[tuple[str, str], ...] = ()) -> Metric:
        return Metric(self.name + suffix, "histogram", self.help, value, labels, family=self.name)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(metrics: Iterable[Metric]) -> str:
    """The text format (version 0.0.4); HELP and TYPE once per metric name."""
    lines: list[str] = []
    seen: set[str] = set()
    for metric in metrics:
        family = metric.family or metric.name
        if family not in seen:
            seen.add(family)
            lines.append(f"# HELP {family} {metric.help}")
            lines.append(f"# TYPE {family} {metric.kind}")
        labels = ",".join(f'{key}="{_escape(value)}"' for key, value in metric.labels)
        value = int(metric.value) if float(metric.value).is_integer() else metric.value
        lines.append(f"{metric.name}{{{labels}}} {value}" if labels else f"{metric.name} {value}")
    return "\n".join(lines) + "\n"
