"""The wallboard service: one computation per push cycle (every ``push_interval_s`` and soon
after every seat or queue event), shared by every subscriber. Reads only live state (the ACD's
waiting callers, the seats) and today's counters (wallboard/today.py), never the call records —
except once at start, to count the calls of today that ended before this controller started."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from redis.exceptions import RedisError

from acd.events import EventBus
from acd.model import QueuedCall
from acd.seat import Seat, SeatState
from acd.stats import SERVICE_LEVEL_WINDOW_S
from calls.model import CallRecord
from calls.store import StoreUnavailable
from common.clock import Clock
from common.metrics import Metric
from wallboard.alerts import AlertBook
from wallboard.config import RATES, WallboardConfig
from wallboard.store import BoardStore, with_freshness
from wallboard.today import ALL, TodayTally, day_start

log = structlog.get_logger(__name__)

SEED_RECORDS = 10_000  # read once at start: today's calls that ended before the controller started
COALESCE_S = 0.2  # a burst of events makes one push
BOARD_EVENTS = ("acd.", "seat.")


class Floor(Protocol):
    """The live state the board shows (the ACD and the seats)."""

    def queue_names(self) -> list[str]: ...

    def waiting(self, queue: str) -> list[QueuedCall]: ...

    def seats(self) -> list[Seat]: ...


@dataclass(frozen=True)
class Identity:
    platform: str
    name: str
    province: bool


class Subscriber:
    """One viewer: the latest board waits in a one-place queue (a slow screen skips boards)."""

    def __init__(self, province: bool) -> None:
        self.province = province
        self.boards: asyncio.Queue[dict[str, Any]] = asyncio.Queue(1)

    def offer(self, board: dict[str, Any]) -> None:
        if self.boards.full():
            self.boards.get_nowait()
        self.boards.put_nowait(board)


class Wallboard:
    def __init__(
        self,
        *,
        identity: Identity,
        config: WallboardConfig,
        floor: Floor,
        events: EventBus,
        store: BoardStore,
        recent_calls: Callable[[int], Awaitable[list[CallRecord]]],
        clock: Clock,
    ) -> None:
        self._identity = identity
        self._config = config
        self._floor = floor
        self._events = events
        self._store = store
        self._recent_calls = recent_calls
        self._clock = clock
        windows = [rule.window_s for rule in config.alerts if rule.window_s is not None]
        # the recent window also serves inbound-first's service level (outbound, callbacks)
        self.tally = TodayTally(keep_s=float(max([*windows, SERVICE_LEVEL_WINDOW_S])))
        self.alerts = AlertBook(config.alerts)
        # the config is frozen: its rules are dumped once, not on every push
        self._thresholds = [rule.model_dump(exclude_none=True) for rule in config.alerts]
        self._subscribers: set[Subscriber] = set()
        self._wake = asyncio.Event()
        self._seeded = False
        self.latest: dict[str, Any] | None = None
        self.pushes = 0
        self.published = 0  # summaries written to the shared Redis (the province's view)
        self._published: tuple[datetime, list[Any]] | None = None  # the last one's time and alerts

    # subscribers

    def subscribe(self, province: bool) -> Subscriber:
        subscriber = Subscriber(province)
        self._subscribers.add(subscriber)
        if self.latest is not None:
            subscriber.offer(self.latest)  # the last board at once (province part on the next push)
        self._wake.set()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    # inputs

    def recent_service_level(self) -> float | None:
        """The platform's 15 s service level over the calls that entered a queue in the last
        15 min (None: none did): outbound and seats' callbacks start only while it holds."""
        return self.tally.window(ALL, self._clock(), SERVICE_LEVEL_WINDOW_S).rate("service_level_15s")

    async def call_ended(self, record: CallRecord) -> None:
        """The call tracker's ended listener: count the call today."""
        if self.tally.add(record, self._clock()):
            self._wake.set()

    async def _seed(self) -> None:
        try:
            records = await self._recent_calls(SEED_RECORDS)
        except (StoreUnavailable, RedisError) as exc:
            log.warning("wallboard.seed_failed", error=str(exc))  # tried again next push
            return
        now = self._clock()
        counted = sum(self.tally.add(record, now) for record in records)
        self._seeded = True
        log.info("wallboard.seeded", records=len(records), counted_today=counted)

    # the cycle

    async def run(self) -> None:
        """Push every ``push_interval_s``, and soon after each seat or queue event."""
        events = self._events.subscribe()
        watcher = asyncio.create_task(self._watch(events), name="wallboard-events")
        try:
            while True:
                try:
                    await self.push()
                except Exception:  # a bad cycle must not end the board (the next one may do)
                    log.exception("wallboard.push_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._config.push_interval_s)
                self._wake.clear()
                await asyncio.sleep(COALESCE_S)
        finally:
            self._events.unsubscribe(events)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _watch(self, events: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            event = await events.get()
            if str(event.get("type", "")).startswith(BOARD_EVENTS):
                self._wake.set()

    async def push(self) -> dict[str, Any]:
        """Compute the board once, evaluate the alerts, hand it to every subscriber."""
        if not self._seeded:
            await self._seed()
        now = self._clock()
        board = self.compute(now)
        self._evaluate(board, now)
        board["alerts"] = [alert.view() for alert in self.alerts.active]
        self.latest = board
        self.pushes += 1
        if self._publish_due(board, now):
            try:
                await self._store.publish(self._identity.platform, self._summary(board))
            except RedisError as exc:
                log.warning("wallboard.publish_failed", error=str(exc))
            else:
                self._published = (now, board["alerts"])
                self.published += 1
        province_board = None
        if any(s.province for s in self._subscribers):
            province_board = {**board, "platforms": await self._platforms(now)}
        for subscriber in list(self._subscribers):
            subscriber.offer(province_board if subscriber.province and province_board else board)
        return board

    def _publish_due(self, board: dict[str, Any], now: datetime) -> bool:
        """The province's copy is written at most once per ``push_interval_s`` (a push follows
        every seat or queue event: ~3 per call), and at once when the alerts change; the local
        viewers still get every push. It is never older than about two intervals, far inside
        STALE_AFTER_S."""
        if self._published is None:
            return True
        at, alerts = self._published
        return (now - at).total_seconds() >= self._config.push_interval_s or board["alerts"] != alerts

    def compute(self, now: datetime) -> dict[str, Any]:
        """The board: per queue and for the platform (``all``), and the seats."""
        stamp = now.timestamp()
        queues = []
        waiting_total, longest_total = 0, 0.0
        for name in self._floor.queue_names():
            live = [call for call in self._floor.waiting(name) if not call.is_callback]
            longest = max((stamp - call.entered_at for call in live), default=0.0)
            waiting_total += len(live)
            longest_total = max(longest_total, longest)
            today = self.tally.today(name, now).view()
            queues.append({"queue": name, "waiting": len(live), "longest_wait_s": round(longest, 1), **today})
        totals = {"queue": ALL, "waiting": waiting_total, "longest_wait_s": round(longest_total, 1)}
        totals |= self.tally.today(ALL, now).view()
        seats = [
            {
                "seat": seat.seat_id,
                "state": seat.state.value,
                "reason": seat.reason,
                "since": seat.since.isoformat() if seat.since else None,
                "in_state_s": round(max((now - seat.since).total_seconds(), 0.0), 1) if seat.since else None,
            }
            for seat in sorted(self._floor.seats(), key=lambda s: s.seat_id)
        ]
        counts = Counter(seat["state"] for seat in seats)
        return {
            "type": "board",
            "at": now.isoformat(),
            "since": day_start(now).isoformat(),
            "platform": self._identity.platform,
            "name": self._identity.name,
            "totals": totals,
            "queues": queues,
            "seats": seats,
            "seat_states": {state.value: counts.get(state.value, 0) for state in SeatState},
            "thresholds": [dict(rule) for rule in self._thresholds],  # copies: a board is its own
        }

    def _evaluate(self, board: dict[str, Any], now: datetime) -> None:
        figures: dict[tuple[str, str], float | None] = {}
        for entry in [board["totals"], *board["queues"]]:
            queue = entry["queue"]
            for rule in self.alerts.rules:
                if rule.figure in RATES and rule.window_s is not None:
                    figures[(rule.name, queue)] = self.tally.window(queue, now, rule.window_s).rate(rule.figure)
                else:
                    figures[(rule.name, queue)] = entry[rule.figure]  # today's, or the live figure
        change = self.alerts.evaluate(figures, now)
        for alert in change.raised:
            log.warning("wallboard.alert_raised", platform=self._identity.platform, **alert.view())
        for alert in change.cleared:
            log.info("wallboard.alert_cleared", platform=self._identity.platform, alert=alert.rule, queue=alert.queue)

    def _summary(self, board: dict[str, Any]) -> dict[str, Any]:
        """What the province's board shows of this platform (no seat list)."""
        keep = ("platform", "name", "at", "totals", "queues", "seat_states", "alerts")
        return {key: board[key] for key in keep}

    async def _platforms(self, now: datetime) -> list[dict[str, Any]] | dict[str, str]:
        try:
            return with_freshness(await self._store.summaries(), now)
        except RedisError as exc:
            log.warning("wallboard.platforms_unavailable", error=str(exc))
            return {"error": f"the province-wide view is unavailable: Redis: {exc}"}

    def metrics(self) -> list[Metric]:
        """``hotline_alert_active`` per rule and queue (0 while clear: a scraper sees it end)."""
        queues = [ALL, *self._floor.queue_names()]
        platform = self._identity.platform
        return [
            Metric(
                "hotline_alert_active",
                "gauge",
                "1 while a wallboard alert is active (wallboard.alerts)",
                float(active),
                (("alert", rule), ("platform", platform), ("queue", queue)),
            )
            for rule, queue, active in self.alerts.states(queues)
        ] + [Metric("hotline_wallboard_viewers", "gauge", "Open wallboard sockets", len(self._subscribers))]
