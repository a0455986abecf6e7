"""Wiring: the controller process — AMI, FastAGI, call records, HTTP — and its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from acd.agi import CallbackDone, QueueAnnouncement, SeatAnswered, SeatFeature, count_prompt_texts
from acd.engine import AcdEngine
from acd.events import EventBus
from acd.seat import Seat
from acd.seats import SeatService
from acd.stats import QueueStats, SeatStats
from calls.ami_bridge import CallEventBridge
from calls.callbacks import Callback, RedisCallbackList
from calls.caller_index import CallerKeys
from calls.fallback import FallbackIngester
from calls.handoff import RedisHandoffs
from calls.model import CallRecord
from calls.redis_budget import WAIT_BUCKETS_S, RedisBudget
from calls.store import RedisCallStore, StoreUnavailable
from calls.tracker import CallTracker
from cases.routes import CaseDesk
from cases.seat_events import SeatEventHub
from cases.service import CaseService
from cases.store import CaseStore
from common.aio import cancel_and_wait
from common.clock import Clock, system_clock
from common.metrics import Histogram, Metric
from common.privacy import masked_url
from common.private_files import local_secret
from hotline import __version__
from hotline.api import build_api
from hotline.calendar_watch import CONFIRM_INTERVAL_S, CalendarWatch
from hotline.case_lookups import DirectoryReferences, DirectoryUnits, KnowledgeEntries
from hotline.config import Config
from hotline.figures import Figures
from hotline.local_secrets import local_secrets, redis_client
from hotline.network_desk import NetworkDesk
from hotline.outbound_wiring import OutboundWiring
from hotline.platforms import PUBLISH_INTERVAL_S, PlatformDirectory
from hotline.platforms import publish as publish_platform
from ivr.after_seat import IvrAfterSeat, SurveyTally
from ivr.consult import Consultations
from ivr.dialplan.loader import Dialplan
from ivr.dialplan.registry import DialplanRegistry, ReloadResult
from ivr.entry import IvrEntry, IvrOverflow, IvrTransferFailed
from ivr.interpreter import RECORDINGS_DIR, VOICEMAIL_DIR, IvrContext
from ivr.prompts import build_prompts
from ivr.transfer import SeatTransfers
from knowledge.service import KnowledgeService
from knowledge.uses import RedisUseStore
from recordings.access import AuditEntry, AuditFilter, RedisAuditLog, UnsafePath, spool_file
from recordings.retention import purge_expired
from telephony.agi_server import AgiHandler, AgiServer
from telephony.ami import AmiClient, AmiSettings
from telephony.dialplan_names import (
    AGI_AFTER_SEAT_SCRIPT,
    AGI_ANNOUNCE_SCRIPT,
    AGI_CALLBACK_DONE_SCRIPT,
    AGI_FEATURE_SCRIPT,
    AGI_IVR_SCRIPT,
    AGI_OUTBOUND_SCRIPT,
    AGI_OVERFLOW_SCRIPT,
    AGI_SEAT_SCRIPT,
    AGI_TRANSFER_FAILED_SCRIPT,
    FALLBACK_SPOOL,
    PROVINCE_PLATFORM,
    ivr_prompts_dir,
    prompt_path,
)
from tickets.export import WebhookExporter
from tickets.from_handoffs import file_expired_handoffs
from tickets.store import RedisTicketStore, export_stream
from units.registry import DeskRegistry
from voicemail.asr import NoTranscription
from voicemail.intake import MessageIntake, meta_from_fallback_name, meta_from_sidecar
from voicemail.queue import AsrQueue
from voicemail.sink import TicketStoreSink
from voicemail.spool import SpoolMonitor
from voicemail.worker import AsrWorker, WorkerSettings, WorkerState
from web.auth import TokenRegistry

log = structlog.get_logger(__name__)

T = TypeVar("T")
FALLBACK_SCAN_INTERVAL_S = 5.0
CALLER_INDEX_KEY_FILE = "caller-index-key"
READ_TIMEOUT_S = 2.0  # an API or /metrics read of Redis; the call path has its own budget (redis.op_timeout_ms)
_OK = (("result", "ok"),)
_REJECTED = (("result", "rejected"),)


def system_prompt_texts(config: Config) -> dict[str, str]:
    """The prompts outside the dialplan: fallback route, queue announcements, feature codes."""
    p = config.prompts
    texts = {
        "fallback_hold": p.fallback_hold,
        "fallback": p.fallback,
        "goodbye": p.goodbye,
        "queue_next": p.queue_next,
        "feature_ok": p.feature_ok,
        "feature_failed": p.feature_failed,
        "voicemail_failed": p.voicemail_failed,
    }
    return {
        **texts,
        **count_prompt_texts("queue_ahead", p.queue_ahead),
        **count_prompt_texts("queue_wait", p.queue_wait),
    }


def worker_settings(config: Config) -> WorkerSettings:
    return WorkerSettings(visibility_timeout_s=config.asr.visibility_timeout_s, max_attempts=config.asr.max_attempts)


def ami_settings(config: Config, secret: str) -> AmiSettings:
    a = config.asterisk
    return AmiSettings(
        host=a.ami_host,
        port=a.ami_port,
        username=a.ami_username,
        secret=secret,
        action_timeout_s=a.ami_action_timeout_s,
        ping_interval_s=a.ami_ping_interval_s,
        ping_timeout_s=a.ami_ping_timeout_s,
        reconnect_initial_s=a.ami_reconnect_initial_s,
        reconnect_max_s=a.ami_reconnect_max_s,
        event_backlog_max=a.ami_event_backlog_max,
    )


class Controller:
    """One platform's controller. ``start()``, then ``stop()`` (graceful drain)."""

    def __init__(self, config: Config, tokens: TokenRegistry, clock: Clock = system_clock) -> None:  # noqa: PLR0915 (wiring; being split)
        self.config = config
        secrets = local_secrets(config)  # the same files the rendered Asterisk config was made from
        self._redis = redis_client(config, socket_timeout=3, socket_connect_timeout=3)
        platform = config.platform.id
        # the call path's patience with Redis: bounded reads, writes done behind (calls/redis_budget.py)
        self.budget = budget = RedisBudget(config.redis.op_timeout_ms / 1000)
        # the caller index's key names are HMACs of numbers with this local secret (calls/caller_index.py)
        caller_keys = CallerKeys(local_secret(config.paths.runtime_dir / CALLER_INDEX_KEY_FILE))
        self.store = RedisCallStore(
            self._redis, timedelta(days=config.redis.call_record_ttl_days), platform, caller_keys
        )
        self.tracker = CallTracker(self.store, config.platform.id, clock, budget)
        self.callback_list = RedisCallbackList(self._redis, platform)
        self.tracker.on_ended(self.callback_list.on_call_ended)
        self.audit_log = RedisAuditLog(self._redis)
        self._clock = clock
        self.events = EventBus(self._redis, budget)
        self.ami = AmiClient(ami_settings(config, secrets.ami_secret))
        self.seats = SeatService(
            config.seats,
            self._redis,
            events=self.events,
            clock=clock,
            platform=platform,
            max_missed=config.acd.max_missed_offers,
            budget=budget,
            # the codes of the units directory (units/), read when a seat gives one (self.desk is set below)
            dispositions=lambda platform, code: self.desk.codes.disposition(platform, code) is not None,
            pause_reasons=lambda platform, code: self.desk.codes.pause_reason(platform, code) is not None,
            disposition_guard=self._disposition_refusal,
        )
        self._bridge = CallEventBridge(self.ami, self.tracker)
        self.acd = AcdEngine(
            config=config.acd,
            seats=self.seats,
            ami=self.ami,
            client=self._redis,
            tracker=self.tracker,
            events=self.events,
            clock=clock,
            recordings_dir=config.paths.spool_dir / RECORDINGS_DIR if config.recordings.enabled else None,
            platform=platform,
            missed_calls=self.callback_list,
            budget=budget,
        )
        self._fallback = FallbackIngester(config.paths.spool_dir, self.tracker, config.platform.id)
        self.handoffs = RedisHandoffs(self._redis, budget)
        directory = PlatformDirectory(self._redis, budget)
        platform_trunks = {name: t.platform for name, t in config.sip.trunks.items() if t.platform}
        self.tickets = RedisTicketStore(
            self._redis, lambda _platform: self.dialplans.current.calendar, export_stream(platform)
        )
        ticket_sink = TicketStoreSink(self.tickets, clock)
        self.desk = DeskRegistry(config.units.dir)  # units directory and desk codes (units/)
        # the province's seats see every platform's entries; a prefecture's, its own and the province's
        self.knowledge = KnowledgeService(
            config.knowledge.dir,
            platform,
            RedisUseStore(self._redis, config.redis.op_timeout_ms / 1000),
            load_platforms=None if config.platform.province else {platform, PROVINCE_PLATFORM},
            clock=clock,
            timezone=config.platform.timezone,
            references=DirectoryReferences(self.desk),  # entries name units and matter types it knows
        )
        # the case desk (cases/), checking units and entries against the two features above
        self.cases = CaseService(
            store=CaseStore(self._redis, self.tickets, lambda _platform: self.dialplans.current.calendar, caller_keys),
            live=self.tracker,
            stored=self.store,
            units=DirectoryUnits(self.desk),
            knowledge=KnowledgeEntries(self.knowledge),
            events=self.events,
            clock=clock,
        )
        self.seat_events = SeatEventHub(self.events, self.cases)
        case_desk = CaseDesk(self.cases, self.seat_events, tokens, frozenset(seat.id for seat in config.seats))
        self.asr_queue = AsrQueue(self._redis, ticket_sink, platform)
        # no model configured: this process files the tickets itself, without transcripts, so no
        # message waits for a worker that does not exist (with a model, `asr-worker`s do it)
        self._asr_worker = (
            AsrWorker(
                self.asr_queue,
                NoTranscription(),
                ticket_sink,
                config.paths.spool_dir,
                consumer=f"controller-{config.platform.id}",
                settings=worker_settings(config),
                clock=clock,
            )
            if config.asr.model_path is None
            else None
        )
        self.spool = SpoolMonitor(config.paths.spool_dir / VOICEMAIL_DIR, config.spool.min_free_mb)
        self._ivr_prompts = ivr_prompts_dir(config.paths.runtime_dir)
        self.dialplans = DialplanRegistry(
            config.dialplan_path(), config.paths.prompts_dir, config.platform.id, self._build_ivr_prompts
        )
        self.calendar = CalendarWatch(
            platform, config.dialplan_path().name, lambda: self.dialplans.current.calendar, self.tickets, clock
        )
        self.survey_tally = SurveyTally()  # /metrics; the case desk puts the answer on the call's case
        context = IvrContext(
            tracker=self.tracker,
            prompts_dir=self._ivr_prompts,
            spool_dir=config.paths.spool_dir,
            timezone=config.platform.timezone,
            clock=clock,
            acd=self.acd,
            messages=MessageIntake(config.paths.spool_dir, self.asr_queue, budget),
            platform=config.platform.id,
            handoffs=self.handoffs,
            platform_trunks=platform_trunks,
            availability=directory,
            spool=self.spool,
            voicemail_failed_prompt=str(prompt_path(config.paths.runtime_dir, "voicemail_failed")),
            budget=budget,
            surveys=(self.survey_tally, self.cases),
        )
        self.consultations = Consultations(ami=self.ami, tracker=self.tracker, handoffs=self.handoffs)
        self.transfers = SeatTransfers(
            platform=config.platform.id,
            tracker=self.tracker,
            dialplans=self.dialplans,
            ami=self.ami,
            handoffs=self.handoffs,
            platform_trunks=platform_trunks,
            trunks=frozenset(config.sip.trunks),
            availability=directory,
            consultations=self.consultations,
            clock=clock,
        )
        self.network = NetworkDesk(
            transfers=self.transfers,
            consultations=self.consultations,
            tracker=self.tracker,
            handoffs=self.handoffs,
            client=self._redis,
            trunks=frozenset(config.sip.trunks),
            clock=clock,
        )
        # --- outbound (issue 13, outbound/): dispatch reminders and 回访; inbound first ---
        self.outbound = OutboundWiring(
            config, self._redis, self.tickets, self.desk, calendar=lambda: self.dialplans.current.calendar,
            ami=self.ami, inbound_waiting=lambda: len(self.acd.waiting()), clock=clock,
        )  # fmt: skip
        # --- end outbound (its AGI route below, its loops in start(), its metrics, its stop) ---
        system_prompts = prompt_path(config.paths.runtime_dir, "any").parent
        routes: dict[str, AgiHandler] = {
            AGI_IVR_SCRIPT: IvrEntry(self.tracker, self.dialplans, context),
            AGI_OVERFLOW_SCRIPT: IvrOverflow(self.tracker, self.dialplans, context, self.acd),
            AGI_SEAT_SCRIPT: SeatAnswered(self.acd),
            AGI_CALLBACK_DONE_SCRIPT: CallbackDone(self.acd),
            AGI_TRANSFER_FAILED_SCRIPT: IvrTransferFailed(self.tracker, self.dialplans, context),
            AGI_AFTER_SEAT_SCRIPT: IvrAfterSeat(self.tracker, self.dialplans, context),
            AGI_ANNOUNCE_SCRIPT: QueueAnnouncement(self.acd, system_prompts),
            AGI_FEATURE_SCRIPT: SeatFeature(self.seats, system_prompts),
            AGI_OUTBOUND_SCRIPT: self.outbound.agi,
        }
        self.agi_wait = Histogram(
            "hotline_agi_wait_seconds",
            "How long a channel waited on the controller between AGI commands (dead air we caused)",
            WAIT_BUCKETS_S,
        )
        self.agi = AgiServer(
            config.agi.host,
            config.agi.port,
            routes,
            header_timeout_s=config.agi.header_timeout_s,
            command_timeout_s=config.agi.command_timeout_s,
            on_gap=self.agi_wait.observe,
            secret=secrets.agi_secret,
        )
        self.figures = Figures(
            config=config,
            seats=self.seats,
            acd=self.acd,
            tracker=self.tracker,
            handoffs=self.handoffs,
            recent_calls=self.recent_calls,
            clock=clock,
            surveys=self.survey_tally,
        )
        api = build_api(
            self, tokens, province=config.platform.province, desk=self.desk, knowledge=self.knowledge, cases=case_desk,
            outbound=self.outbound.service,
        )  # fmt: skip
        self._api_runner = web.AppRunner(api, access_log=None, handle_signals=False)
        self._tasks: list[asyncio.Task[None]] = []
        self._redis_up = False
        self._redis_slow = False  # it accepts connections but does not answer in time (hung)
        self._seats_loaded = False

    async def _disposition_refusal(self, platform: str, call_id: str, code: str) -> str:
        """A disposition that needs the call's case (``requires_case`` in the desk codes) before
        the seat registered or linked one is refused, so every such call has its case."""
        disposition = self.desk.codes.disposition(platform, code)
        if disposition is None or not disposition.requires_case:
            return ""
        try:
            record = self.tracker.get_live(call_id) or await self.store.get(call_id)
            if record is not None and await self.cases.case_of(record):
                return ""
        except Exception as exc:  # Redis away: the seat is not held in wrap-up by a check it cannot make
            log.warning("seat.disposition_case_unchecked", call_id=call_id, code=code, error=str(exc))
            return ""
        return f"disposition {code!r} needs the call's case: register it or link the call to an open case first"

    async def _build_ivr_prompts(self, plan: Dialplan) -> None:
        """Prepares a dialplan before it runs: its prompts; a word about unreachable destinations."""
        unreachable = sorted(k for k, d in plan.destinations.items() if d.trunk not in self.config.sip.trunks)
        if unreachable:
            # the shared directory names trunks (e.g. carrier) this platform may not have yet
            log.warning("dialplan.destinations_without_trunk", destinations=unreachable)
        await asyncio.to_thread(build_prompts, plan.spec.prompts, self.config.paths.prompts_dir, self._ivr_prompts)

    async def start(self) -> None:
        """Load the dialplan, build prompts, adopt open records, then serve AGI, AMI and HTTP.

        Raises DialplanInvalid when the platform's dialplan is broken: nothing starts on it.
        """
        cfg = self.config
        await self.dialplans.load_initial()
        self.desk.load_initial()  # raises DeskFilesInvalid: nothing starts on a broken units file
        await self.knowledge.load_initial()  # a broken knowledge base starts empty, never stops the calls
        system_prompts = prompt_path(cfg.paths.runtime_dir, "fallback").parent
        await asyncio.to_thread(build_prompts, system_prompt_texts(cfg), cfg.paths.prompts_dir, system_prompts)
        try:
            await self._load_state()
        except RedisError as exc:
            log.warning("controller.redis_unavailable_at_start", error=str(exc))
        await self.agi.start()
        self.acd.start()
        self.ami.start()
        if cfg.acd.auto_login:
            self._tasks.append(asyncio.create_task(self._auto_login(), name="auto-login"))
        await self._api_runner.setup()
        site = web.TCPSite(self._api_runner, cfg.http.host, cfg.http.port)
        await site.start()
        self._tasks += [
            asyncio.create_task(self.tracker.run_flusher(), name="calls-flusher"),
            asyncio.create_task(self.seat_events.run(), name="seat-events"),
            asyncio.create_task(self._every(1.0, self._flush_callbacks), name="callbacks-flusher"),
            asyncio.create_task(self._every(cfg.spool.check_interval_s, self.spool.check), name="spool-check"),
            asyncio.create_task(self._every(FALLBACK_SCAN_INTERVAL_S, self._fallback.scan), name="fallback-scan"),
            asyncio.create_task(self._every(2.0, self._check_redis), name="redis-check"),
            asyncio.create_task(self.dialplans.watch(), name="dialplan-watch"),
            asyncio.create_task(self.desk.watch(cfg.units.watch_interval_s), name="units-watch"),
            asyncio.create_task(self.knowledge.watch(cfg.knowledge.watch_interval_s), name="knowledge-watch"),
            asyncio.create_task(self._every(cfg.recordings.purge_interval_s, self._purge_recordings), name="purge"),
            asyncio.create_task(self._every(cfg.asr.rescan_interval_s, self._rescan_messages), name="spool-rescan"),
            asyncio.create_task(self._every(PUBLISH_INTERVAL_S, self._publish_snapshot), name="platform-snapshot"),
            asyncio.create_task(self._every(30.0, self._expire_handoffs), name="handoff-expiry"),
            # provisional deadlines counted again once the calendar knows their year (at start: a newer package)
            asyncio.create_task(self._every(CONFIRM_INTERVAL_S, self.calendar.confirm_provisional), name="calendar"),
        ]
        await self.outbound.prepare()  # outbound (issue 13): its prompts, then its two loops
        self._tasks += [
            asyncio.create_task(self._every(cfg.outbound.tick_s, self.outbound.tick), name="outbound-tick"),
            asyncio.create_task(self._every(cfg.outbound.sweep_interval_s, self.outbound.sweep), name="outbound-sweep"),
        ]
        if self._asr_worker is not None:
            self._tasks.append(asyncio.create_task(self._run_asr_worker(self._asr_worker), name="asr-worker"))
        if cfg.tickets.webhook_url:
            exporter = WebhookExporter(
                self._redis,
                cfg.tickets.webhook_url,
                consumer=f"controller-{cfg.platform.id}",
                token=cfg.tickets.webhook_token,
                max_attempts=cfg.tickets.webhook_max_attempts,
                stream=export_stream(cfg.platform.id),
            )
            self._tasks.append(asyncio.create_task(exporter.run(), name="ticket-export"))
        log.info(
            "controller.started",
            version=__version__,
            platform=cfg.platform.id,
            http=f"http://{cfg.http.host}:{cfg.http.port}",
            agi=f"{cfg.agi.host}:{self.agi.port}",
            ami=f"{cfg.asterisk.ami_host}:{cfg.asterisk.ami_port}",
            redis=masked_url(cfg.redis.url),
        )

    async def _every(self, interval_s: float, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("controller.periodic_job_failed", job=getattr(job, "__qualname__", "?"), error=str(exc))
            await asyncio.sleep(interval_s)

    async def _run_asr_worker(self, worker: AsrWorker) -> None:
        """The in-controller worker waits out Redis by itself; anything else that stops it is
        logged and it starts again (health says so meanwhile)."""
        delay = 1.0
        while True:
            try:
                await worker.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("asr.worker_crashed", error=repr(exc), restart_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _flush_callbacks(self) -> None:
        if self.callback_list.unsaved:
            await self.callback_list.flush()

    async def _check_redis(self) -> None:
        try:
            async with asyncio.timeout(max(self.budget.op_timeout_s, 1.0)):
                await self._redis.ping()
        except TimeoutError:
            if not self._redis_slow:
                log.error("controller.redis_slow", note="Redis does not answer in time (hung?); calls go on without it")
            self._redis_up, self._redis_slow = False, True
            raise
        except RedisError:
            self._redis_up, self._redis_slow = False, False
            raise
        self._redis_slow = False
        self.budget.answered()
        if not self._redis_up:
            log.info("controller.redis_back")
            await self.tracker.flush_dirty()  # first: a record that ended meanwhile is not adopted as open
            await self._load_state()
            await self.callback_list.flush()

    async def _load_state(self) -> None:
        """Adopt open call records (always safe: known ones are kept) and, once, seat states."""
        await self.tracker.load_open()
        if not self._seats_loaded:
            await self.seats.load()
            self._seats_loaded = True
        self._redis_up = True

    async def _auto_login(self) -> None:
        """Log in the configured seats once AMI is up (desk phones with fixed contacts)."""
        await self.ami.wait_connected(timeout_s=3600)
        for seat_id in self.config.acd.auto_login:
            if not self.seats.get(seat_id).logged_in:
                await self.seats.login(seat_id)

    async def _expire_handoffs(self) -> None:
        expiry = timedelta(seconds=self.config.tickets.handoff_expiry_s)
        await file_expired_handoffs(self.handoffs, self.tickets, self.config.platform.id, self._clock(), expiry)

    async def _rescan_messages(self) -> None:
        """Messages in the spool with neither ticket nor job (Redis lost them, or was away when
        they were recorded, or the controller was down) are queued again."""
        spool, platform, min_age = (
            self.config.paths.spool_dir,
            self.config.platform.id,
            self.config.asr.rescan_min_age_s,
        )
        await self.asr_queue.ensure_group()
        await self.asr_queue.rescan_spool(spool, VOICEMAIL_DIR, meta_from_sidecar(platform), min_age)
        await self.asr_queue.rescan_spool(spool, FALLBACK_SPOOL, meta_from_fallback_name(platform), min_age)

    async def _purge_recordings(self) -> None:
        retention = timedelta(days=self.config.recordings.retention_days)
        folder = self.config.paths.spool_dir / RECORDINGS_DIR
        await asyncio.to_thread(purge_expired, folder, retention, self._clock())

    async def stop(self) -> None:
        """Graceful drain: stop taking AGI sessions, let running ones finish, save every record."""
        log.info("controller.stopping")
        await self.agi.close(self.config.agi.drain_timeout_s)
        await cancel_and_wait(self._tasks)
        await self.outbound.service.close()  # outbound (issue 13)
        await self.acd.close()
        await self.ami.close()
        with contextlib.suppress(Exception):
            await self.tracker.flush_dirty()
        with contextlib.suppress(Exception):
            await self.callback_list.flush()
        await self.budget.close()
        await self._api_runner.cleanup()
        await self._redis.aclose()
        log.info("controller.stopped", unsaved_records=self.tracker.unsaved)

    # ApiBackend

    @property
    def spool_dir(self) -> Path:
        return self.config.paths.spool_dir

    @property
    def platform_id(self) -> str:
        return self.config.platform.id

    async def health(self) -> dict[str, Any]:
        slow = self._redis_slow or self.budget.slow
        components = {
            "ami": "up" if self.ami.connected else "down",
            "redis": "slow" if slow else "up" if self._redis_up else "down",
            "agi": "up" if self.agi.serving else "down",
            "spool": "up" if self.spool.state.ok else "degraded",
        }
        calendar, reasons = self.calendar.health()
        reasons[:0] = [f"{name} down" for name, state in components.items() if state == "down"]
        if slow:
            reasons.append("redis slow/hung")
        if self.spool.state.reason:
            reasons.append(self.spool.state.reason)
        if self._asr_worker is not None:
            state = self._asr_worker.state
            # a worker still starting is not a fault; one waiting for Redis or stopped is
            components["asr_worker"] = "up" if state in (WorkerState.RUNNING, WorkerState.STARTING) else str(state)
            if components["asr_worker"] != "up":
                reasons.append(f"asr worker {state}: messages wait for it")
        if self.callback_list.unsaved:
            reasons.append(f"{self.callback_list.unsaved} callback list change(s) waiting for Redis")
        return {
            "status": "ok" if all(v == "up" for v in components.values()) and not reasons else "degraded",
            "reasons": reasons,
            "calendar": calendar,
            "platform": self.config.platform.id,
            "version": __version__,
            "components": components,
            "asterisk": self.ami.version,
            "live_calls": self.tracker.live_calls,
            "unsaved_records": self.tracker.unsaved,
            "dialplan": self.dialplans.current.version,
        }

    async def dialplan_status(self) -> dict[str, Any]:
        plan = self.dialplans.current
        return {
            "platform": plan.spec.platform,
            "source": str(self.dialplans.path),
            "version": plan.version,
            "loaded_at": self.dialplans.loaded_at.isoformat() if self.dialplans.loaded_at else None,
            "nodes": len(plan.spec.nodes),
            "warnings": [str(w) for w in plan.warnings],
            "last_error": self.dialplans.last_error,
            "reloads_ok": self.dialplans.reloads_ok,
            "reloads_failed": self.dialplans.reloads_failed,
        }

    async def reload_dialplan(self, reason: str) -> ReloadResult:
        return await self.dialplans.reload(reason)

    async def metrics(self) -> list[Metric]:
        stats = self.agi.stats
        return [
            Metric("hotline_ami_connected", "gauge", "1 while logged in to AMI", float(self.ami.connected)),
            Metric("hotline_ami_logins_total", "counter", "Successful AMI logins", self.ami.connections),
            Metric("hotline_redis_up", "gauge", "1 while Redis answers", float(self._redis_up)),
            Metric(
                "hotline_redis_slow", "gauge", "1 while Redis does not answer in time (hung)", float(self._redis_slow)
            ),
            *self.budget.metrics(),
            *self.agi_wait.metrics(),
            Metric(
                "hotline_ami_event_backlog", "gauge", "AMI events waiting for the handlers", self.ami.events_backlog
            ),
            Metric(
                "hotline_ami_event_backlog_peak", "gauge", "Most AMI events ever waiting", self.ami.events_backlog_peak
            ),
            Metric(
                "hotline_ami_events_dropped_total",
                "counter",
                "AMI events dropped (backlog full)",
                self.ami.events_dropped,
            ),
            Metric(
                "hotline_ami_overflow_resyncs_total",
                "counter",
                "Resyncs after dropped events",
                self.ami.overflow_resyncs,
            ),
            Metric(
                "hotline_consultations_cleaned_up_total",
                "counter",
                "Consultations ended here after a failed step or found over in Asterisk",
                self.consultations.cleaned_up,
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
            Metric("hotline_calls_live", "gauge", "Calls in progress", self.tracker.live_calls),
            Metric("hotline_call_records_unsaved", "gauge", "Call records waiting for Redis", self.tracker.unsaved),
            Metric(
                "hotline_callbacks_unsaved",
                "gauge",
                "Callback list changes waiting for Redis",
                self.callback_list.unsaved,
            ),
            Metric(
                "hotline_voicemail_failed_total",
                "counter",
                "Messages that could not be kept (the caller was told and put on the callback list)",
                self.spool.messages_failed,
            ),
            Metric(
                "hotline_spool_ok", "gauge", "1 while the voicemail spool can take messages", float(self.spool.state.ok)
            ),
            *self._spool_free(),
            *self._asr_worker_up(),
            Metric(
                "hotline_call_record_save_failures_total",
                "counter",
                "Failed call record writes",
                self.tracker.store_failures,
            ),
            Metric("hotline_dialplan_reloads_total", "counter", "Dialplan reloads", self.dialplans.reloads_ok, _OK),
            Metric(
                "hotline_dialplan_reloads_total",
                "counter",
                "Dialplan reloads",
                self.dialplans.reloads_failed,
                _REJECTED,
            ),
            *await self.figures.metrics(),
            *await self.calendar.metrics(),
            *self.knowledge.metrics(),
            *await self.outbound.metrics(),  # outbound (issue 13)
        ]

    def _spool_free(self) -> list[Metric]:
        free = self.spool.state.free_mb
        return [] if free is None else [Metric("hotline_spool_free_mb", "gauge", "Free space of the spool", free)]

    def _asr_worker_up(self) -> list[Metric]:
        if self._asr_worker is None:
            return []
        up = float(self._asr_worker.state is WorkerState.RUNNING)
        return [Metric("hotline_asr_worker_up", "gauge", "1 while the in-controller ASR worker runs", up)]

    async def queue_stats(self) -> list[QueueStats]:
        return await self.figures.queue_stats()

    async def seat_figures(self) -> list[tuple[Seat, SeatStats]]:
        return await self.figures.seat_figures()

    async def current_calls(self) -> dict[str, dict[str, Any]]:
        return await self.figures.current_calls()

    async def _publish_snapshot(self) -> None:
        """This platform's live figures for the province-wide view."""
        snapshot = await self.figures.snapshot((await self.health())["status"])
        await publish_platform(self._redis, self.config.platform.id, snapshot)

    async def recent_calls(self, limit: int) -> list[CallRecord]:
        return await self._bounded_read("call records", lambda: self.store.recent(limit))

    async def get_call(self, call_id: str) -> CallRecord | None:
        return await self._bounded_read("call records", lambda: self.store.get(call_id))

    async def _bounded_read(self, what: str, read: Callable[[], Awaitable[T]]) -> T:
        """A read for the API or a scrape: StoreUnavailable at once while Redis is known hung,
        else after at most READ_TIMEOUT_S (a console or /metrics never waits on a hung Redis)."""
        if self._redis_slow:
            raise StoreUnavailable(f"{what} are unavailable: Redis does not answer (hung?)")
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                return await read()
        except (RedisError, TimeoutError) as exc:
            raise StoreUnavailable(f"{what} are unavailable: Redis: {exc or 'timed out'}") from None

    async def recording_file(self, call_id: str, kind: str) -> Path | None:
        record = await self.get_call(call_id)
        if record is None:
            return None
        relative = record.call_recording if kind == "conversation" else record.recording
        if not relative:
            return None
        try:
            path = spool_file(self.config.paths.spool_dir, relative)
        except UnsafePath:
            log.error("recordings.unsafe_path_on_record", call_id=call_id)
            return None
        return path if path.is_file() else None

    async def callbacks(self, limit: int) -> list[Callback]:
        try:
            return await self.callback_list.pending(limit)
        except RedisError as exc:
            raise StoreUnavailable(f"the callback list is unavailable: Redis: {exc}") from None

    async def audit(self, entry: AuditEntry) -> None:
        try:
            await self.audit_log.record(entry)
        except RedisError as exc:
            # the log line from the API stands; an audit gap must be visible
            log.error("audit.write_failed", action=entry.action, who=entry.who, error=str(exc))

    async def audit_trail(self, limit: int, keep: AuditFilter | None = None) -> list[AuditEntry]:
        try:
            return await self.audit_log.recent(limit, keep)
        except RedisError as exc:
            raise StoreUnavailable(f"the audit trail is unavailable: Redis: {exc}") from None


async def run_until_signalled(controllers: Sequence[Controller], on_started: Callable[[], None] | None = None) -> None:
    """Start, serve until SIGTERM/SIGINT (SIGHUP reloads the dialplans), then drain. Several
    controllers (the platforms of ``make run``) share one event loop; each logs its platform."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[Any]] = set()

    def on_hangup_signal() -> None:
        for controller in controllers:
            for reload in (
                controller.reload_dialplan("SIGHUP"),
                controller.desk.reload("SIGHUP"),  # the units directory and desk codes
                controller.knowledge.reload("SIGHUP"),
            ):
                task = loop.create_task(reload)
                reloads.add(task)
                task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup_signal)
    started: list[Controller] = []
    try:
        for controller in controllers:
            # tasks the controller starts inherit this binding: its log lines name its platform
            with structlog.contextvars.bound_contextvars(platform=controller.config.platform.id):
                await controller.start()
            started.append(controller)
        if on_started is not None:
            on_started()
        await stop.wait()
    finally:
        for controller in reversed(started):
            await controller.stop()
