"""ivr/rejoin.py on a fake AMI link: the seat and its caller go apart into holding bridges and
come together in a new bridge; one who leaves meanwhile, or a slow Asterisk, fails the step, and
a failed step never leaves them apart when they can be bridged again."""

from __future__ import annotations

import pytest

from ivr.rejoin import RejoinFailed, rejoin, together_again
from telephony.ami_types import AmiActionFailed
from tests.support.fake_ami_link import FakeAmiLink

CALLER, SEAT = "PJSIP/trunk-00000001", "PJSIP/1001-00000002"


def place(ami: FakeAmiLink, seat_bridge: str | None, caller_bridge: str | None) -> None:
    """Where Asterisk has the two channels (None: the channel is gone)."""
    ami.channels = [
        {"channel": channel, "bridgeid": bridge}
        for channel, bridge in ((SEAT, seat_bridge), (CALLER, caller_bridge))
        if bridge is not None
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_apart_first_then_bridged_together_without_a_tone() -> None:
    ami, clock = FakeAmiLink(), Clock()
    place(ami, "talk", "talk")
    # the seat may reach its holding bridge while the caller is still in the dissolving one
    polls = iter(
        [("talk", "talk"), ("", "talk"), ("hold-seat", "talk"), ("hold-seat", ""), ("hold-seat", "hold-caller")]
    )
    ami.reactions["coreshowchannels"] = lambda _: place(ami, *next(polls))
    await rejoin(ami, SEAT, CALLER, "talk", sleep=clock.sleep, clock=clock)
    assert [a["Action"] for a in ami.actions] == ["Redirect", *["CoreShowChannels"] * 5, "Bridge"]
    assert ami.sent("Bridge") == [{"Action": "Bridge", "Channel1": SEAT, "Channel2": CALLER, "Tone": "no"}]


async def test_a_caller_who_leaves_meanwhile_fails_the_step_at_once() -> None:
    ami, clock = FakeAmiLink(), Clock()
    place(ami, "talk", "talk")
    ami.reactions["redirect"] = lambda _: place(ami, "hold-seat", None)
    with pytest.raises(RejoinFailed, match="left"):
        await rejoin(ami, SEAT, CALLER, "talk", sleep=clock.sleep, clock=clock)
    assert ami.sent("Bridge") == []
    assert clock.now == 0.0


async def test_channels_that_never_get_apart_fail_the_step_after_the_timeout() -> None:
    ami, clock = FakeAmiLink(), Clock()
    place(ami, "talk", "talk")  # the Redirect never took effect
    with pytest.raises(RejoinFailed, match="not apart within 5 s"):
        await rejoin(ami, SEAT, CALLER, "talk", sleep=clock.sleep, clock=clock)
    assert ami.sent("Bridge") == []  # never AMI Bridge two channels sharing a bridge: one would drop
    assert clock.now == pytest.approx(5.0, abs=0.05)


@pytest.mark.parametrize(
    ("seat", "caller", "bridged"),
    [
        ("hold-seat", "hold-caller", True),
        ("talk", "talk", False),
        ("hold-seat", "talk", False),
        ("hold-seat", "", False),
        ("hold-seat", None, False),
    ],
)
async def test_together_again_bridges_only_two_channels_waiting_apart(
    seat: str, caller: str | None, bridged: bool
) -> None:
    ami, clock = FakeAmiLink(), Clock()
    place(ami, seat, caller)
    await together_again(ami, SEAT, CALLER, "talk", sleep=clock.sleep, clock=clock)
    assert bool(ami.sent("Bridge")) is bridged
    # apart, together, or one gone: settled at the first look; a move under way: looked at for 3 s
    moving = not bridged and caller is not None and seat != caller
    assert clock.now == (pytest.approx(3.0, abs=0.06) if moving else 0.0)


async def test_together_again_waits_for_a_move_still_under_way() -> None:
    """rejoin gave up (5 s) while the caller was still on its way to its holding bridge: once it
    is there, the two are bridged — not left to wait out REJOIN_WAIT_S apart (the seat would be
    hung up, the caller sent after the seat in the middle of its conversation)."""
    ami, clock = FakeAmiLink(), Clock()
    place(ami, "hold-seat", "talk")
    polls = iter([("hold-seat", "talk"), ("hold-seat", ""), ("hold-seat", "hold-caller")])
    ami.reactions["coreshowchannels"] = lambda _: place(ami, *next(polls))
    await together_again(ami, SEAT, CALLER, "talk", sleep=clock.sleep, clock=clock)
    assert ami.sent("Bridge") == [{"Action": "Bridge", "Channel1": SEAT, "Channel2": CALLER, "Tone": "no"}]


async def test_together_again_never_raises() -> None:
    ami = FakeAmiLink()
    place(ami, "hold-seat", "hold-caller")
    ami.failing.add("bridge")
    await together_again(ami, SEAT, CALLER, "talk")
    ami.fail_at = {len(ami.actions): AmiActionFailed("CoreShowChannels failed")}
    await together_again(ami, SEAT, CALLER, "talk")
