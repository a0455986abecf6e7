"""config.yaml's ``dialback`` section: how seats call citizens back (blended offers are
``acd.blended_callbacks``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from acd.stats import DEFAULT_MIN_SERVICE_LEVEL
from common.config_model import ConfigModel
from telephony.values import TrunkName


class DialbackConfig(ConfigModel):
    """Seats' callbacks to missed callers."""

    trunk: TrunkName = "carrier"  # the outbound trunk citizens are dialled on (sip.trunks)
    dial_timeout_s: Annotated[int, Field(ge=5, le=120)] = 45  # the citizen's phone rings this long
    # blended offers: a number is tried at most this often, and not again before this long
    max_tries: Annotated[int, Field(ge=1, le=10)] = 3
    retry_after_s: Annotated[int, Field(ge=0, le=86400)] = 600
    # inbound first: no callback nor blended offer starts while the 15 s service level of the last
    # 15 min is below this (0: off); with nobody offered in the window it holds
    min_service_level: Annotated[float, Field(ge=0, le=1)] = DEFAULT_MIN_SERVICE_LEVEL
    blended_poll_s: Annotated[float, Field(gt=0, le=60)] = 5.0  # idle seats are looked for at least this often
