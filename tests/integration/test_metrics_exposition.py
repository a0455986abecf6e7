"""A real controller's /metrics, parsed by prometheus-client: every family it exposes is one we
document, with its type; the ones always there are there; and so are the process metrics."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.metric_families import HOTLINE_FAMILIES, OPTIONAL, PROCESS_FAMILIES
from tests.support.platform import PlatformUnderTest

pytestmark = pytest.mark.integration


def test_every_family_keeps_its_name_and_type(platform: PlatformUnderTest) -> None:
    text = platform.http("/metrics", token=None).body
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    ours = {name: kind for name, kind in families.items() if name.startswith("hotline_")}
    assert {name: HOTLINE_FAMILIES.get(name) for name in ours} == ours, "a family not in the table, or retyped"
    assert set(HOTLINE_FAMILIES) - OPTIONAL <= set(ours), sorted(set(HOTLINE_FAMILIES) - OPTIONAL - set(ours))
    for name in PROCESS_FAMILIES:
        assert name in families, name
    # nothing offered yet: the queue is there, its rates are not (no score is not a perfect one)
    assert 'hotline_queue_offered_24h{queue="general"} 0.0' in text
    assert 'hotline_queue_answer_rate_24h{queue="general"}' not in text
    assert 'hotline_agi_wait_seconds_bucket{le="2.5"}' in text
