"""The wallboard's pure parts: today's window (00:00 China time), the counters against the slow
recomputation from records (acd/stats.py), alert evaluation, and one push cycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from structlog.testing import capture_logs

from acd.events import EventBus
from acd.model import QueuedCall
from acd.seat import Seat, SeatState
from acd.stats import queue_stats
from calls.model import CallOutcome, CallRecord, CallState
from wallboard.alerts import AlertBook
from wallboard.config import AlertRule, WallboardConfig
from wallboard.service import Identity, Wallboard
from wallboard.today import ALL, TodayTally, day_start

# 2026-03-03 00:30 in China is 2026-03-02 16:30 UTC
NOW = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)
MIDNIGHT_CHINA = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)


def record(
    call_id: str,
    queued_at: datetime,
    *,
    wait_s: float | None = 5.0,
    queue: str = "general",
    outcome: CallOutcome = CallOutcome.ABANDONED,
    score: int | None = None,
    ended: bool = True,
) -> CallRecord:
    answered = queued_at + timedelta(seconds=wait_s) if wait_s is not None else None
    return CallRecord(
        call_id=call_id,
        platform="kunming",
        state=CallState.ENDED if ended else CallState.IN_IVR,
        started_at=queued_at - timedelta(seconds=20),
        queue=queue,
        queued_at=queued_at,
        seat_answered_at=answered,
        ended_at=(answered or queued_at) + timedelta(seconds=60) if ended else None,
        outcome=outcome,
        survey_score=score,
    )


def test_day_starts_at_midnight_china_time_not_utc() -> None:
    assert day_start(NOW) == MIDNIGHT_CHINA
    assert day_start(MIDNIGHT_CHINA) == MIDNIGHT_CHINA
    assert day_start(MIDNIGHT_CHINA - timedelta(microseconds=1)) == MIDNIGHT_CHINA - timedelta(days=1)
    # 07:59 UTC is 15:59 in China: the same China day as 16:00 UTC the day before
    assert day_start(datetime(2026, 3, 3, 7, 59, tzinfo=UTC)) == MIDNIGHT_CHINA


def test_today_counts_calls_since_00_00_china_time_only() -> None:
    tally = TodayTally()
    assert not tally.add(record("yesterday", MIDNIGHT_CHINA - timedelta(seconds=1)), NOW)  # 23:59:59 China
    assert tally.add(record("today", MIDNIGHT_CHINA + timedelta(seconds=1)), NOW)
    assert not tally.add(record("today", MIDNIGHT_CHINA + timedelta(seconds=1)), NOW)  # counted once
    assert not tally.add(record("open", NOW, ended=False), NOW)  # counts when it ends
    assert tally.today(ALL, NOW).offered == 1
    # the next China day starts from zero (16:00 UTC), not at UTC midnight
    assert tally.today(ALL, datetime(2026, 3, 3, 0, 0, tzinfo=UTC)).offered == 1
    assert tally.today(ALL, datetime(2026, 3, 3, 16, 0, tzinfo=UTC)).offered == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-3 * 3600, 1800),  # queued, seconds after 00:00 China
            st.one_of(st.none(), st.floats(0, 60)),  # wait until a seat answered
            st.sampled_from(["general", "tax"]),
            st.sampled_from([CallOutcome.ABANDONED, CallOutcome.VOICEMAIL]),
            st.one_of(st.none(), st.integers(1, 3)),
        ),
        max_size=40,
    )
)
def test_counters_match_the_slow_recomputation_from_records(calls: list[Any]) -> None:
    records = [
        record(f"c{i}", MIDNIGHT_CHINA + timedelta(seconds=at), wait_s=wait, queue=q, outcome=o, score=s)
        for i, (at, wait, q, o, s) in enumerate(calls)
    ]
    tally = TodayTally()
    for r in records:
        tally.add(r, NOW)
    for queue in ("general", "tax"):
        slow = queue_stats(queue, records, NOW, NOW - MIDNIGHT_CHINA)
        fast = tally.today(queue, NOW)
        assert (fast.offered, fast.answered, fast.within_15s, fast.abandoned) == (
            slow.offered,
            slow.answered,
            slow.answered_within_15s,
            slow.abandoned,
        )
        assert (fast.surveyed, fast.satisfied) == (slow.surveyed, slow.satisfied)
        assert fast.rate("service_level_15s") == slow.service_level
        assert fast.rate("answer_rate") == slow.answer_rate


def test_rates_are_null_when_nothing_was_offered() -> None:
    view = TodayTally().today(ALL, NOW).view()
    assert view["offered"] == 0
    assert view["service_level_15s"] is None and view["answer_rate"] is None and view["abandon_rate"] is None
    assert view["satisfaction_rate"] is None and view["asa_s"] is None


def test_rolling_window_for_alerts_spans_midnight() -> None:
    tally = TodayTally(keep_s=900)
    tally.add(record("late-good", MIDNIGHT_CHINA - timedelta(seconds=60), wait_s=3), NOW - timedelta(minutes=25))
    now = MIDNIGHT_CHINA + timedelta(minutes=5)
    tally.add(record("bad", MIDNIGHT_CHINA + timedelta(seconds=60), wait_s=40), now)
    tally.add(record("old", MIDNIGHT_CHINA - timedelta(minutes=30), wait_s=3), now)  # outside 15 min
    window = tally.window(ALL, now, 900)
    assert (window.offered, window.within_15s) == (2, 1)  # yesterday's 23:59 call is in the window
    assert tally.today(ALL, now).offered == 1


def rule(**fields: Any) -> AlertRule:
    return AlertRule.model_validate({"name": "r", **fields})


def test_alert_rules_are_checked() -> None:
    with pytest.raises(ValidationError, match="exactly one of below / above"):
        rule(figure="waiting", below=1, above=2)
    with pytest.raises(ValidationError, match="exactly one of below / above"):
        rule(figure="waiting")
    with pytest.raises(ValidationError, match="window_s applies to rates only"):
        rule(figure="waiting", above=3, window_s=900)
    with pytest.raises(ValidationError, match="extra"):
        rule(figure="waiting", above=3, colour="red")
    with pytest.raises(ValidationError, match="given twice"):
        WallboardConfig(alerts=(rule(figure="waiting", above=1), rule(figure="waiting", above=2)))


def test_alerts_raise_hold_and_clear() -> None:
    sl, waiting = rule(name="sl", figure="service_level_15s", below=0.8), rule(name="w", figure="waiting", above=2)
    book = AlertBook([sl, waiting])
    t0, t1 = NOW, NOW + timedelta(seconds=2)
    change = book.evaluate({("sl", "general"): 0.5, ("w", "general"): 2.0, ("sl", "all"): None}, t0)
    assert [(a.rule, a.queue) for a in change.raised] == [("sl", "general")]  # 2 is not above 2; None never
    change = book.evaluate({("sl", "general"): 0.6, ("w", "general"): 3.0}, t1)
    assert [(a.rule, a.since) for a in change.raised] == [("w", t1)]
    assert {(a.rule, a.since, a.value) for a in book.active} == {("sl", t0, 0.6), ("w", t1, 3.0)}
    change = book.evaluate({("sl", "general"): 0.8, ("w", "general"): 3.0}, t1)
    assert [a.rule for a in change.cleared] == ["sl"]  # 0.8 is not below 0.8
    change = book.evaluate({}, t1)  # the queue went away
    assert [a.rule for a in change.cleared] == ["w"] and book.active == []


def test_alert_limited_to_queues() -> None:
    book = AlertBook([rule(name="w", figure="waiting", above=0, queues=("tax",))])
    change = book.evaluate({("w", "general"): 5.0, ("w", "tax"): 1.0}, NOW)
    assert [a.queue for a in change.raised] == ["tax"]
    assert book.states(["all", "general", "tax"]) == [("w", "tax", True)]


class Floor:
    def __init__(self) -> None:
        self.waiters: list[QueuedCall] = []
        self.seat_list = [Seat("1001", SeatState.ON_CALL, since=NOW - timedelta(seconds=42))]

    def queue_names(self) -> list[str]:
        return ["general", "tax"]

    def waiting(self, queue: str) -> list[QueuedCall]:
        return [c for c in self.waiters if c.queue == queue]

    def seats(self) -> list[Seat]:
        return self.seat_list


class Store:
    def __init__(self) -> None:
        self.published: dict[str, dict[str, Any]] = {}

    async def publish(self, platform: str, summary: dict[str, Any]) -> None:
        self.published[platform] = summary

    async def summaries(self) -> list[dict[str, Any]]:
        return list(self.published.values())


async def test_one_push_cycle_computes_alerts_metrics_and_log() -> None:
    floor, store = Floor(), Store()
    clock = [NOW]
    loaded = [record("seed", MIDNIGHT_CHINA + timedelta(minutes=1), wait_s=30)]

    async def recent(_limit: int) -> list[CallRecord]:
        return loaded

    config = WallboardConfig(alerts=(rule(name="long_wait", figure="longest_wait_s", above=120),))
    board = Wallboard(
        identity=Identity("kunming", "昆明", False),
        config=config,
        floor=floor,
        events=EventBus(aioredis.Redis(port=1), platform="kunming"),
        store=store,
        recent_calls=recent,
        clock=lambda: clock[0],
    )
    viewer = board.subscribe(province=False)
    first = await board.push()
    assert first["totals"]["offered"] == 1 and first["totals"]["service_level_15s"] == 0.0  # seeded once
    assert datetime.fromisoformat(first["since"]) == MIDNIGHT_CHINA and first["since"].endswith("+08:00")
    assert first["seats"] == [
        {"seat": "1001", "state": "on_call", "reason": "", "since": (NOW - timedelta(seconds=42)).isoformat(),
         "in_state_s": 42.0}
    ]  # fmt: skip
    assert first["seat_states"]["on_call"] == 1 and first["alerts"] == []
    assert (await viewer.boards.get())["at"] == NOW.isoformat()
    entered = (NOW - timedelta(seconds=121)).timestamp()
    floor.waiters = [QueuedCall("w1", "PJSIP/x", "tax", (), 0, entered)]
    with capture_logs() as logs:
        second = await board.push()
    assert [(a["alert"], a["queue"]) for a in second["alerts"]] == [("long_wait", "all"), ("long_wait", "tax")]
    assert any(e["event"] == "wallboard.alert_raised" and e["queue"] == "tax" for e in logs)
    gauges = {(dict(m.labels)["alert"], dict(m.labels)["queue"]): m.value for m in board.metrics() if m.labels}
    assert gauges == {("long_wait", "all"): 1.0, ("long_wait", "general"): 0.0, ("long_wait", "tax"): 1.0}
    assert store.published["kunming"]["alerts"] == second["alerts"] and "seats" not in store.published["kunming"]
    await board.call_ended(record("r2", NOW - timedelta(minutes=1), wait_s=2))
    floor.waiters = []
    with capture_logs() as logs:
        third = await board.push()
    assert third["alerts"] == [] and third["totals"]["offered"] == 2
    assert [e["event"] for e in logs if e["event"].startswith("wallboard.alert")] == ["wallboard.alert_cleared"] * 2
    assert all(m.value == 0.0 for m in board.metrics() if m.name == "hotline_alert_active")


async def test_every_board_shows_the_alert_thresholds_as_configured_each_its_own_copy() -> None:
    async def recent(_limit: int) -> list[CallRecord]:
        return []

    rules = (
        rule(name="long_wait", figure="longest_wait_s", above=120),
        rule(name="sl", figure="service_level_15s", below=0.8),
    )
    board = Wallboard(
        identity=Identity("kunming", "昆明", False),
        config=WallboardConfig(alerts=rules),
        floor=Floor(),
        events=EventBus(aioredis.Redis(port=1), platform="kunming"),
        store=Store(),
        recent_calls=recent,
        clock=lambda: NOW,
    )
    first = await board.push()
    assert first["thresholds"] == [r.model_dump(exclude_none=True) for r in rules]
    first["thresholds"][0]["above"] = 1  # a viewer's copy, changed
    assert (await board.push())["thresholds"] == [r.model_dump(exclude_none=True) for r in rules]
