"""What a monitor asks of Asterisk (AMI): ring the supervisor's phone into ChanSpy, press its
mode keys, hang it up. Every value is checked against telephony/values.py's shapes here, where
it leaves for Asterisk: a value that does not fit is never sent."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from monitor.model import MODE_KEY, Mode, chanspy_options
from telephony.ami_types import AmiLink
from telephony.values import SeatChannel, SeatId

_SEAT_ID: TypeAdapter[str] = TypeAdapter(SeatId)
_SEAT_CHANNEL: TypeAdapter[str] = TypeAdapter(SeatChannel)


class UnsafeValue(ValueError):
    """A value that may not reach Asterisk."""


def _checked(adapter: TypeAdapter[str], value: str, what: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        raise UnsafeValue(f"{what} {value!r} is not a value we send to Asterisk") from None


class MonitorTelephony:
    def __init__(self, ami: AmiLink, ring_timeout_s: float) -> None:
        self._ami = ami
        self._ring_timeout_ms = int(ring_timeout_s * 1000)

    async def ring(self, monitor_id: str, phone: str, spied_channel: str, seat: str, mode: Mode) -> None:
        """The supervisor's phone rings; answered, it runs ChanSpy on ``spied_channel`` (the
        channel prefix is the whole channel name: ChanSpy finds no other channel by it)."""
        phone = _checked(_SEAT_ID, phone, "phone")
        spied = _checked(_SEAT_CHANNEL, spied_channel, "channel")
        seat = _checked(_SEAT_ID, seat, "seat")
        await self._ami.send_action(
            {
                "Action": "Originate",
                "Channel": f"PJSIP/{phone}",
                "Application": "ChanSpy",
                "Data": f"{spied},{chanspy_options(mode)}",
                "Async": "true",
                "Timeout": str(self._ring_timeout_ms),
                "ChannelId": monitor_id,
                "CallerID": f'"monitor {seat}" <{seat}>',
            }
        )

    async def switch(self, channel: str, mode: Mode) -> None:
        """ChanSpy's ``d`` option: the key 4, 5 or 6 as if the supervisor pressed it."""
        channel = _checked(_SEAT_CHANNEL, channel, "channel")
        await self._ami.send_action(
            {"Action": "PlayDTMF", "Channel": channel, "Digit": MODE_KEY[mode], "Duration": "120", "Receive": "yes"}
        )

    async def hang_up(self, channel: str) -> None:
        await self._ami.send_action({"Action": "Hangup", "Channel": channel, "Cause": "16"})
