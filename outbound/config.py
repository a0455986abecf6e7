"""config.yaml's ``outbound:`` section (composed into hotline/config.py's Config)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from acd.stats import DEFAULT_MIN_SERVICE_LEVEL
from common.config_model import ConfigModel
from ivr.dialplan.schema import parse_time_range
from telephony.values import DialNumber, PromptText, TrunkName

Hours = tuple[str, ...]
RetryGaps = Annotated[tuple[Annotated[int, Field(ge=30, le=86_400)], ...], Field(min_length=1, max_length=10)]


def _ranges(value: Hours) -> Hours:
    for text in value:
        parse_time_range(text)
    return value


class KindPolicy(ConfigModel):
    """How one kind of outbound call is made: when, how often, how long it rings."""

    enabled: bool = True
    max_attempts: int = Field(default=3, ge=1, le=10)
    # the wait before the 2nd, 3rd … attempt (the last gap repeats)
    retry_after_s: RetryGaps = (600, 1800)
    ring_s: int = Field(default=30, ge=5, le=120)
    # calling hours per day type of the platform calendar; an empty list: never on that day type
    workday_hours: Hours = ("08:00-21:00",)
    restday_hours: Hours = ()
    holiday_hours: Hours = ()

    _check_workday = field_validator("workday_hours", "restday_hours", "holiday_hours")(_ranges)


def _visit_default() -> KindPolicy:
    # 回访: not at night, not on rest days or holidays unless configured
    return KindPolicy(workday_hours=("09:00-12:00", "14:00-20:00"))


class OutboundPrompts(ConfigModel):
    """What the automated calls say (espeak-ng, or a recording of the same name in prompts_dir)."""

    reminder_intro: PromptText = "您好，这里是12345政务服务便民热线，您单位有一件新的工单，工单编号"
    reminder_deadline: PromptText = "请在以下时间前签收"
    reminder_keys: PromptText = "确认签收请按1，重听请按2"
    reminder_signed: PromptText = "已签收，谢谢"
    visit_intro: PromptText = "您好，这里是12345热线回访，关于您反映的问题，工单编号"
    visit_resolved: PromptText = "问题是否已解决？已解决请按1，未解决请按2"
    visit_satisfaction: PromptText = "您对办理结果是否满意？满意请按1，基本满意请按2，不满意请按3"
    visit_comment: PromptText = "如有意见，请在提示音后留言，按井号键结束"
    visit_thanks: PromptText = "感谢您的评价，再见"


class OutboundConfig(ConfigModel):
    """Automated outbound calls. Off unless ``enabled``: it dials real numbers."""

    enabled: bool = False
    trunk: TrunkName = "carrier"  # a sip.trunks entry; the calls leave through it
    # the number shown to the called party; default: the platform's <area code>12345
    caller_id: DialNumber | None = None
    max_channels: int = Field(default=2, ge=1, le=200)  # automated calls at once, per platform
    # inbound first: no new call while the 15 s service level of the last 15 min is below this (0: off)
    min_service_level: float = Field(default=DEFAULT_MIN_SERVICE_LEVEL, ge=0, le=1)
    tick_s: float = Field(default=1.0, gt=0, le=60)  # how often due attempts are looked at
    sweep_interval_s: float = Field(default=30.0, gt=0, le=3600)  # how often tickets are looked at
    number_lock_s: int = Field(default=300, ge=30, le=3600)  # one call at a time per number (TTL)
    dnc_file: Path | None = None  # the do-not-call list (YAML: numbers:), checked at start
    reminder: KindPolicy = KindPolicy()
    # the second reminder, this long before the 2-hour sign-for deadline if still not signed
    second_reminder_before_s: int = Field(default=1800, ge=60, le=7200)
    visit: KindPolicy = Field(default_factory=_visit_default)
    visit_delay_s: int = Field(default=0, ge=0, le=7 * 86_400)  # after the case is resolved
    visit_comment_s: int = Field(default=20, ge=0, le=120)  # 0: no comment is asked for
    prompts: OutboundPrompts = OutboundPrompts()
