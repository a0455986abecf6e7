"""Call records: the state machine, the tracker's write-behind with retries, fallback files."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from calls.caller_index import CallerKeys
from calls.fallback import FallbackIngester, parse_fallback_name, read_fallback_caller
from calls.model import CallOutcome, CallRecord, CallState, IllegalTransition, end_call, transition
from calls.store import CountOnce, RedisCallStore
from calls.tracker import CallTracker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class MemoryStore:
    """A CallStore in memory that can be switched off like a restarting Redis."""

    def __init__(self) -> None:
        self.records: dict[str, CallRecord] = {}
        self.counted: dict[str, CountOnce] = {}  # marker → the count added under it
        self.rounds: list[tuple[list[str], list[str]]] = []  # each round's call ids and markers
        self.down = False

    async def save(self, record: CallRecord) -> bool:
        return record.call_id not in await self.save_many([record])

    async def save_many(self, records: Sequence[CallRecord], counts: Sequence[CountOnce] = ()) -> dict[str, int]:
        if self.down:
            raise ConnectionError("store down")
        self.rounds.append(([r.call_id for r in records], [c.marker for c in counts]))
        for count in counts:  # the rule of RedisCallStore: once per marker
            self.counted.setdefault(count.marker, count)
        stale: dict[str, int] = {}
        for record in records:  # the rule of RedisCallStore: never a stored newer revision replaced
            stored = self.records.get(record.call_id)
            if stored is not None and stored.revision > record.revision:
                stale[record.call_id] = stored.revision
            else:
                self.records[record.call_id] = record
        return stale

    async def get(self, call_id: str) -> CallRecord | None:
        if self.down:
            raise ConnectionError("store down")
        return self.records.get(call_id)

    async def recent(self, limit: int) -> list[CallRecord]:
        return sorted(self.records.values(), key=lambda r: r.started_at, reverse=True)[:limit]

    async def open_records(self) -> list[CallRecord]:
        return [r for r in self.records.values() if r.is_open]


def record(**changes: object) -> CallRecord:
    return CallRecord(call_id="k-1.1", platform="kunming", started_at=T0).model_copy(update=changes)


def test_state_machine_allows_only_forward_moves() -> None:
    in_ivr = transition(record(), CallState.IN_IVR)
    assert in_ivr.state is CallState.IN_IVR
    ended = transition(in_ivr, CallState.ENDED)
    with pytest.raises(IllegalTransition, match="ended → in_ivr"):
        transition(ended, CallState.IN_IVR)
    with pytest.raises(IllegalTransition):
        transition(in_ivr, CallState.ARRIVED)


def test_end_call_keeps_the_ivr_outcome_or_derives_one() -> None:
    assert (
        end_call(record(outcome=CallOutcome.IVR_COMPLETED), T0, "Normal Clearing").outcome is CallOutcome.IVR_COMPLETED
    )
    assert end_call(record(), T0, "Normal Clearing").outcome is CallOutcome.ABANDONED
    assert end_call(record(), T0, "", lost_track=True).outcome is CallOutcome.LOST_TRACK


async def test_a_call_through_the_tracker() -> None:
    store, clock = MemoryStore(), FakeClock()
    tracker = CallTracker(store, "kunming", clock)
    await tracker.channel_created("k-1.1", "PJSIP/trunk-1", "13800138000", "张三丰", "12345")
    clock.advance(1)
    await tracker.ivr_started("k-1.1", "PJSIP/trunk-1", "13800138000", "张三丰", "")
    await tracker.answered("k-1.1")
    await tracker.ivr_step("k-1.1", "greeting")
    await tracker.set_outcome("k-1.1", CallOutcome.IVR_COMPLETED)
    clock.advance(5)
    await tracker.hung_up("k-1.1", "Normal Clearing")
    assert await tracker.flush_dirty() == 0  # (the controller's writer does this at once)
    saved = store.records["k-1.1"]
    assert saved.state is CallState.ENDED
    assert saved.called == "12345"
    assert saved.answered_at == T0 + timedelta(seconds=1)
    assert saved.ended_at == T0 + timedelta(seconds=6)
    assert saved.ivr_path == ("greeting",)
    assert saved.outcome is CallOutcome.IVR_COMPLETED
    assert tracker.live_calls == 0


async def test_hangups_pending_counts_calls_the_ivr_released_until_their_hang_up() -> None:
    tracker = CallTracker(MemoryStore(), "kunming", FakeClock())
    for call_id in ("k-1.1", "k-1.2", "k-1.3"):
        await tracker.ivr_started(call_id, "PJSIP/trunk-1", "13800138000", "", "12345")
    await tracker.set_outcome("k-1.1", CallOutcome.IVR_COMPLETED)
    await tracker.set_outcome("k-1.2", CallOutcome.TRANSFERRED)  # bridged on: its end is not imminent
    assert tracker.hangups_pending() == 1
    assert await tracker.await_hangups(0.05) == 1  # nobody hangs up: it gives up after the timeout
    waiting = asyncio.create_task(tracker.await_hangups(30))
    await asyncio.sleep(0)
    await tracker.hung_up("k-1.1", "Normal Clearing")
    assert await waiting == 0
    assert tracker.hangups_pending() == 0
    assert tracker.live_calls == 2


async def test_agi_before_ami_still_makes_one_record() -> None:
    store = MemoryStore()
    tracker = CallTracker(store, "kunming", FakeClock())
    await tracker.ivr_started("k-1.1", "PJSIP/trunk-1", "13800138000", "", "12345")
    await tracker.channel_created("k-1.1", "PJSIP/trunk-1", "13800138000", "张三丰", "12345")
    await tracker.flush_dirty()
    assert list(store.records) == ["k-1.1"]
    assert store.records["k-1.1"].state is CallState.IN_IVR
    assert store.records["k-1.1"].caller_name == "张三丰"


async def test_records_survive_a_store_outage() -> None:
    store = MemoryStore()
    tracker = CallTracker(store, "kunming", FakeClock())
    store.down = True
    await tracker.channel_created("k-1.1", "PJSIP/trunk-1", "13800138000", "", "12345")
    await tracker.hung_up("k-1.1", "Normal Clearing")
    assert tracker.unsaved == 1
    assert await tracker.flush_dirty() == 1  # still down: kept
    store.down = False
    assert await tracker.flush_dirty() == 0
    assert store.records["k-1.1"].outcome is CallOutcome.ABANDONED


async def test_reconcile_ends_only_calls_asterisk_no_longer_has() -> None:
    store, clock = MemoryStore(), FakeClock()
    tracker = CallTracker(store, "kunming", clock)
    for call_id in ("gone", "alive"):
        await tracker.channel_created(call_id, f"PJSIP/{call_id}", "1", "", "12345")
    snapshot_mark = tracker.mark()
    clock.advance(-3600)  # even with a clock that went back, order decides
    await tracker.channel_created("arrived-during-snapshot", "PJSIP/x", "1", "", "12345")
    assert await tracker.reconcile({"alive"}, snapshot_mark) == 1
    await tracker.flush_dirty()
    assert store.records["gone"].outcome is CallOutcome.LOST_TRACK
    assert store.records["alive"].is_open
    assert store.records["arrived-during-snapshot"].is_open


async def test_a_call_that_ended_while_the_controller_was_away_never_gets_a_negative_length() -> None:
    """The restarted controller saw no hang-up: the record ends ``lost_track`` at the moment the
    channel was found gone, marked estimated; with a clock behind the record (another run's, a
    test clock) the end is clamped to the record's last known moment, never before it."""
    store = MemoryStore()
    talking = record(
        call_id="talking",
        state=CallState.IN_IVR,
        answered_at=T0 + timedelta(seconds=2),
        queued_at=T0 + timedelta(seconds=20),
        seat="1001",
        seat_answered_at=T0 + timedelta(seconds=30),
    )
    store.records = {"talking": talking, "in-menu": record(call_id="in-menu", state=CallState.IN_IVR)}
    behind = FakeClock()
    behind.advance(-3600)  # the successor's clock is an hour behind the record's
    successor = CallTracker(store, "kunming", behind)
    await successor.load_open()
    assert await successor.reconcile(set(), successor.mark()) == 2
    await successor.flush_dirty()
    ended = store.records["talking"]
    assert ended.outcome is CallOutcome.LOST_TRACK and ended.ended_at_estimated
    assert ended.ended_at == T0 + timedelta(seconds=30)  # clamped: a talk length of 0, not -3630 s
    assert store.records["in-menu"].ended_at == T0 and store.records["in-menu"].ended_at_estimated

    later = FakeClock()
    later.advance(600)
    store.records["talking"] = talking
    again = CallTracker(store, "kunming", later)
    await again.load_open()
    await again.reconcile(set(), again.mark())
    await again.flush_dirty()
    assert store.records["talking"].ended_at == T0 + timedelta(seconds=600)  # when it was noticed
    assert store.records["talking"].ended_at_estimated


async def test_a_hang_up_seen_is_not_estimated() -> None:
    store = MemoryStore()
    tracker = CallTracker(store, "kunming", FakeClock())
    await tracker.channel_created("k-1.1", "PJSIP/t", "1", "", "12345")
    await tracker.hung_up("k-1.1", "Normal Clearing")
    await tracker.flush_dirty()
    assert store.records["k-1.1"].ended_at_estimated is False


async def test_a_new_controller_adopts_open_records() -> None:
    store = MemoryStore()
    first = CallTracker(store, "kunming", FakeClock())
    await first.channel_created("k-1.1", "PJSIP/t", "1", "", "12345")
    await first.flush_dirty()
    successor = CallTracker(store, "kunming", FakeClock())
    await successor.load_open()
    await successor.hung_up("k-1.1", "Normal Clearing")
    await successor.flush_dirty()
    assert store.records["k-1.1"].state is CallState.ENDED


def test_fallback_file_names() -> None:
    # the name the fallback route writes: no number in it (it is kept beside the file)
    parsed = parse_fallback_name("fb2-1772442000-kunming-1772442000.7.wav", "kunming", T0, "13800138000")
    assert parsed is not None
    assert parsed.call_id == "kunming-1772442000.7"
    assert parsed.caller == "13800138000"
    assert parsed.outcome is CallOutcome.FALLBACK
    assert parsed.recording == "fallback/fb2-1772442000-kunming-1772442000.7.wav"
    assert parse_fallback_name("fb2-1772442000-1772442000.7.wav", "kunming", T0) is not None  # no systemname
    # the first format, still on disk: the number is in the name
    old = parse_fallback_name("fb-1772442000-13800138000-kunming-1772442000.7.wav", "kunming", T0)
    assert old is not None
    assert (old.call_id, old.caller) == ("kunming-1772442000.7", "13800138000")
    assert parse_fallback_name("fb-1772442000--anon-1.2.wav", "kunming", T0) is not None  # no caller number
    bad_names = ("fb-x-1-2.wav", "../../etc/passwd", "fb-1772442000-1-a/b.wav", "fb-1772442000-1-k.mp3", "fb2-1-k.wav")
    for bad in bad_names:
        assert parse_fallback_name(bad, "kunming", T0) is None


def test_the_number_beside_a_fallback_message(tmp_path: Path) -> None:
    wav = tmp_path / "fb2-1772442000-kunming-1772442000.7.wav"
    assert read_fallback_caller(wav) == ""  # nothing kept (or the first format)
    (tmp_path / "fb2-1772442000-kunming-1772442000.7.caller").write_text("13800138000")
    assert read_fallback_caller(wav) == "13800138000"
    (tmp_path / "fb2-1772442000-kunming-1772442000.7.caller").write_text("1380; rm -rf /")
    assert read_fallback_caller(wav) == ""  # not a number: not taken


async def test_fallback_ingestion_is_idempotent_and_merges(tmp_path: Path) -> None:
    store = MemoryStore()
    tracker = CallTracker(store, "kunming", FakeClock())
    folder = tmp_path / "fallback"
    folder.mkdir()
    (folder / "fb-1772442000-13800138000-kunming-1772442000.7.wav").write_bytes(b"RIFF")  # the first format
    (folder / "fb2-1772442001-kunming-1772442001.8.wav").write_bytes(b"RIFF")
    (folder / "fb2-1772442001-kunming-1772442001.8.caller").write_text("139")
    (folder / "fb2-1772442002-kunming-1772442002.9.wav").write_bytes(b"RIFF")
    (folder / "fb2-1772442002-kunming-1772442002.9.caller").write_text("13900000009")
    # a call the controller saw start (then died): its record is merged, not duplicated
    await tracker.channel_created("kunming-1772442001.8", "PJSIP/t", "139", "", "12345")
    await tracker.flush_dirty()
    successor = CallTracker(store, "kunming", FakeClock())
    ingester = FallbackIngester(tmp_path, successor, "kunming")
    assert await ingester.scan() == 3
    assert await ingester.scan() == 0
    assert await FallbackIngester(tmp_path, successor, "kunming").scan() == 0  # a restarted scanner too
    await successor.flush_dirty()
    assert {r.outcome for r in store.records.values()} == {CallOutcome.FALLBACK}
    assert all(not r.is_open for r in store.records.values())
    assert len(store.records) == 3
    assert store.records["kunming-1772442002.9"].caller == "13900000009"  # from the file beside it
    assert store.records["kunming-1772442000.7"].caller == "13800138000"  # from the old name


def _count_of(record: CallRecord) -> CountOnce:
    return CountOnce(f"counted:{record.call_id}", 60, 600, (("rollup", record.outcome or "", 1),))


async def test_an_ended_calls_counts_go_with_its_records_round_and_survive_an_outage() -> None:
    store, clock = MemoryStore(), FakeClock()
    tracker = CallTracker(store, "kunming", clock)
    tracker.count_ended(_count_of)
    await tracker.ivr_started("k-1.1", "PJSIP/trunk-1", "13800138000", "", "12345")
    await tracker.ivr_started("k-2.1", "PJSIP/trunk-2", "13800138001", "", "12345")
    assert await tracker.flush_dirty() == 0
    assert store.rounds == [(["k-1.1", "k-2.1"], [])]  # nothing counted for calls still going on
    store.down = True
    await tracker.hung_up("k-1.1", "Normal Clearing")
    assert await tracker.flush_dirty() == 1  # Redis down: the record and its count wait
    assert store.counted == {}
    store.down = False
    assert await tracker.flush_dirty() == 0
    assert store.rounds[-1] == (["k-1.1"], ["counted:k-1.1"])  # one round: the record and its count
    assert store.counted["counted:k-1.1"].increments == (("rollup", "abandoned", 1),)
    assert await tracker.flush_dirty() == 0
    assert store.rounds[-1] == (["k-1.1"], ["counted:k-1.1"])  # sent once: no round without changes
    await tracker.amend_stored("k-1.1", {"case_id": "KM1"})  # a later save of the call: no count again
    assert await tracker.flush_dirty() == 0
    assert store.rounds[-1] == (["k-1.1"], [])


async def test_a_count_made_while_a_round_is_out_is_sent_with_the_next_one() -> None:
    store, clock = MemoryStore(), FakeClock()
    tracker = CallTracker(store, "kunming", clock)
    tracker.count_ended(_count_of)
    tracker.count_ended(lambda record: None)  # nothing to count for this one
    await tracker.ivr_started("k-1.1", "PJSIP/trunk-1", "13800138000", "", "12345")
    release = asyncio.Event()
    real_save = store.save_many

    async def slow_save(records: Sequence[CallRecord], counts: Sequence[CountOnce] = ()) -> dict[str, int]:
        await release.wait()
        return await real_save(records, counts)

    store.save_many = slow_save  # type: ignore[method-assign]
    flushing = asyncio.create_task(tracker.flush_dirty())
    await asyncio.sleep(0)  # the round with the open record is out
    await tracker.hung_up("k-1.1", "Normal Clearing")  # ended meanwhile
    release.set()
    assert await flushing == 0
    assert [markers for _, markers in store.rounds] == [[], ["counted:k-1.1"]]
    assert store.records["k-1.1"].state is CallState.ENDED


async def test_a_counter_that_fails_does_not_lose_the_record() -> None:
    store = MemoryStore()
    tracker = CallTracker(store, "kunming", FakeClock())

    def broken(record: CallRecord) -> CountOnce:
        raise ValueError("bad report")

    tracker.count_ended(broken)
    tracker.count_ended(_count_of)
    await tracker.ivr_started("k-1.1", "PJSIP/trunk-1", "13800138000", "", "12345")
    await tracker.hung_up("k-1.1", "Normal Clearing")
    assert await tracker.flush_dirty() == 0
    assert store.records["k-1.1"].state is CallState.ENDED
    assert list(store.counted) == ["counted:k-1.1"]


async def test_each_change_is_kept_once_with_the_next_revision_and_its_contents() -> None:
    store, clock = MemoryStore(), FakeClock()
    tracker = CallTracker(store, "kunming", clock)
    seen: list[CallRecord] = []
    tracker.watch(seen.append)
    await tracker.channel_created("k-1.1", "PJSIP/trunk-1", "", "", "12345")
    await tracker.channel_created("k-1.1", "PJSIP/trunk-1", "13800138000", "张三丰", "")  # fills in the caller
    await tracker.ivr_started("k-1.1", "PJSIP/trunk-1", "13800138000", "张三丰", "12345")
    await tracker.answered("k-1.1")
    await tracker.ivr_step("k-1.1", "greeting")
    await tracker.ivr_digit("k-1.1", "menu", "1")
    await tracker.amend("k-1.1", {"tags": {"lang": "zh"}})
    await tracker.amend("k-1.1", {"tags": {"vip": "no"}, "queue": "general"})
    assert [r.revision for r in seen] == list(range(1, 9))
    last = seen[-1]
    assert (last.caller, last.caller_name, last.called) == ("13800138000", "张三丰", "12345")
    assert (last.ivr_path, last.digits, last.queue) == (("greeting",), ("menu=1",), "general")
    assert last.tags == {"lang": "zh", "vip": "no"}  # merged, not replaced
    assert last.answered_at == T0 and seen[2].state is CallState.IN_IVR
    assert tracker.get_live("k-1.1") is last
    assert await tracker.flush_dirty() == 0
    assert store.records["k-1.1"] == last


async def test_counts_redis_refuses_for_good_do_not_hold_the_records_back(client: aioredis.Redis) -> None:
    """A report key of the wrong type fails the writer's script: the counts are given up (an
    error line) and the records go again without them — saved, not retried for ever."""
    await client.set("rollup", "not a hash")
    tracker = CallTracker(RedisCallStore(client, timedelta(days=1), "kunming", CallerKeys("k")), "kunming")
    tracker.count_ended(_count_of)
    await tracker.channel_created("c-1", "PJSIP/trunk-1", "13800000000", "", "12345")
    await tracker.hung_up("c-1", "16")
    assert await tracker.flush_dirty() == 0
    assert tracker.is_saved("c-1")
    stored = await RedisCallStore(client, timedelta(days=1), "kunming", CallerKeys("k")).get("c-1")
    assert stored is not None and stored.state is CallState.ENDED
    assert await client.get("rollup") == b"not a hash"
    assert await tracker.flush_dirty() == 0  # nothing left to send
