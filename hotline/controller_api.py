"""What the HTTP layer reads of the running controller (``hotline.api.ApiBackend``): health,
/metrics, the dialplan's status, figures of queues, seats and calls, call records and their
recordings, the callback list and the audit trail."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from redis.exceptions import RedisError

from acd.events import EventBus
from acd.seat import Seat
from acd.seats import SeatService
from acd.stats import QueueStats, SeatStats
from calls.callbacks import Callback
from calls.model import CallRecord
from calls.store import StoreUnavailable
from common.clock import Clock
from common.metrics import Metric
from common.redis_sentinel import replication_metrics
from common.reloading import ReloadResult
from hotline import __version__
from hotline.config import Config
from hotline.figures import Figures
from hotline.network_desk import NetworkDesk
from hotline.redis_watch import RedisWatch
from hotline.wiring.acd import AcdParts
from hotline.wiring.agi import AgiParts
from hotline.wiring.calls import CallParts
from hotline.wiring.ivr import IvrParts
from hotline.wiring.messages import MessageParts
from hotline.wiring.network import NetworkParts
from ivr.dialplan.registry import DialplanRegistry
from knowledge.service import KnowledgeService
from recordings.access import AuditEntry, AuditFilter, UnsafePath, spool_file
from tickets.store import RedisTicketStore
from voicemail.queue import AsrQueue
from voicemail.worker import WorkerState

log = structlog.get_logger(__name__)

SINCE_PAGE = 2000  # call records per read when the 24 h figures are seeded
_OK = (("result", "ok"),)
_REJECTED = (("result", "rejected"),)


class ControllerApi:
    """The controller's side of ``ApiBackend``: each part's routes read their own part here."""

    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        calls: CallParts,
        messages: MessageParts,
        acd: AcdParts,
        network: NetworkParts,
        ivr: IvrParts,
        agi: AgiParts,
        dialplans: DialplanRegistry,
        knowledge: KnowledgeService,
        redis: RedisWatch,
    ) -> None:
        self._config = config
        self._calls = calls
        self._messages = messages
        self._acd = acd
        self._network = network
        self._consultations = network.consultations
        self._agi = agi
        self._dialplans = dialplans
        self._knowledge = knowledge
        self._redis = redis
        # the metrics of features wired after the API (wallboard, dialback, outbound), sync or async
        self.more_metrics: list[Callable[[], list[Metric] | Awaitable[list[Metric]]]] = []
        self.figures = Figures(
            config=config,
            seats=acd.seats,
            acd=acd.engine,
            tracker=calls.tracker,
            handoffs=calls.handoffs,
            stored_calls=self.calls_since,
            clock=clock,
            surveys=ivr.survey_tally,
        )

    @property
    def spool_dir(self) -> Path:
        return self._config.paths.spool_dir

    @property
    def platform_id(self) -> str:
        return self._config.platform.id

    @property
    def seats(self) -> SeatService:
        return self._acd.seats

    @property
    def events(self) -> EventBus:
        return self._calls.events

    @property
    def tickets(self) -> RedisTicketStore:
        return self._messages.tickets

    @property
    def asr_queue(self) -> AsrQueue:
        return self._messages.asr_queue

    @property
    def network(self) -> NetworkDesk:
        return self._network.desk

    async def health(self) -> dict[str, Any]:
        slow = self._redis.slow or self._calls.budget.slow
        components = {
            "ami": "up" if self._calls.ami.connected else "down",
            "redis": "slow" if slow else "up" if self._redis.up else "down",
            "agi": "up" if self._agi.server.serving else "down",
            "spool": "up" if self._messages.spool.state.ok else "degraded",
        }
        calendar, reasons = self._messages.calendar.health()
        reasons[:0] = [f"{name} down" for name, state in components.items() if state == "down"]
        if slow:
            reasons.append("redis slow/hung")
        if self._messages.spool.state.reason:
            reasons.append(self._messages.spool.state.reason)
        if self._messages.asr_worker is not None:
            state = self._messages.asr_worker.state
            # a worker still starting is not a fault; one waiting for Redis or stopped is
            components["asr_worker"] = "up" if state in (WorkerState.RUNNING, WorkerState.STARTING) else str(state)
            if components["asr_worker"] != "up":
                reasons.append(f"asr worker {state}: messages wait for it")
        if self._calls.callback_list.unsaved:
            reasons.append(f"{self._calls.callback_list.unsaved} callback list change(s) waiting for Redis")
        return {
            "status": "ok" if all(v == "up" for v in components.values()) and not reasons else "degraded",
            "reasons": reasons,
            "calendar": calendar,
            "platform": self._config.platform.id,
            "version": __version__,
            "components": components,
            "asterisk": self._calls.ami.version,
            "live_calls": self._calls.tracker.live_calls,
            "unsaved_records": self._calls.tracker.unsaved,
            "dialplan": self._dialplans.current.version,
        }

    async def dialplan_status(self) -> dict[str, Any]:
        plan = self._dialplans.current
        return {
            "platform": plan.spec.platform,
            "source": str(self._dialplans.path),
            "version": plan.version,
            "loaded_at": self._dialplans.loaded_at.isoformat() if self._dialplans.loaded_at else None,
            "nodes": len(plan.spec.nodes),
            "warnings": [str(w) for w in plan.warnings],
            "last_error": self._dialplans.last_error,
            "reloads_ok": self._dialplans.reloads_ok,
            "reloads_failed": self._dialplans.reloads_failed,
        }

    async def reload_dialplan(self, reason: str) -> ReloadResult:
        return await self._dialplans.reload(reason)

    async def metrics(self) -> list[Metric]:
        stats = self._agi.server.stats
        return [
            Metric("hotline_ami_connected", "gauge", "1 while logged in to AMI", float(self._calls.ami.connected)),
            Metric("hotline_ami_logins_total", "counter", "Successful AMI logins", self._calls.ami.connections),
            Metric("hotline_redis_up", "gauge", "1 while Redis answers", float(self._redis.up)),
            Metric(
                "hotline_redis_slow", "gauge", "1 while Redis does not answer in time (hung)", float(self._redis.slow)
            ),
            *replication_metrics(self._calls.redis),  # WAIT shortfalls behind Sentinel (common/redis_sentinel.py)
            *self._calls.budget.metrics(),
            *self._agi.wait.metrics(),
            *self._agi.step.metrics(),
            Metric(
                "hotline_ami_event_backlog",
                "gauge",
                "AMI events waiting for the handlers",
                self._calls.ami.events_backlog,
            ),
            Metric(
                "hotline_ami_event_backlog_peak",
                "gauge",
                "Most AMI events ever waiting",
                self._calls.ami.events_backlog_peak,
            ),
            Metric(
                "hotline_ami_events_dropped_total",
                "counter",
                "AMI events dropped (backlog full)",
                self._calls.ami.events_dropped,
            ),
            Metric(
                "hotline_ami_overflow_resyncs_total",
                "counter",
                "Resyncs after dropped events",
                self._calls.ami.overflow_resyncs,
            ),
            Metric(
                "hotline_consultations_cleaned_up_total",
                "counter",
                "Consultations ended here after a failed step or found over in Asterisk",
                self._consultations.cleaned_up,
            ),
            Metric("hotline_agi_sessions_total", "counter", "FastAGI sessions served", stats.sessions_total),
            Metric("hotline_agi_sessions_active", "gauge", "FastAGI sessions now", stats.sessions_active),
            Metric(
                "hotline_agi_sessions_failed_total",
                "counter",
                "FastAGI sessions whose handler failed",
                stats.sessions_failed,
            ),
            Metric(
                "hotline_agi_bad_requests_total",
                "counter",
                "FastAGI connections that were not valid sessions",
                stats.bad_requests,
            ),
            Metric(
                "hotline_agi_unauthenticated_total",
                "counter",
                "FastAGI sessions closed unserved: their URL lacked this installation's key",
                stats.unauthenticated,
            ),
            Metric("hotline_calls_live", "gauge", "Calls in progress", self._calls.tracker.live_calls),
            Metric(
                "hotline_call_records_unsaved", "gauge", "Call records waiting for Redis", self._calls.tracker.unsaved
            ),
            Metric(
                "hotline_callbacks_unsaved",
                "gauge",
                "Callback list changes waiting for Redis",
                self._calls.callback_list.unsaved,
            ),
            Metric(
                "hotline_voicemail_failed_total",
                "counter",
                "Messages that could not be kept (the caller was told and put on the callback list)",
                self._messages.spool.messages_failed,
            ),
            Metric(
                "hotline_spool_ok",
                "gauge",
                "1 while the voicemail spool can take messages",
                float(self._messages.spool.state.ok),
            ),
            *self._spool_free(),
            *self._asr_worker_up(),
            Metric(
                "hotline_call_record_save_failures_total",
                "counter",
                "Failed call record writes",
                self._calls.tracker.store_failures,
            ),
            Metric("hotline_dialplan_reloads_total", "counter", "Dialplan reloads", self._dialplans.reloads_ok, _OK),
            Metric(
                "hotline_dialplan_reloads_total",
                "counter",
                "Dialplan reloads",
                self._dialplans.reloads_failed,
                _REJECTED,
            ),
            Metric(
                "hotline_dialplan_versions_missing_total",
                "counter",
                "Calls that came back to the IVR after their dialplan version was dropped (they ran the current one)",
                self._dialplans.versions_missing,
            ),
            Metric(
                "hotline_dialplan_versions_kept",
                "gauge",
                "Dialplan versions held for live calls",
                len(self._dialplans.kept),
            ),
            *await self.figures.metrics(),
            *await self._messages.calendar.metrics(),
            *self._knowledge.metrics(),
            *[metric for more in self.more_metrics for metric in await _metrics_of(more)],
        ]

    def _spool_free(self) -> list[Metric]:
        free = self._messages.spool.state.free_mb
        return [] if free is None else [Metric("hotline_spool_free_mb", "gauge", "Free space of the spool", free)]

    def _asr_worker_up(self) -> list[Metric]:
        if self._messages.asr_worker is None:
            return []
        up = float(self._messages.asr_worker.state is WorkerState.RUNNING)
        return [Metric("hotline_asr_worker_up", "gauge", "1 while the in-controller ASR worker runs", up)]

    async def queue_stats(self) -> list[QueueStats]:
        return await self.figures.queue_stats()

    async def seat_figures(self) -> list[tuple[Seat, SeatStats]]:
        return await self.figures.seat_figures()

    async def current_calls(self) -> dict[str, dict[str, Any]]:
        return await self.figures.current_calls()

    async def snapshot(self) -> dict[str, Any]:
        """This platform's live figures for the province-wide view."""
        return await self.figures.snapshot((await self.health())["status"])

    async def recent_calls(self, limit: int) -> list[CallRecord]:
        return await self._redis.bounded_read("call records", lambda: self._calls.store.recent(limit))

    async def calls_since(self, since: datetime) -> list[CallRecord]:
        """The stored calls started since ``since``, read in pages (each bounded as any API read)."""
        since_ms, offset = int(since.timestamp() * 1000), 0
        records: list[CallRecord] = []
        while True:
            read = functools.partial(self._calls.store.started_since, since_ms, offset, SINCE_PAGE)
            ids, page = await self._redis.bounded_read("call records", read)
            records += page
            offset += ids
            if ids < SINCE_PAGE:
                return records

    async def get_call(self, call_id: str) -> CallRecord | None:
        return await self._redis.bounded_read("call records", lambda: self._calls.store.get(call_id))

    async def recording_file(self, call_id: str, kind: str) -> Path | None:
        record = await self.get_call(call_id)
        if record is None:
            return None
        relative = record.call_recording if kind == "conversation" else record.recording
        if not relative:
            return None
        try:
            path = spool_file(self._config.paths.spool_dir, relative)
        except UnsafePath:
            log.error("recordings.unsafe_path_on_record", call_id=call_id)
            return None
        return path if path.is_file() else None

    async def callbacks(self, limit: int) -> list[Callback]:
        try:
            return await self._calls.callback_list.pending(limit)
        except RedisError as exc:
            raise StoreUnavailable(f"the callback list is unavailable: Redis: {exc}") from None

    async def audit(self, entry: AuditEntry) -> None:
        try:
            await self._calls.audit_log.record(entry)
        except RedisError as exc:
            # the log line from the API stands; an audit gap must be visible
            log.error("audit.write_failed", action=entry.action, who=entry.who, error=str(exc))

    async def audit_trail(self, limit: int, keep: AuditFilter | None = None) -> list[AuditEntry]:
        try:
            return await self._calls.audit_log.recent(limit, keep)
        except RedisError as exc:
            raise StoreUnavailable(f"the audit trail is unavailable: Redis: {exc}") from None


async def _metrics_of(source: Callable[[], list[Metric] | Awaitable[list[Metric]]]) -> list[Metric]:
    result = source()
    return await result if inspect.isawaitable(result) else result
