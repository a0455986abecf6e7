"""The transfer bench's values: its settings, the systems it compares, a transfer and a round as it saw them."""

from __future__ import annotations

from dataclasses import dataclass, field

SYSTEMS = {  # system → (destination, mode)
    "baseline": ("province_plain", "blind"),
    "ours": ("province", "blind"),
    "attended": ("province", "attended"),
}
LABELS = {"baseline": "baseline: plain transfer", "ours": "ours: with hand-off", "attended": "ours: attended"}
WITH_HANDOFF = ("ours", "attended")


@dataclass(frozen=True)
class Settings:
    pairs: int
    rounds: int  # in all, systems alternating
    ring_ms: int  # provincial seats ring this long before answering
    talk_s: float  # provincial seats hang up after this much talk
    arrival_rate: float  # callers per second into 昆明
    settle_s: float  # after every 昆明 seat talks, before the transfers


@dataclass
class Transfer:
    """One transfer, as the bench saw it."""

    system: str
    round_no: int
    call_id: str
    caller: str
    sent: float = 0.0  # epoch, just before the POST
    replied: float | None = None
    status: int = 0
    token: str = ""
    error: str = ""
    round_end: float = 0.0
    arrived: float | None = None  # the province's trunk channel (AMI Newchannel)
    queued: float | None = None  # the province's hold context (AMI Newexten)
    rang: float | None = None  # the INVITE at a provincial seat (SIPp trace)
    outcome: str = ""  # 昆明's record
    picked_up: bool = False  # ours: the hand-off record names the province's leg

    @property
    def failed(self) -> bool:
        picked = self.picked_up or self.system not in WITH_HANDOFF
        return self.status != 202 or self.rang is None or self.outcome != "transferred" or not picked

    def ms(self, mark: float | None) -> float | None:
        return (mark - self.sent) * 1000 if mark is not None else None


@dataclass
class Round:
    system: str
    round_no: int
    placed: int
    seated: int
    transfers: list[Transfer]
    sip_ok: int = 0
    sip_failed: int = 0
    leftover_channels: int = 0
    stuck_seats: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)  # process → CPU seconds in the round
    leftover_detail: str = ""  # `core show channels concise` of both, when channels outlived the round
