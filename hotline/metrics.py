"""Prometheus text exposition of the controller's gauges and counters (pure rendering)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One sample: name, type, help text, value and labels."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(metrics: Iterable[Metric]) -> str:
    """The text format (version 0.0.4); HELP and TYPE once per metric name."""
    lines: list[str] = []
    seen: set[str] = set()
    for metric in metrics:
        if metric.name not in seen:
            seen.add(metric.name)
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
        labels = ",".join(f'{key}="{_escape(value)}"' for key, value in metric.labels)
        value = int(metric.value) if float(metric.value).is_integer() else metric.value
        lines.append(f"{metric.name}{{{labels}}} {value}" if labels else f"{metric.name} {value}")
    return "\n".join(lines) + "\n"
