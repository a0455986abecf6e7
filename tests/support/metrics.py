"""Reading one sample from a controller's /metrics, parsed by prometheus-client's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.platform import PlatformUnderTest, wait_for


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of sample ``name`` (as exposed: a counter's ``_total`` included) with exactly
    ``labels``; None when the exposition has no such sample."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == (labels or {}):
                return float(found.value)
    return None


def scrape(platform: PlatformUnderTest, name: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample from the platform's /metrics now (None: not exposed, or no answer)."""
    try:
        result = platform.http("/metrics", token=None)
    except OSError:
        return None
    return sample(result.body, name, labels) if result.status == 200 else None


def wait_metric(platform: PlatformUnderTest, name: str, value: float, timeout_s: float = 30.0) -> None:
    """Wait until sample ``name`` reads ``value``."""
    wait_for(f"{name} to read {value:g}", lambda: scrape(platform, name) == value, timeout_s=timeout_s, interval_s=0.25)
