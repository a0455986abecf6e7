"""/metrics through prometheus-client: the text parses, every family keeps its name, type and
labels, the process metrics are there, and each app has its own registry."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from calls.redis_budget import WAIT_BUCKETS_S, RedisBudget
from common.metrics import Histogram, Metric, MetricsError, MetricsExposition, metric_families
from hotline.api import build_api
from tests.support.metric_families import HOTLINE_FAMILIES, PROCESS_FAMILIES
from tests.unit.test_api import TOKENS, Backend


class ScrapedBackend(Backend):
    """The fake API backend, its metrics from the real producers that need no Asterisk."""

    def __init__(self) -> None:
        super().__init__()
        self.budget = RedisBudget()
        self.agi_wait = Histogram("hotline_agi_wait_seconds", "Dead air we caused", WAIT_BUCKETS_S)

    async def metrics(self) -> list[Metric]:
        return [
            Metric("hotline_calls_live", "gauge", "Calls in progress", 2),
            *self.budget.metrics(),
            *self.agi_wait.metrics(),
            Metric("hotline_dialplan_reloads_total", "counter", "Dialplan reloads", 4, (("result", "ok"),)),
            Metric("hotline_dialplan_reloads_total", "counter", "Dialplan reloads", 1, (("result", "rejected"),)),
            Metric("hotline_seats", "gauge", "Seats by state", 1, (("state", "ready"),)),
        ]


async def scrape(backend: Backend) -> str:
    async with TestClient(TestServer(build_api(backend, TOKENS))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return await response.text()


async def test_every_family_parses_with_its_name_type_and_labels() -> None:
    backend = ScrapedBackend()
    backend.agi_wait.observe(0.3)
    backend.agi_wait.observe(30.0)
    text = await scrape(backend)
    families = {family.name: family for family in text_string_to_metric_families(text)}
    ours = {name: family.type for name, family in families.items() if name.startswith("hotline_")}
    assert set(ours) == {
        "hotline_calls_live",
        "hotline_redis_call_path_timeouts",
        "hotline_redis_call_path_errors",
        "hotline_redis_write_backlog",
        "hotline_redis_writes_failed",
        "hotline_redis_writes_dropped",
        "hotline_redis_call_path_wait_seconds",
        "hotline_ivr_step_redis_wait_seconds",
        "hotline_agi_wait_seconds",
        "hotline_dialplan_reloads",
        "hotline_seats",
        "hotline_api_unauthenticated",
        "hotline_websockets_pending_auth",
        "hotline_websockets_pending_refused",
        "hotline_websockets_authenticated",
        "hotline_websockets_token_refused",
    }
    for name, kind in ours.items():
        assert HOTLINE_FAMILIES[name] == kind, name
    for name in PROCESS_FAMILIES:
        assert name in families, name

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples["hotline_dialplan_reloads_total", (("result", "ok"),)] == 4
    assert samples["hotline_dialplan_reloads_total", (("result", "rejected"),)] == 1
    assert samples["hotline_api_unauthenticated_total", ()] == 0
    assert samples["hotline_seats", (("state", "ready"),)] == 1
    # the histogram: the bucket labels as before (1, not 1.0), cumulative, count and sum
    assert samples["hotline_agi_wait_seconds_bucket", (("le", "0.5"),)] == 1
    assert samples["hotline_agi_wait_seconds_bucket", (("le", "+Inf"),)] == 2
    assert samples["hotline_agi_wait_seconds_count", ()] == 2
    assert samples["hotline_agi_wait_seconds_sum", ()] == pytest.approx(30.3)
    assert 'hotline_agi_wait_seconds_bucket{le="1"} 1.0\n' in text
    assert "hotline_redis_call_path_timeouts_total 0.0\n" in text


async def test_each_app_has_its_own_registry() -> None:
    """Two controllers (or test apps) in one process: no clash over a global registry."""
    first, second = ScrapedBackend(), ScrapedBackend()
    second.budget.read_timeouts = 7
    assert "hotline_redis_call_path_timeouts_total 0.0\n" in await scrape(first)
    assert "hotline_redis_call_path_timeouts_total 7.0\n" in await scrape(second)
    assert "hotline_redis_call_path_timeouts_total 0.0\n" in await scrape(first)


def test_a_label_value_is_escaped() -> None:
    text = MetricsExposition().render([Metric("x_total", "counter", "X", 1, (("q", 'a"b\nc\\'),))]).decode()
    assert 'x_total{q="a\\"b\\nc\\\\"} 1.0\n' in text  # one line, whatever the value
    (family, *_) = text_string_to_metric_families(text)
    assert family.samples[0].labels == {"q": 'a"b\nc\\'}


@pytest.mark.parametrize(
    "samples",
    [
        [Metric("hotline_things", "counter", "no _total: the library would rename it", 1)],
        [Metric("hotline_x", "gauge", "", 1), Metric("hotline_x", "counter", "", 1)],
        [Metric("hotline_x", "gauge", "", 1, (("a", "1"),)), Metric("hotline_x", "gauge", "", 1, (("b", "1"),))],
        [Metric("hotline_x", "summary", "", 1)],
    ],
)
def test_inconsistent_samples_are_refused(samples: list[Metric]) -> None:
    with pytest.raises(MetricsError):
        metric_families(samples)
