"""Knowledge search on the shipped base and on small bases of the tests' own: Chinese words,
synonyms, validity windows (local days), platform scope, ranking by use (counts in a real
Redis, surviving a restart and an outage), and reloads that keep the last good version."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from hotline.redis_process import RedisProcess
from knowledge.index import JiebaSegmenter
from knowledge.service import KnowledgeService, UnknownEntry
from knowledge.uses import RedisUseStore, uses_key
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SEGMENTER = JiebaSegmenter()  # its dictionary loads once per module
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def entry(entry_id: str, question: str, matter: str = "住房公积金", extra: str = "") -> str:
    return (
        f"  - id: {entry_id}\n    question: {question}\n    answer: 请按规定办理。\n    matter_type: {matter}\n{extra}"
    )


def service(
    root: Path,
    client: aioredis.Redis,
    platform: str = "kunming",
    now: datetime = NOW,
    load: set[str] | None = None,
) -> KnowledgeService:
    return KnowledgeService(
        root, platform, RedisUseStore(client), load_platforms=load, clock=lambda: now, segmenter=SEGMENTER
    )


@pytest.fixture
async def shipped(client: aioredis.Redis) -> AsyncIterator[KnowledgeService]:
    knowledge = service(REPO / "knowledge_base", client)
    await knowledge.load_initial()
    assert knowledge.last_error == ""
    yield knowledge


async def ids(
    knowledge: KnowledgeService, query: str = "", matter_type: str = "", platform: str | None = None
) -> list[str]:
    return [hit.entry.id for hit in await knowledge.search(query, matter_type, 20, platform)]


async def test_word_order_does_not_matter(shipped: KnowledgeService) -> None:
    assert (await ids(shipped, "提取公积金"))[0] == "km-gjj-tiqu"  # its question says 公积金提取
    assert (await ids(shipped, "社保卡丢了怎么办"))[0] == "prov-sbk-buban"
    assert (await ids(shipped, "我想迁户口"))[0] == "prov-hukou-qianyi"
    assert await ids(shipped, "怎么办") == []  # stop words alone match nothing
    assert await ids(shipped, '" OR * NEAR(') == []  # query syntax is only text


async def test_keywords_are_synonyms(shipped: KnowledgeService) -> None:
    # 漏气 is in none of the entry's question or answer: only in its keywords
    assert "漏气" not in shipped.get("km-ranqi-baoxiu").answer  # type: ignore[union-attr]
    assert await ids(shipped, "漏气") == ["km-ranqi-baoxiu"]
    assert (await ids(shipped, "宰客", platform="dali"))[0] == "dl-guhai-tousu"


async def test_a_seat_sees_its_platform_and_the_province(shipped: KnowledgeService) -> None:
    found = await ids(shipped, "公积金提取")
    assert "km-gjj-tiqu" in found and "dl-gjj-tiqu" not in found
    assert (await ids(shipped, "公积金提取", platform="dali"))[0] == "dl-gjj-tiqu"
    assert "km-gjj-tiqu" not in await ids(shipped, "公积金提取", platform="dali")
    assert shipped.get("dl-gjj-tiqu") is None and shipped.get("prov-sbk-buban") is not None
    assert await ids(shipped, "古城") == []
    assert {h.entry.platform for h in await shipped.search("", "", 50, "province")} == {"province"}
    with pytest.raises(UnknownEntry):
        await shipped.record_use("dl-gjj-tiqu")
    with pytest.raises(UnknownEntry):
        await shipped.record_use("no such\nid")
    assert shipped.matter_types() == sorted(shipped.matter_types()) and "旅游消费" not in shipped.matter_types()


async def test_only_entries_valid_on_the_local_day_are_offered(tmp_path: Path, client: aioredis.Redis) -> None:
    (tmp_path / "kunming").mkdir()
    window = "    valid_from: 2026-03-01\n    valid_until: 2026-03-31\n"
    (tmp_path / "kunming" / "a.yaml").write_text("entries:\n" + entry("km-march", "三月的公积金政策", extra=window))

    async def offered(now: datetime) -> bool:
        knowledge = service(tmp_path, client, now=now)
        await knowledge.load_initial()
        return await ids(knowledge, "公积金") == ["km-march"] and await ids(knowledge) == ["km-march"]

    assert not await offered(datetime(2026, 2, 28, 15, 59, tzinfo=UTC))  # 23:59 on 28 Feb in 昆明
    assert await offered(datetime(2026, 2, 28, 16, 0, tzinfo=UTC))  # 00:00 on 1 March
    assert await offered(datetime(2026, 3, 31, 15, 59, tzinfo=UTC))
    assert not await offered(datetime(2026, 3, 31, 16, 0, tzinfo=UTC))  # 1 April
    late = service(tmp_path, client, now=datetime(2026, 4, 2, tzinfo=UTC))
    await late.load_initial()
    with pytest.raises(UnknownEntry):
        await late.record_use("km-march")
    assert late.get("km-march") is not None  # still readable by id (a case may name it)


async def test_ranking_by_use_survives_a_restart(tmp_path: Path, client: aioredis.Redis) -> None:
    (tmp_path / "kunming").mkdir()
    (tmp_path / "province").mkdir()
    (tmp_path / "kunming" / "a.yaml").write_text(
        "entries:\n"
        + entry("km-one", "公积金提取")
        + entry("km-two", "公积金提取")
        + entry("km-gas", "燃气报修", "公用事业"),
        encoding="utf-8",
    )
    knowledge = service(tmp_path, client)
    await knowledge.load_initial()
    assert await ids(knowledge, "提取公积金") == ["km-one", "km-two"]  # the same bm25: by id
    for _ in range(2):
        await knowledge.record_use("km-two")
    await knowledge.record_use("km-gas")
    assert await ids(knowledge, "提取公积金") == ["km-two", "km-one"]
    assert await ids(knowledge) == ["km-two", "km-gas", "km-one"]  # no query: the most used first
    assert await ids(knowledge, matter_type="住房公积金") == ["km-two", "km-one"]
    assert await client.hgetall(uses_key("kunming")) == {b"km-two": b"2", b"km-gas": b"1"}
    restarted = service(tmp_path, client)
    await restarted.load_initial()
    hits = await restarted.search("公积金", "", 5)
    assert [(h.entry.id, h.uses) for h in hits] == [("km-two", 2), ("km-one", 0)]
    # another platform's counts are its own
    dali = service(tmp_path, client, platform="dali")
    await dali.load_initial()
    assert await dali.uses.current() == {}


async def test_search_works_while_redis_is_down_and_uses_are_saved_when_it_is_back(tmp_path: Path) -> None:
    (tmp_path / "kunming").mkdir()
    (tmp_path / "kunming" / "a.yaml").write_text("entries:\n" + entry("km-one", "公积金提取"), encoding="utf-8")
    port = free_port()
    client = aioredis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    knowledge = service(tmp_path, client)
    await knowledge.load_initial()
    assert await ids(knowledge, "公积金") == ["km-one"]
    await knowledge.record_use("km-one")  # does not raise: kept until Redis answers
    assert knowledge.uses.unsaved == 1 and knowledge.uses.store_failures >= 1
    assert [(h.entry.id, h.uses) for h in await knowledge.search("公积金")] == [("km-one", 1)]
    server = RedisProcess(tmp_path / "redis", port)
    (tmp_path / "redis").mkdir()
    server.start()
    try:
        await knowledge.record_use("km-one")
        assert knowledge.uses.unsaved == 0
        assert await client.hget(uses_key("kunming"), "km-one") == b"2"
    finally:
        await client.aclose()
        server.stop()


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    stat = path.stat()  # a new modification time even within the file system's time resolution
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


async def test_a_broken_file_keeps_the_last_good_version(tmp_path: Path, client: aioredis.Redis) -> None:
    (tmp_path / "kunming").mkdir()
    path = tmp_path / "kunming" / "a.yaml"
    _write(path, "entries:\n" + entry("km-one", "公积金提取"))
    knowledge = service(tmp_path, client)
    await knowledge.load_initial()
    good = knowledge.base.version
    _write(path, "entries:\n" + entry("km-one", "公积金提取", extra="    valid_until: 2026-13-01\n"))
    result = await knowledge.reload("test")
    assert not result.ok and result.version == good
    assert result.problems == (
        f"{path}:6:18: error: (top level): invalid YAML: not a valid timestamp: month must be in 1..12",
    )
    assert await ids(knowledge, "公积金") == ["km-one"]
    assert knowledge.status()["last_error"] == result.problems[0] and knowledge.reloads_failed == 1
    _write(path, "entries:\n" + entry("km-two", "燃气报修"))
    result = await knowledge.reload("test")
    assert result.ok and result.changed and knowledge.last_error == ""
    assert await ids(knowledge, "公积金") == [] and await ids(knowledge, "燃气") == ["km-two"]


async def test_a_changed_file_is_picked_up_by_the_watcher(tmp_path: Path, client: aioredis.Redis) -> None:
    import asyncio

    (tmp_path / "kunming").mkdir()
    knowledge = service(tmp_path, client)
    await knowledge.load_initial()
    assert knowledge.base.entries == ()
    watcher = asyncio.create_task(knowledge.watch(0.05))
    try:
        _write(tmp_path / "kunming" / "new.yaml", "entries:\n" + entry("km-new", "噪音投诉", "环境保护"))
        async with asyncio.timeout(60):
            while not knowledge.base.entries:  # noqa: ASYNC110 - the watcher task swaps it
                await asyncio.sleep(0.05)
        assert await ids(knowledge, "噪音") == ["km-new"]
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


async def test_a_broken_base_at_start_is_empty_and_says_why(tmp_path: Path, client: aioredis.Redis) -> None:
    (tmp_path / "kunming").mkdir()
    (tmp_path / "kunming" / "a.yaml").write_text("entries: [\n", encoding="utf-8")
    knowledge = service(tmp_path, client)
    await knowledge.load_initial()
    assert knowledge.base.entries == () and "a.yaml:2:1: error" in knowledge.last_error
    assert await knowledge.search("公积金") == []
