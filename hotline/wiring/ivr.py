"""The IVR's parts: the platform's dialplan (checked, reloaded, its prompts built) and the
context its nodes run in (the features a node hands a caller to)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from acd.agi import count_prompt_texts
from acd.engine import AcdEngine
from calls.tracker import CallTracker
from cases.service import CaseService
from common.clock import Clock
from hotline.config import Config
from hotline.wiring.calls import CallParts
from hotline.wiring.messages import MessageParts
from ivr.after_seat import SurveyTally
from ivr.dialplan.loader import Dialplan
from ivr.dialplan.registry import DialplanRegistry
from ivr.interpreter import IvrContext
from ivr.prompts import build_prompts, build_sound_set
from telephony.dialplan_names import ivr_prompts_dir, prompt_path
from telephony.say_zh import zh_sounds_dir
from voicemail.intake import MessageIntake

log = structlog.get_logger(__name__)


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


async def build_system_prompts(config: Config) -> None:
    """The system prompts' audio, built at start (the dialplan's are built with each plan)."""
    folder = prompt_path(config.paths.runtime_dir, "fallback").parent
    await asyncio.to_thread(build_prompts, system_prompt_texts(config), config.paths.prompts_dir, folder)
    # the Mandarin sound set case numbers and times are read with (recordings in <prompts_dir>/zh win)
    sounds = zh_sounds_dir(config.paths.runtime_dir)
    await asyncio.to_thread(build_sound_set, config.paths.prompts_dir / "zh", sounds)


def ivr_prompt_builder(config: Config) -> Callable[[Dialplan], Awaitable[None]]:
    """Prepares a dialplan before it runs: its prompts; a word about unreachable destinations."""
    folder = ivr_prompts_dir(config.paths.runtime_dir)

    async def build_ivr_prompts(plan: Dialplan) -> None:
        unreachable = sorted(k for k, d in plan.destinations.items() if d.trunk not in config.sip.trunks)
        if unreachable:
            # the shared directory names trunks (e.g. carrier) this platform may not have yet
            log.warning("dialplan.destinations_without_trunk", destinations=unreachable)
        await asyncio.to_thread(build_prompts, plan.spec.prompts, config.paths.prompts_dir, folder)

    return build_ivr_prompts


def build_dialplans(config: Config, tracker: CallTracker) -> DialplanRegistry:
    """The platform's dialplan; older versions stay while live calls run on them."""
    return DialplanRegistry(
        config.dialplan_path(),
        config.paths.prompts_dir,
        config.platform.id,
        ivr_prompt_builder(config),
        in_use=tracker.live_dialplan_versions,
    )


@dataclass(frozen=True)
class IvrParts:
    context: IvrContext
    survey_tally: SurveyTally  # /metrics; the case desk puts the answer on the call's case


def platform_trunks(config: Config) -> dict[str, str]:
    """The trunks that lead to another platform, by name: that platform's id."""
    return {name: t.platform for name, t in config.sip.trunks.items() if t.platform}


def build_ivr_context(
    config: Config, clock: Clock, *, calls: CallParts, messages: MessageParts, acd: AcdEngine, cases: CaseService
) -> IvrParts:
    survey_tally = SurveyTally()
    context = IvrContext(
        tracker=calls.tracker,
        prompts_dir=ivr_prompts_dir(config.paths.runtime_dir),
        sounds_dir=zh_sounds_dir(config.paths.runtime_dir),
        spool_dir=config.paths.spool_dir,
        timezone=config.platform.timezone,
        clock=clock,
        acd=acd,
        messages=MessageIntake(config.paths.spool_dir, messages.asr_queue, calls.budget),
        platform=config.platform.id,
        handoffs=calls.handoffs,
        platform_trunks=platform_trunks(config),
        availability=calls.directory,
        spool=messages.spool,
        voicemail_failed_prompt=str(prompt_path(config.paths.runtime_dir, "voicemail_failed")),
        budget=calls.budget,
        surveys=(survey_tally, cases),
    )
    return IvrParts(context=context, survey_tally=survey_tally)
