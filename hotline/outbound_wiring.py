"""The app shell's wiring of outbound/ (issue 13): its service, Asterisk side, AGI route,
prompts and periodic jobs, built from the controller's parts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.asyncio as aioredis
import structlog

from common.clock import Clock
from common.metrics import Metric
from hotline.config import Config
from ivr.prompts import build_prompts
from outbound.agi import MATTER_PROMPT_PREFIX, OutboundCall
from outbound.policy import DayTypes, load_dnc
from outbound.service import CommentQueue, OutboundService
from outbound.store import OutboundStore
from outbound.telephony import OutboundTelephony
from telephony.ami import AmiClient
from telephony.dialplan_names import prompt_path
from telephony.say_zh import zh_sounds_dir
from tickets.store import RedisTicketStore
from units.registry import DeskRegistry

log = structlog.get_logger(__name__)


class OutboundWiring:
    def __init__(
        self,
        config: Config,
        client: aioredis.Redis,
        tickets: RedisTicketStore,
        desk: DeskRegistry,
        *,
        calendar: Callable[[], DayTypes],
        ami: AmiClient,
        inbound_waiting: Callable[[], int],
        clock: Clock,
        comments: CommentQueue | None = None,
        service_level: Callable[[], float | None] = lambda: None,
    ) -> None:
        cfg = config.outbound
        self.config = config
        # a broken do-not-call file stops the controller with file:line (outbound.policy.DncInvalid)
        dnc = load_dnc(cfg.dnc_file) if cfg.dnc_file is not None else frozenset()
        self.dialler = OutboundTelephony(ami, cfg.trunk)
        ami.on_event("OriginateResponse", self.dialler.on_originate_response)
        ami.on_event("Hangup", self.dialler.on_hangup)
        self.service = OutboundService(
            config=cfg,
            platform=config.platform.id,
            area_code=config.platform.area_code,
            timezone=config.platform.timezone,
            store=OutboundStore(client, config.platform.id),
            tickets=tickets,
            units=lambda: desk.units,
            calendar=calendar,
            dialler=self.dialler,
            inbound_waiting=inbound_waiting,
            dnc=dnc,
            comments=comments,  # 回访 comments to the ASR workers, onto their case
            service_level=service_level,  # inbound first: no new call while it is below min_service_level
            clock=clock,
        )
        self.prompts_dir = prompt_path(config.paths.runtime_dir, "outbound")
        self.agi = OutboundCall(
            self.service,
            self.prompts_dir,
            config.paths.spool_dir,
            config.platform.timezone,
            sounds_dir=zh_sounds_dir(config.paths.runtime_dir),
        )
        self._desk = desk
        self._recovered = False

    @property
    def enabled(self) -> bool:
        return self.config.outbound.enabled and self.config.outbound.trunk in self.config.sip.trunks

    async def prepare(self) -> None:
        """Build the prompts; say why outbound will not dial if it will not."""
        texts = self.config.outbound.prompts.model_dump()
        # the matter a reminder names: one prompt per matter type of this platform's desk codes
        for matter in self._desk.codes.for_platform(self.config.platform.id).matter_types:
            texts[f"{MATTER_PROMPT_PREFIX}{matter.id}"] = f"事项：{matter.label}"
        await asyncio.to_thread(build_prompts, texts, self.config.paths.prompts_dir, self.prompts_dir)
        if self.config.outbound.enabled and not self.enabled:
            log.warning("outbound.no_trunk", trunk=self.config.outbound.trunk, note="no automated call is placed")

    async def tick(self) -> None:
        if not self.enabled:
            return
        if not self._recovered and self.dialler.connected:
            settled = await self.service.recover()
            self._recovered = True
            log.info("outbound.recovered", settled=settled)
        if self._recovered:
            await self.service.tick()

    async def sweep(self) -> None:
        if self.enabled:
            await self.service.sweep()

    async def metrics(self) -> list[Metric]:
        try:
            async with asyncio.timeout(2.0):
                return await self.service.metrics()
        except Exception as exc:  # Redis away: /metrics still answers without these
            log.warning("outbound.metrics_unavailable", error=str(exc) or type(exc).__name__)
            return []
