"""config.yaml's ``monitor`` section: the phones supervisors may be rung on to listen in."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from common.config_model import ConfigModel
from telephony.values import SeatId


class MonitorConfig(ConfigModel):
    """``phones``: configured seats (their PJSIP endpoints) that are supervisors' phones. A
    monitor rings only one of these, never a free-form dial string and never an ordinary seat,
    so no one can make a seat's phone listen to another seat's caller."""

    phones: tuple[SeatId, ...] = ()
    ring_timeout_s: Annotated[float, Field(gt=0, le=120)] = 30.0  # the supervisor's phone rings this long
