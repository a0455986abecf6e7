"""The controller's background work: the periodic jobs (Redis checks, flushes, spool and
fallback scans, purges, the platform snapshot, hand-off expiry, file watches) and the tasks
that run for its lifetime (the in-controller ASR worker, the ticket export)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog

from common.aio import raise_if_cancel_requested
from common.clock import Clock
from common.reloading import FileWatches
from hotline.calendar_watch import CONFIRM_INTERVAL_S
from hotline.config import Config
from hotline.platforms import PUBLISH_INTERVAL_S
from hotline.platforms import publish as publish_platform
from hotline.redis_watch import RedisWatch
from hotline.wiring.acd import AcdParts
from hotline.wiring.calls import CallParts
from hotline.wiring.case_desk import CaseDeskParts
from hotline.wiring.dialback import DialbackParts
from hotline.wiring.messages import MessageParts, webhook_exporter
from ivr.dialplan.registry import DialplanRegistry
from ivr.interpreter import RECORDINGS_DIR, VOICEMAIL_DIR
from recordings.retention import purge_expired
from telephony.dialplan_names import FALLBACK_SPOOL
from tickets.from_handoffs import file_expired_handoffs
from voicemail.intake import meta_from_fallback_name, meta_from_sidecar
from voicemail.worker import AsrWorker

log = structlog.get_logger(__name__)

FALLBACK_SCAN_INTERVAL_S = 5.0


async def every(interval_s: float, job: Callable[[], Awaitable[Any]]) -> None:
    """Run ``job`` every ``interval_s``; a failure is logged and the next round comes anyway."""
    while True:
        raise_if_cancel_requested()  # a job whose client library swallowed the cancellation
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("controller.periodic_job_failed", job=getattr(job, "__qualname__", "?"), error=str(exc))
        await asyncio.sleep(interval_s)


async def run_asr_worker(worker: AsrWorker) -> None:
    """The in-controller worker waits out Redis by itself; anything else that stops it is
    logged and it starts again (health says so meanwhile)."""
    delay = 1.0
    while True:
        raise_if_cancel_requested()
        try:
            await worker.run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("asr.worker_crashed", error=repr(exc), restart_in_s=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


class ControllerTasks:
    """Starts the controller's background tasks (``start``); the controller cancels them on stop."""

    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        calls: CallParts,
        messages: MessageParts,
        case_desk: CaseDeskParts,
        acd: AcdParts,
        dialplans: DialplanRegistry,
        redis: RedisWatch,
        snapshot: Callable[[], Awaitable[dict[str, Any]]],
        dialback: DialbackParts,
    ) -> None:
        self._config = config
        self._clock = clock
        self._calls = calls
        self._messages = messages
        self._case_desk = case_desk
        self._acd = acd
        self._dialplans = dialplans
        self._redis = redis
        self._snapshot = snapshot
        self._dialback = dialback

    def start(self) -> list[asyncio.Task[None]]:
        cfg, calls, messages, desk = self._config, self._calls, self._messages, self._case_desk
        tasks = [
            asyncio.create_task(calls.tracker.run_flusher(), name="calls-flusher"),
            asyncio.create_task(desk.seat_events.run(), name="seat-events"),
            asyncio.create_task(self._dialback.service.run(), name="dialback"),  # blended callback offers
            asyncio.create_task(every(1.0, self.flush_callbacks), name="callbacks-flusher"),
            asyncio.create_task(every(cfg.spool.check_interval_s, messages.spool.check), name="spool-check"),
            asyncio.create_task(every(FALLBACK_SCAN_INTERVAL_S, calls.fallback.scan), name="fallback-scan"),
            asyncio.create_task(every(2.0, self._redis.check), name="redis-check"),
            asyncio.create_task(self.file_watches().run(), name="file-watches"),
            asyncio.create_task(every(cfg.recordings.purge_interval_s, self.purge_recordings), name="purge"),
            asyncio.create_task(every(cfg.asr.rescan_interval_s, self.rescan_messages), name="spool-rescan"),
            asyncio.create_task(every(PUBLISH_INTERVAL_S, self.publish_snapshot), name="platform-snapshot"),
            asyncio.create_task(
                every(min(30.0, cfg.tickets.handoff_expiry_s), self.expire_handoffs), name="handoff-expiry"
            ),
            # provisional deadlines counted again once the calendar knows their year (at start: a newer package)
            asyncio.create_task(every(CONFIRM_INTERVAL_S, messages.calendar.confirm_provisional), name="calendar"),
        ]
        if messages.asr_worker is not None:
            tasks.append(asyncio.create_task(run_asr_worker(messages.asr_worker), name="asr-worker"))
        exporter = webhook_exporter(cfg, calls)
        if exporter is not None:
            tasks.append(asyncio.create_task(exporter.run(), name="ticket-export"))
        return tasks

    def file_watches(self) -> FileWatches:
        """The dialplans, the units directory and the knowledge base watched by one task, with one
        thread hop per tick for all three (common/reloading.py)."""
        watches = FileWatches()
        self._dialplans.add_watch(watches)
        self._case_desk.desk.add_watch(watches, self._config.units.watch_interval_s)
        self._case_desk.knowledge.add_watch(watches, self._config.knowledge.watch_interval_s)
        return watches

    def start_auto_login(self) -> list[asyncio.Task[None]]:
        """Log in the configured seats once AMI is up (desk phones with fixed contacts)."""
        if not self._config.acd.auto_login:
            return []
        return [asyncio.create_task(self.auto_login(), name="auto-login")]

    async def auto_login(self) -> None:
        await self._calls.ami.wait_connected(timeout_s=3600)
        seats = self._acd.seats
        for seat_id in self._config.acd.auto_login:
            if not seats.get(seat_id).logged_in:
                await seats.login(seat_id)

    async def flush_callbacks(self) -> None:
        if self._calls.callback_list.unsaved:
            await self._calls.callback_list.flush()

    async def expire_handoffs(self) -> None:
        expiry = timedelta(seconds=self._config.tickets.handoff_expiry_s)
        await file_expired_handoffs(
            self._calls.handoffs, self._messages.tickets, self._config.platform.id, self._clock(), expiry
        )

    async def rescan_messages(self) -> None:
        """Messages in the spool with neither ticket nor job (Redis lost them, or was away when
        they were recorded, or the controller was down) are queued again."""
        spool, platform, min_age = (
            self._config.paths.spool_dir,
            self._config.platform.id,
            self._config.asr.rescan_min_age_s,
        )
        queue = self._messages.asr_queue
        await queue.ensure_group()
        await queue.rescan_spool(spool, VOICEMAIL_DIR, meta_from_sidecar(platform), min_age)
        await queue.rescan_spool(spool, FALLBACK_SPOOL, meta_from_fallback_name(platform), min_age)

    async def purge_recordings(self) -> None:
        retention = timedelta(days=self._config.recordings.retention_days)
        folder = self._config.paths.spool_dir / RECORDINGS_DIR
        await asyncio.to_thread(purge_expired, folder, retention, self._clock())

    async def publish_snapshot(self) -> None:
        """This platform's live figures for the province-wide view."""
        await publish_platform(self._calls.redis, self._config.platform.id, await self._snapshot())
