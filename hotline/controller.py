"""The controller process of one platform: it wires the features (``hotline/wiring/``, one
module each), serves AGI, AMI and HTTP, and runs their background tasks
(``hotline/controller_tasks.py``); the HTTP layer reads it through ``hotline/controller_api.py``.
``hotline/run.py`` runs controllers until a signal."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from calls.store import StoreUnavailable
from common.aio import cancel_and_wait
from common.clock import Clock, system_clock
from common.reloading import ReloadResult
from hotline import __version__
from hotline.api import build_api
from hotline.asterisk_files import seat_phone_book
from hotline.config import Config
from hotline.controller_api import ControllerApi
from hotline.controller_tasks import ControllerTasks, every
from hotline.local_secrets import local_secrets, redis_where
from hotline.monitor_seats import monitor_service
from hotline.outbound_wiring import OutboundWiring
from hotline.redis_watch import RedisWatch
from hotline.wallboard_wiring import attach_wallboard
from hotline.wiring.acd import build_acd
from hotline.wiring.agi import agi_routes, browser_seats, build_agi
from hotline.wiring.calls import build_calls
from hotline.wiring.case_desk import build_case_desk
from hotline.wiring.dialback import build_dialback
from hotline.wiring.ivr import build_dialplans, build_ivr_context, build_system_prompts
from hotline.wiring.messages import build_messages
from hotline.wiring.network import build_network
from hotline.wiring.reports import build_reports
from telephony.agi_server import AgiHandler
from telephony.dialplan_names import AGI_OUTBOUND_SCRIPT
from tickets.open_keys import migrate_until_done
from web.auth import TokenRegistry
from webphone.watch import PhoneWatch

log = structlog.get_logger(__name__)
HANGUP_GRACE_S = 3.0  # a drain waits this long for the hang-ups of calls the IVR released


class Controller:
    """One platform's controller. ``start()``, then ``stop()`` (graceful drain)."""

    def __init__(self, config: Config, tokens: TokenRegistry, clock: Clock = system_clock) -> None:
        self.config = config
        secrets = local_secrets(config)  # the same files the rendered Asterisk config was made from
        # Each feature's parts, built in dependency order by its module in hotline/wiring/. The AMI
        # event handlers run in the order they were added: call records (calls), then the ACD,
        # then consultations (network). A new feature: its build_* call here, its parts below.
        calls = build_calls(config, secrets.ami_secret, clock)
        self.dialplans = dialplans = build_dialplans(config, calls.tracker)
        messages = build_messages(config, clock, calls, dialplans)
        case_desk = build_case_desk(config, clock, tokens=tokens, calls=calls, messages=messages, dialplans=dialplans)
        acd = build_acd(config, clock, calls, case_desk)

        # inbound first: the wallboard's 15 s service level of the last 15 min (it is attached below)
        def service_level() -> float | None:
            return self.wallboard.recent_service_level()

        # seats' callbacks (dialback/)
        dialback = build_dialback(config, clock, calls, acd, messages, service_level=service_level)
        network = build_network(config, clock, calls, dialplans)
        ivr = build_ivr_context(config, clock, calls=calls, messages=messages, acd=acd.engine, cases=case_desk.cases)
        # outbound/ (dispatch reminders, 回访): inbound first — nothing dials while a caller waits
        self.outbound = OutboundWiring(
            config, calls.redis, messages.tickets, case_desk.desk, calendar=lambda: dialplans.current.calendar,
            ami=calls.ami, inbound_waiting=lambda: len(acd.engine.waiting()), clock=clock,
            comments=messages.asr_queue, service_level=service_level,
        )  # fmt: skip
        routes: dict[str, AgiHandler] = {**agi_routes(config, calls, dialplans, ivr, acd)}
        routes[AGI_OUTBOUND_SCRIPT] = self.outbound.agi
        agi = build_agi(config, secrets.agi_secret, routes)
        reports = build_reports(config, calls, acd, messages)  # reports/: counters as calls end

        # the parts, by name (calls/, acd/, tickets/ + voicemail/, units/ + knowledge/ + cases/, ivr/)
        self._redis = calls.redis
        self.budget, self.store, self.tracker = calls.budget, calls.store, calls.tracker
        self.callback_list, self.audit_log, self.handoffs = calls.callback_list, calls.audit_log, calls.handoffs
        self.events, self.ami = calls.events, calls.ami
        self.seats, self.acd = acd.seats, acd.engine
        self.dialback = dialback.service
        self.tickets, self.asr_queue, self.spool = messages.tickets, messages.asr_queue, messages.spool
        self.calendar = messages.calendar
        self.desk, self.knowledge, self.cases = case_desk.desk, case_desk.knowledge, case_desk.cases
        self.seat_events = case_desk.seat_events
        self.consultations, self.transfers, self.network = network.consultations, network.transfers, network.desk
        self.survey_tally = ivr.survey_tally
        self.agi, self.agi_wait = agi.server, agi.wait

        # a browser seat whose phone (websocket) went away: paused, its caller requeued (webphone/watch.py)
        self.phone_watch = PhoneWatch(
            self.ami, self.seats, self.tracker, browser_seats(config), self.tracker.live_records
        )
        self._redis_watch = RedisWatch(calls.redis, calls.budget, calls.tracker, acd.seats, calls.callback_list)
        self.api = ControllerApi(
            config=config,
            clock=clock,
            calls=calls,
            messages=messages,
            acd=acd,
            network=network,
            ivr=ivr,
            agi=agi,
            dialplans=dialplans,
            knowledge=case_desk.knowledge,
            redis=self._redis_watch,
        )
        self.figures = self.api.figures
        self._background = ControllerTasks(
            config=config,
            clock=clock,
            calls=calls,
            messages=messages,
            case_desk=case_desk,
            acd=acd,
            dialplans=dialplans,
            redis=self._redis_watch,
            snapshot=self.api.snapshot,
            dialback=dialback,
        )
        # the HTTP API: the controller's own routes (hotline/api*.py) and the features' routes.py
        app = build_api(
            self.api,
            tokens,
            province=config.platform.province,
            desk=self.desk,
            knowledge=self.knowledge,
            cases=case_desk.routes,
            monitors=monitor_service(config, self.ami, self.acd, self.seats, self.api, redis=self._redis),
            dialback=dialback.routes,
            reports=(reports.service, reports.search),
            outbound=self.outbound.service,
            phones=seat_phone_book(config),  # webphone/: a browser seat's own phone settings
            max_pending_sockets=config.http.max_pending_sockets,
            max_sockets_per_token=config.http.max_sockets_per_token,
        )
        # the wallboard (wallboard/, hotline/wallboard_wiring.py): its socket, push loop and today's counters
        self.wallboard = attach_wallboard(
            app, config=config, figures=self.api.figures, acd=self.acd, seats=self.seats, events=self.events,
            tracker=self.tracker, redis=self._redis, recent_calls=self.api.recent_calls, clock=clock,
        )  # fmt: skip
        self.api.more_metrics.append(self.wallboard.metrics)
        self.api.more_metrics.append(self.dialback.metrics)  # seats' callbacks (dialback/)
        self.api.more_metrics.append(self.outbound.metrics)  # outbound/ (async)
        self._api_runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Load the dialplan, build prompts, adopt open records, then serve AGI, AMI and HTTP.

        Raises DialplanInvalid when the platform's dialplan is broken: nothing starts on it.
        """
        cfg = self.config
        log.info("controller.starting", version=__version__, platform=cfg.platform.id)
        await self.dialplans.load_initial()
        self.desk.load_initial()  # raises DeskFilesInvalid: nothing starts on a broken units file
        await build_system_prompts(cfg)  # milliseconds once built (checksums); `hotline12345 prompts build`
        await self._load_state()
        # FastAGI, the ACD and AMI as early as possible: until FastAGI serves, new calls take the
        # fallback route (no seat). See docs/benchmarks.md "Controller restart gap".
        await self.agi.start()
        self.acd.start()
        self.ami.start()
        # the knowledge base (jieba's dictionary: a second or more) loads while calls are served; its
        # search answers 503 "loading" until then. A broken one starts empty, never stops the calls.
        self._tasks.append(asyncio.create_task(self.knowledge.load_initial(), name="knowledge-load"))
        self._tasks += self._background.start_auto_login()
        await self._api_runner.setup()
        site = web.TCPSite(self._api_runner, cfg.http.host, cfg.http.port)
        await site.start()
        self._tasks += self._background.start()
        # open-ticket keys of earlier versions carried the whole number: renamed while serving
        # (a SCAN of the whole key space), retried until done (tickets/open_keys.py)
        self._tasks.append(asyncio.create_task(self._migrate_open_keys(), name="open-keys-migration"))
        await self.outbound.prepare()  # outbound/: its prompts, then its two loops
        self._tasks += [
            asyncio.create_task(every(cfg.outbound.tick_s, self.outbound.tick), name="outbound-tick"),
            asyncio.create_task(every(cfg.outbound.sweep_interval_s, self.outbound.sweep), name="outbound-sweep"),
        ]
        log.info(
            "controller.started",
            version=__version__,
            platform=cfg.platform.id,
            http=f"http://{cfg.http.host}:{cfg.http.port}",
            agi=f"{cfg.agi.host}:{self.agi.port}",
            ami=f"{cfg.asterisk.ami_host}:{cfg.asterisk.ami_port}",
            redis=redis_where(cfg),
        )

    # the Redis loads at start: open records and seats, then the figures (they count the stored
    # calls after the adoption, as before)
    async def _load_state(self) -> None:
        try:
            await self._redis_watch.load_state()
        except RedisError as exc:
            log.warning("controller.redis_unavailable_at_start", error=str(exc))
        await self._seed_figures()

    async def _migrate_open_keys(self) -> None:
        await migrate_until_done(self._redis, self.config.platform.id, self.tickets)

    async def _seed_figures(self) -> None:
        try:  # the 24 h figures count the calls stored before this start, once (else at the first poll)
            await self.figures.seed()
        except StoreUnavailable as exc:
            log.warning("controller.figures_not_seeded", error=str(exc))

    async def stop(self) -> None:
        """Graceful drain: stop taking AGI sessions, let running ones finish, save every record."""
        log.info("controller.stopping")
        await self.agi.close(self.config.agi.drain_timeout_s)
        await self._await_hangups(HANGUP_GRACE_S)
        await cancel_and_wait(self._tasks)
        await self.outbound.service.close()
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

    async def _await_hangups(self, timeout_s: float) -> None:
        """The IVR sessions are done; the AMI hang-ups of the calls they released are on their
        way (milliseconds). Wait for them a short while, so those records end as they did."""
        if pending := await self.tracker.await_hangups(timeout_s):
            log.warning("controller.hangups_unseen", calls=pending, waited_s=timeout_s)

    async def reload_dialplan(self, reason: str) -> ReloadResult:
        return await self.dialplans.reload(reason)
