"""What a callback asks of Asterisk: ring the seat, then (dialplan) dial the citizen (AMI)."""

from __future__ import annotations

from pathlib import Path

from dialback.model import DIALLABLE
from telephony.ami_types import AmiLink
from telephony.dialplan_names import DIAL_VARIABLE, DIALBACK_CONTEXT, DIALBACK_RING_VARIABLE, RECORDING_VARIABLE
from telephony.values import unsafe_path_reason


class UnsafeValue(ValueError):
    """A value that may not reach Asterisk (checked again here, whatever the caller checked)."""


def dial_string(number: str, trunk: str) -> str:
    """``PJSIP/<number>@<trunk>``: digits only (no ``&``, ``,`` or ``$`` reaches Dial())."""
    if DIALLABLE.fullmatch(number) is None:
        raise UnsafeValue("the number to dial must be 3-20 digits")
    return f"PJSIP/{number}@{trunk}"


class DialbackTelephony:
    def __init__(self, ami: AmiLink, seat_ring_s: float, trunk: str, dial_timeout_s: int) -> None:
        self._ami = ami
        self._seat_ring_ms = int(seat_ring_s * 1000)
        self._trunk = trunk  # a TrunkName (config)
        self._dial_timeout_s = dial_timeout_s

    @property
    def connected(self) -> bool:
        return self._ami.connected

    async def ring_seat(self, call_id: str, seat_id: str, number: str, recording: Path | None) -> None:
        """The seat's phone rings (async Originate into the dialback context, uniqueid
        ``call_id``); OriginateResponse tells whether it answered."""
        variables = {DIAL_VARIABLE: dial_string(number, self._trunk), DIALBACK_RING_VARIABLE: str(self._dial_timeout_s)}
        if recording is not None:
            if (why := unsafe_path_reason(recording)) is not None:
                raise UnsafeValue(f"recording path: {why}")
            variables[RECORDING_VARIABLE] = str(recording)
        await self._ami.send_action(
            {
                "Action": "Originate",
                "Channel": f"PJSIP/{seat_id}",
                "Context": DIALBACK_CONTEXT,
                "Exten": "s",
                "Priority": "1",
                "Async": "true",
                "Timeout": str(self._seat_ring_ms),
                "ChannelId": call_id,
                # the seat's phone shows it is a callback, and whom
                "CallerID": f'"回拨" <{number}>',
                # no value holds a comma (digits, a checked path): Asterisk splits Variable on commas
                "Variable": ",".join(f"{name}={value}" for name, value in variables.items()),
            }
        )

    async def hang_up(self, channel: str) -> None:
        await self._ami.send_action({"Action": "Hangup", "Channel": channel, "Cause": "16"})
