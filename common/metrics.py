"""The controller's gauges, counters and histograms, exposed with prometheus-client.

The figures are computed on each scrape (``Metric`` values, some read from Redis); a collector
turns them into metric families, and the controller's own registry (not the library's global
one: several controllers, or several test apps, live in one process) renders them with the
process metrics (CPU, memory, open files) in the Prometheus text format.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric as MetricFamily

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


@dataclass(frozen=True)
class Metric:
    """One sample: name, type, help text, value and labels (a histogram's: its sum, and its
    cumulative buckets, upper bound as written in the ``le`` label and count, +Inf last)."""

    name: str
    kind: str  # "gauge", "counter" (its name ends in _total) or "histogram"
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()
    buckets: tuple[tuple[str, float], ...] = ()


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
        """The histogram as one sample: cumulative buckets per bound and +Inf, and the sum."""
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            cumulative.append((f"{bound:g}", running))
        cumulative.append(("+Inf", self.count))
        return [Metric(self.name, "histogram", self.help, self.sum, buckets=tuple(cumulative))]


class MetricsError(ValueError):
    """Samples that cannot be one consistent metric family (a programming error)."""


def _family(metric: Metric, label_names: Sequence[str]) -> MetricFamily:
    if metric.kind == "gauge":
        return GaugeMetricFamily(metric.name, metric.help, labels=label_names)
    if metric.kind == "counter":
        if not metric.name.endswith("_total"):  # the library would append it: the name would change
            raise MetricsError(f"counter {metric.name!r}: a counter's name ends in _total")
        return CounterMetricFamily(metric.name, metric.help, labels=label_names)
    if metric.kind == "histogram":
        return HistogramMetricFamily(metric.name, metric.help, labels=label_names)
    raise MetricsError(f"{metric.name!r}: unknown kind {metric.kind!r}")


def metric_families(metrics: Iterable[Metric]) -> list[MetricFamily]:
    """The samples grouped into families, in the order their names first appear."""
    families: dict[str, tuple[Metric, MetricFamily]] = {}
    for metric in metrics:
        label_names = [key for key, _ in metric.labels]
        label_values = [value for _, value in metric.labels]
        if metric.name not in families:
            families[metric.name] = (metric, _family(metric, label_names))
        first, family = families[metric.name]
        if (first.kind, [key for key, _ in first.labels]) != (metric.kind, label_names):
            raise MetricsError(f"{metric.name!r}: its samples differ in type or label names")
        if isinstance(family, HistogramMetricFamily):
            family.add_metric(label_values, metric.buckets, metric.value)
        else:
            assert isinstance(family, GaugeMetricFamily | CounterMetricFamily)
            family.add_metric(label_values, metric.value)
    return [family for _, family in families.values()]


class _ScrapeCollector:
    """Yields the families of the scrape under way (set just before the registry renders)."""

    def __init__(self) -> None:
        self.samples: tuple[Metric, ...] = ()

    def collect(self) -> Iterator[MetricFamily]:
        yield from metric_families(self.samples)


class MetricsExposition:
    """One controller's registry: its scrape's figures, then the process metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._scrape = _ScrapeCollector()
        self.registry.register(self._scrape)
        ProcessCollector(registry=self.registry)

    def render(self, samples: Iterable[Metric]) -> bytes:
        """The text format of ``samples`` and the process metrics (synchronous: no other scrape
        can slip in between setting the samples and rendering them)."""
        self._scrape.samples = tuple(samples)
        try:
            return generate_latest(self.registry)
        finally:
            self._scrape.samples = ()
