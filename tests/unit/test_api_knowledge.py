"""The knowledge API on a real Redis: tokens and roles, platform scope, bounds, reload."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from cases.service import Unavailable
from hotline.api import build_api
from hotline.case_lookups import KnowledgeEntries
from knowledge.index import JiebaSegmenter
from knowledge.service import KnowledgeService
from knowledge.uses import RedisUseStore
from tests.unit.test_api import Backend
from web.auth import ApiToken, TokenRegistry, token_sha256

REPO = Path(__file__).resolve().parents[2]
TOKENS = TokenRegistry(
    [
        ApiToken(name="seat", role="seat", sha256=token_sha256("seat-token"), seat="1001"),
        ApiToken(name="dali-seat", role="seat", sha256=token_sha256("dali-token"), seat="2001", platform="dali"),
        ApiToken(name="prov", role="supervisor", sha256=token_sha256("prov-token"), platform="province"),
        ApiToken(name="sup", role="supervisor", sha256=token_sha256("sup-token")),
        ApiToken(name="root", role="admin", sha256=token_sha256("admin-token")),
    ]
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SEAT = bearer("seat-token")


@pytest.fixture
async def api(client: aioredis.Redis, tmp_path: Path) -> AsyncIterator[tuple[KnowledgeService, TestClient[Any, Any]]]:
    root = tmp_path / "knowledge_base"
    shutil.copytree(REPO / "knowledge_base", root)
    # every platform's folder is loaded (as at the province): scope must still hold
    knowledge = KnowledgeService(
        root,
        "kunming",
        RedisUseStore(client),
        clock=lambda: datetime(2026, 6, 1, tzinfo=UTC),
        segmenter=JiebaSegmenter(),
    )
    await knowledge.load_initial()
    test_client = TestClient(TestServer(build_api(Backend(client, tmp_path), TOKENS, knowledge=knowledge)))
    await test_client.start_server()
    yield knowledge, test_client
    await test_client.close()


async def test_seats_search_and_read(api: tuple[KnowledgeService, TestClient[Any, Any]]) -> None:
    knowledge, client = api
    assert (await client.get("/api/v1/knowledge?q=公积金")).status == 401
    assert (await client.get("/api/v1/knowledge/km-gjj-tiqu", headers=bearer("wrong"))).status == 401
    response = await client.get("/api/v1/knowledge", params={"q": "提取公积金", "limit": "5"}, headers=SEAT)
    assert response.status == 200
    body = await response.json()
    first = body["entries"][0]
    assert first["id"] == "km-gjj-tiqu"
    assert first["matter_type"] == "housing_fund" and first["unit"] == "km_housing_fund"
    assert first["source"].endswith("kunming/housing_fund.yaml:3") and first["uses"] == 0
    assert set(first) >= {"question", "answer", "keywords", "valid_until"}
    assert body["platform"] == "kunming" and "housing_fund" in body["matter_types"]
    await knowledge.record_use("km-gjj-tiqu")
    one = await (await client.get("/api/v1/knowledge/km-gjj-tiqu", headers=SEAT)).json()
    assert one["uses"] == 1 and one["valid_now"] is True
    listed = await (await client.get("/api/v1/knowledge?matter_type=housing_fund", headers=SEAT)).json()
    assert [e["id"] for e in listed["entries"]] == ["km-gjj-tiqu", "km-gjj-daikuan"]


async def test_other_platforms_entries_are_not_shown(api: tuple[KnowledgeService, TestClient[Any, Any]]) -> None:
    _, client = api
    assert (await client.get("/api/v1/knowledge/dl-gjj-tiqu", headers=SEAT)).status == 404
    found = await (await client.get("/api/v1/knowledge", params={"q": "公积金提取 古城"}, headers=SEAT)).json()
    assert found["entries"] and all(e["id"].startswith(("km-", "prov-")) for e in found["entries"])
    # 大理's seat may not read 昆明's controller at all; the province's may look
    assert (await client.get("/api/v1/knowledge", headers=bearer("dali-token"))).status == 403
    assert (await client.get("/api/v1/knowledge/prov-sbk-buban", headers=bearer("prov-token"))).status == 200


async def test_bounds(api: tuple[KnowledgeService, TestClient[Any, Any]]) -> None:
    _, client = api
    for query in ({"q": "公" * 201}, {"limit": "51"}, {"limit": "0"}, {"limit": "x"}, {"matter_type": "类" * 33}):
        response = await client.get("/api/v1/knowledge", params=query, headers=SEAT)
        assert response.status == 400, query
    assert (await client.get("/api/v1/knowledge", params={"limit": "50"}, headers=SEAT)).status == 200
    assert (await client.get("/api/v1/knowledge/..%2f..%2fetc", headers=SEAT)).status == 404


async def test_reload_is_for_admins_and_keeps_the_last_good(
    api: tuple[KnowledgeService, TestClient[Any, Any]],
) -> None:
    knowledge, client = api
    assert (await client.post("/api/v1/knowledge/reload", headers=SEAT)).status == 403
    assert (await client.post("/api/v1/knowledge/reload", headers=bearer("sup-token"))).status == 403
    assert (await client.get("/api/v1/knowledge/status", headers=SEAT)).status == 403
    version = knowledge.base.version
    (knowledge.root / "kunming" / "broken.yaml").write_text("entries:\n  - id: km-x\n    colour: red\n", "utf-8")
    response = await client.post("/api/v1/knowledge/reload", headers=bearer("admin-token"))
    assert response.status == 422
    body = await response.json()
    assert body["version"] == version and body["ok"] is False
    assert any("broken.yaml:3:5: error: entries.0.colour: unknown key" in p for p in body["problems"])
    status = await (await client.get("/api/v1/knowledge/status", headers=bearer("sup-token"))).json()
    assert status["entries"] == 13 and "broken.yaml:3:5" in status["last_error"]
    (knowledge.root / "kunming" / "broken.yaml").unlink()
    response = await client.post("/api/v1/knowledge/reload", headers=bearer("admin-token"))
    assert response.status == 200 and (await response.json())["ok"] is True


class GatedSegmenter:
    """jieba behind a gate: the load at start blocks (in its thread) until the test opens it,
    as a slow dictionary load would."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self._jieba = JiebaSegmenter()

    def words(self, text: str) -> list[str]:
        assert self.gate.wait(30), "the test never opened the gate"
        return self._jieba.words(text)


async def test_search_answers_503_loading_until_the_base_is_loaded(client: aioredis.Redis, tmp_path: Path) -> None:
    """The controller serves calls before the knowledge base is loaded (docs/benchmarks.md,
    "Controller restart gap"): meanwhile search and read answer 503 "loading" (the desk says
    so and asks again), a case naming an entry is refused with 503 (nothing saved), then 200."""
    segmenter = GatedSegmenter()
    knowledge = KnowledgeService(
        REPO / "knowledge_base", "kunming", RedisUseStore(client),
        clock=lambda: datetime(2026, 6, 1, tzinfo=UTC), segmenter=segmenter,
    )  # fmt: skip
    test_client = TestClient(TestServer(build_api(Backend(client, tmp_path), TOKENS, knowledge=knowledge)))
    await test_client.start_server()
    loading = asyncio.create_task(knowledge.load_initial())
    try:
        assert knowledge.loading
        response = await test_client.get("/api/v1/knowledge", params={"q": "提取公积金"}, headers=SEAT)
        assert response.status == 503 and response.headers["Retry-After"] == "1"
        assert (await response.json())["loading"] is True
        assert (await test_client.get("/api/v1/knowledge/km-gjj-tiqu", headers=SEAT)).status == 503
        status = await (await test_client.get("/api/v1/knowledge/status", headers=bearer("sup-token"))).json()
        assert status["loading"] is True and status["entries"] == 0
        with pytest.raises(Unavailable, match="loading"):
            await KnowledgeEntries(knowledge, load_wait_s=0.05).has_entry("kunming", "km-gjj-tiqu")
        waiting = asyncio.create_task(KnowledgeEntries(knowledge, load_wait_s=30).has_entry("kunming", "km-gjj-tiqu"))
        segmenter.gate.set()
        await loading
        assert await waiting  # a case saved while loading waits for the base, then is checked
        assert not knowledge.loading
        response = await test_client.get("/api/v1/knowledge", params={"q": "提取公积金"}, headers=SEAT)
        assert response.status == 200
        assert (await response.json())["entries"][0]["id"] == "km-gjj-tiqu"
        status = await (await test_client.get("/api/v1/knowledge/status", headers=bearer("sup-token"))).json()
        assert status["loading"] is False and status["entries"] > 0
    finally:
        segmenter.gate.set()
        await loading
        await test_client.close()


async def test_a_broken_base_at_start_ends_loading_too(client: aioredis.Redis, tmp_path: Path) -> None:
    """A base that fails to load starts empty: search answers 200 with nothing, never 503 for ever."""
    root = tmp_path / "knowledge_base"
    (root / "kunming").mkdir(parents=True)
    (root / "kunming" / "broken.yaml").write_text("entries: [\n", encoding="utf-8")
    knowledge = KnowledgeService(root, "kunming", RedisUseStore(client), segmenter=JiebaSegmenter())
    await knowledge.load_initial()
    assert not knowledge.loading and knowledge.last_error
    assert await knowledge.search("公积金") == []
