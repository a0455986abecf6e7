"""What supervisors and scrapers read about this platform: queue and seat figures over 24 h,
the metrics built from them, each seat's current call (with the case a hand-off brought), and
the snapshot published for the province-wide view.

The 24 h figures are kept as calls change (acd/window.py, fed by the call tracker's record
watcher), seeded once from the stored records of the last 24 h: a request or a scrape costs
the number of queues and seats, never the number of calls (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from redis.exceptions import RedisError

from acd.engine import AcdEngine
from acd.seat import Seat, SeatState
from acd.seats import SeatService
from acd.stats import QueueStats, SeatStats, satisfaction_rate
from acd.window import RollingFigures
from calls.handoff import RedisHandoffs, handoff_view
from calls.model import CallRecord
from calls.store import StoreUnavailable
from calls.tracker import CallTracker
from common.clock import Clock
from common.metrics import Metric
from common.privacy import mask_number
from hotline.config import Config
from ivr.after_seat import SurveyTally

log = structlog.get_logger(__name__)

STATS_WINDOW = timedelta(hours=24)  # GB/T 33358 measures the answer rate over any 24 h
SEED_MARGIN = timedelta(hours=6)  # the seed reads calls started this much earlier: queued within 24 h


def _satisfaction(name: str, rate: float | None, labels: tuple[tuple[str, str], ...]) -> list[Metric]:
    """满意率 as a gauge; no sample while nobody answered a survey (not 0, not 1)."""
    if rate is None:
        return []
    return [Metric(name, "gauge", "(满意 + 基本满意) / answered surveys, last 24 h", rate, labels)]


def rate_metrics(q: QueueStats) -> list[Metric]:
    """A queue's 24 h shares; no sample while nothing was offered (no score is not a perfect one)."""
    label = (("queue", q.queue),)
    rates = (
        ("hotline_queue_answer_rate_24h", "Answered / offered, last 24 h", q.answer_rate),
        ("hotline_queue_abandon_rate_24h", "Abandoned / offered, last 24 h", q.abandon_rate),
        ("hotline_queue_service_level_15s_24h", "Answered within 15 s / offered", q.service_level),
    )
    return [Metric(name, "gauge", text, rate, label) for name, text, rate in rates if rate is not None]


class Figures:
    """Reads the ACD, the seats and the rolling 24 h figures; changes nothing."""

    def __init__(
        self,
        *,
        config: Config,
        seats: SeatService,
        acd: AcdEngine,
        tracker: CallTracker,
        handoffs: RedisHandoffs,
        stored_calls: Callable[[datetime], Awaitable[list[CallRecord]]],
        clock: Clock,
        surveys: SurveyTally | None = None,
    ) -> None:
        """``stored_calls(since)``: the stored records of the calls started since then (read
        once, to seed the 24 h figures with the calls that ended before this controller)."""
        self._config = config
        self._seats = seats
        self._acd = acd
        self._tracker = tracker
        self._handoffs = handoffs
        self._stored_calls = stored_calls
        self._clock = clock
        self._surveys = surveys or SurveyTally()
        self.window = RollingFigures(STATS_WINDOW)
        self._seeding = asyncio.Lock()
        tracker.watch(self._record_changed)

    def _record_changed(self, record: CallRecord) -> None:
        self.window.put(record, self._clock)  # read only for a version that changes the figures

    async def seed(self) -> None:
        """Count the stored calls of the last 24 h, once (at start; while Redis is away, at the
        next request: StoreUnavailable until then, as the figures would be short)."""
        if self.window.seeded:
            return
        async with self._seeding:
            if self.window.seeded:
                return
            now = self._clock()
            records = await self._stored_calls(now - STATS_WINDOW - SEED_MARGIN)
            counted = self.window.seed(records, now)
            log.info("figures.seeded", records=len(records), counted=counted, entries=len(self.window))

    def queue_names(self) -> list[str]:
        return sorted({"general", *(q for seat in self._config.seats for q in seat.queues)})

    async def queue_stats(self) -> list[QueueStats]:
        """Each queue over the last 24 h; who waits now comes from the ACD itself."""
        await self.seed()
        now = self._clock()
        figures = []
        for name in self.queue_names():
            waiting = self._acd.waiting(name)
            live = [call for call in waiting if not call.is_callback]
            figures.append(
                replace(
                    self.window.queue(name, now),
                    waiting_now=len(live),
                    longest_wait_now_s=max((now.timestamp() - call.entered_at for call in live), default=0.0),
                    callbacks_waiting=len(waiting) - len(live),
                )
            )
        return figures

    async def seat_figures(self) -> list[tuple[Seat, SeatStats]]:
        """Each seat's state and its last 24 h."""
        await self.seed()
        now = self._clock()
        return [(seat, self.window.seat(seat.seat_id, now)) for seat in self._seats.all()]

    async def metrics(self) -> list[Metric]:
        """Seat and queue metrics (no 24 h figures while they cannot be seeded)."""
        counts = Counter(seat.state.value for seat in self._seats.all())
        metrics = [
            Metric("hotline_seats", "gauge", "Seats by state", counts.get(state.value, 0), (("state", state.value),))
            for state in SeatState
        ]
        metrics += [
            Metric("hotline_acd_offers_total", "counter", "Seats rung for a caller", self._acd.offers_total),
            Metric("hotline_acd_offers_missed_total", "counter", "Offers not answered", self._acd.offers_missed),
            Metric(
                "hotline_acd_offers_not_started_total",
                "counter",
                "Offers Asterisk did not take or that failed for no fault of the seat (not counted as missed)",
                self._acd.offers_not_started,
            ),
            Metric(
                "hotline_acd_offers_unconfirmed_total",
                "counter",
                "Originates without a reply (AMI timeout or connection lost)",
                self._acd.offers_unconfirmed,
            ),
        ]
        platform = self._config.platform.id
        metrics += [
            Metric(
                "hotline_survey_answers_total",
                "counter",
                "Satisfaction survey answers (1 满意, 2 基本满意, 3 不满意)",
                count,
                (("platform", platform), ("queue", queue), ("score", str(score))),
            )
            for (queue, score), count in sorted(self._surveys.answers.items())
        ]
        try:
            seats = await self.seat_figures()
        except StoreUnavailable:
            return metrics
        for seat, stats in seats:
            label = (("seat", seat.seat_id),)
            metrics += [
                Metric("hotline_seat_answered_24h", "gauge", "Calls the seat took, last 24 h", stats.answered, label),
                Metric(
                    "hotline_seat_talk_seconds_avg_24h", "gauge", "Average talk, last 24 h", stats.average_talk_s, label
                ),
                *_satisfaction("hotline_seat_satisfaction_rate_24h", stats.satisfaction_rate, label),
            ]
        queues = await self.queue_stats()
        surveyed, satisfied = sum(q.surveyed for q in queues), sum(q.satisfied for q in queues)
        metrics += _satisfaction(
            "hotline_satisfaction_rate_24h", satisfaction_rate(surveyed, satisfied), (("platform", platform),)
        )
        for q in queues:
            label = (("queue", q.queue),)
            metrics += [
                *_satisfaction("hotline_queue_satisfaction_rate_24h", q.satisfaction_rate, label),
                Metric("hotline_queue_waiting", "gauge", "Callers waiting now", q.waiting_now, label),
                Metric(
                    "hotline_queue_callbacks_waiting", "gauge", "Callbacks keeping a place", q.callbacks_waiting, label
                ),
                Metric("hotline_queue_longest_wait_seconds", "gauge", "Longest wait now", q.longest_wait_now_s, label),
                Metric(
                    "hotline_queue_offered_24h", "gauge", "Calls that entered the queue, last 24 h", q.offered, label
                ),
                Metric(
                    "hotline_queue_asa_seconds_24h",
                    "gauge",
                    "Average speed of answer",
                    q.average_speed_of_answer_s,
                    label,
                ),
            ]
            metrics += rate_metrics(q)
        return metrics

    async def current_calls(self) -> dict[str, dict[str, Any]]:
        """Seat → the call its phone rings or talks for, with the case a hand-off brought (so the
        seat reads it while the phone still rings)."""
        current: dict[str, dict[str, Any]] = {}
        for offer in self._acd.offers():
            call_id = offer.bound or offer.intended
            record = self._tracker.get_live(call_id) if call_id else None
            if record is None:
                continue
            view: dict[str, Any] = {
                "call_id": record.call_id,
                "caller": mask_number(record.caller),
                "phase": "talking" if offer.bound else "ringing",
                "tags": record.tags,
                "handoff": None,
            }
            token = record.tags.get("handoff")
            if token:
                with contextlib.suppress(RedisError):
                    handoff = await self._handoffs.get(token)
                    view["handoff"] = handoff_view(handoff) if handoff else None
            current[offer.seat_id] = view
        return current

    async def snapshot(self, status: str) -> dict[str, Any]:
        """This platform for the province-wide view (GET /api/v1/platforms)."""
        queues: list[dict[str, Any]] = [
            {"queue": name, "waiting_now": sum(1 for c in self._acd.waiting(name) if not c.is_callback)}
            for name in self.queue_names()
        ]
        with contextlib.suppress(StoreUnavailable):
            for figures, entry in zip(await self.queue_stats(), queues, strict=True):
                entry.update(  # null while nothing was offered (no score, not 100 %)
                    answer_rate_24h=None if figures.answer_rate is None else round(figures.answer_rate, 4),
                    service_level_15s_24h=None if figures.service_level is None else round(figures.service_level, 4),
                    offered_24h=figures.offered,
                )
        cfg = self._config.platform
        return {
            "platform": cfg.id, "name": cfg.name, "area_code": cfg.area_code, "province": cfg.province,
            "at": self._clock().isoformat(), "status": status, "live_calls": self._tracker.live_calls,
            "seats": dict(Counter(seat.state.value for seat in self._seats.all())), "queues": queues,
        }  # fmt: skip
