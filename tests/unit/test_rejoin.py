"""ivr/rejoin.py on a fake AMI link: the seat and its caller go apart into holding bridges and
come together in a new bridge; one who leaves meanwhile, or a slow Asterisk, fails the step, and
a failed step never leaves them apart when they can be bridged again."""

from __future__ import annotations

import pytest

from ivr.rejoin import RejoinFailed, rejoin, together_again
from telephony.ami_types import AmiActionFailed
from telephony.dialplan_names import AFTER_REJOIN_LABEL, HOLD_CONTEXT
from tests.support.fake_ami_link import FakeAmiLink

CALLER, SEAT = "PJSIP/trunk-00000001", "PJSIP/1001-00000002"


def status(channel: str, where: str) -> dict[str, str]:
    """A channel's Status headers: "talk" the shared bridge (Bridge() ran it there), "" no bridge
    (moving), "queue" the caller's queue wait the Status still shows just after the Redirect
    (as seen on Asterisk), any other name a rejoin holding bridge of that id."""
    if where == "talk":
        return {"channel": channel, "bridgeid": "talk", "application": "Bridge", "data": "caller"}
    if where == "queue":
        return {"channel": channel, "bridgeid": "q", "application": "BridgeWait", "data": "hotline-hold,participant"}
    data = f"rejoin-{channel},participant,S(10)"
    return {"channel": channel, "bridgeid": where, "application": "BridgeWait" if where else "", "data": data}


def place(ami: FakeAmiLink, seat: str | None, caller: str | None) -> None:
    """Where Asterisk has the two channels (None: the channel is gone)."""
    ami.channels = [status(channel, where) for channel, where in ((SEAT, seat), (CALLER, caller)) if where is not None]


def polled(ami: FakeAmiLink, places: list[tuple[str | None, str | None]]) -> None:
    """Asterisk moves the channels between two polls (each poll: the seat's Status, the caller's)."""
    moves = iter(places)

    def on_status(action: dict[str, str]) -> None:
        if action["Channel"] == SEAT:
            place(ami, *next(moves))

    ami.reactions["status"] = on_status


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
    # the seat may reach its holding bridge while the caller is still in the dissolving one, or
    # still shows its queue wait
    polled(
        ami,
        [("talk", "talk"), ("", "talk"), ("hold-seat", "talk"), ("hold-seat", "queue"), ("hold-seat", ""),
         ("hold-seat", "hold-caller")],
    )  # fmt: skip
    await rejoin(ami, SEAT, CALLER, "talk", sleep=clock.sleep, clock=clock)
    assert [a["Action"] for a in ami.actions] == ["Redirect", *["Status"] * 12, "Bridge"]
    assert {a["Channel"] for a in ami.sent("Status")} == {SEAT, CALLER}  # only those two: never every channel
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
    ("seat", "caller", "after"),
    [
        ("hold-seat", "hold-caller", ["Bridge"]),
        ("talk", "talk", []),
        ("hold-seat", "talk", []),
        ("hold-seat", "queue", []),
        ("hold-seat", "", []),
        ("hold-seat", None, ["Hangup"]),  # the caller left: the seat waiting alone is hung up at once
        (None, "hold-caller", ["Redirect"]),  # the seat left: the caller goes on after the seat at once
        (None, None, []),
    ],
)
async def test_together_again_bridges_only_two_channels_waiting_apart(
    seat: str | None, caller: str | None, after: list[str]
) -> None:
    ami, clock = FakeAmiLink(), Clock()
    place(ami, seat, caller)
    await together_again(ami, SEAT, CALLER, "talk", sleep=clock.sleep, clock=clock)
    assert [a["Action"] for a in ami.actions if a["Action"] != "Status"] == after
    # apart, together, one gone, both gone: settled at the first look; a move under way: looked at for 3 s
    moving = not after and None not in (seat, caller) and seat != caller
    assert clock.now == (pytest.approx(3.0, abs=0.06) if moving else 0.0)


async def test_one_who_left_ends_the_others_wait_where_its_dialplan_goes_on() -> None:
    ami = FakeAmiLink()
    place(ami, "hold-seat", None)
    await together_again(ami, SEAT, CALLER, "talk")
    assert ami.sent("Hangup") == [{"Action": "Hangup", "Channel": SEAT, "Cause": "16"}]
    ami = FakeAmiLink()
    place(ami, None, "hold-caller")
    await together_again(ami, SEAT, CALLER, "talk")
    assert ami.sent("Redirect") == [
        {"Action": "Redirect", "Channel": CALLER, "Context": HOLD_CONTEXT, "Exten": "s", "Priority": AFTER_REJOIN_LABEL}
    ]


async def test_the_other_is_ended_once_it_reaches_its_holding_bridge() -> None:
    """The seat hung up while the caller was still on its way: once the caller waits alone it is
    sent on, not left 10 s on music; never while it is still in the seat's bridge (Bridge()'s F
    sends it on from there)."""
    ami, clock = FakeAmiLink(), Clock()
    place(ami, None, "talk")
    moves = iter([(None, "talk"), (None, ""), (None, "hold-caller")])
    ami.reactions["status"] = lambda action: place(ami, *next(moves)) if action["Channel"] == SEAT else None
    await together_again(ami, SEAT, CALLER, "talk", sleep=clock.sleep, clock=clock)
    assert [a["Action"] for a in ami.actions] == [*["Status"] * 6, "Redirect"]


async def test_together_again_waits_for_a_move_still_under_way() -> None:
    """rejoin gave up (5 s) while the caller was still on its way to its holding bridge: once it
    is there, the two are bridged — not left to wait out REJOIN_WAIT_S apart (the seat would be
    hung up, the caller sent after the seat in the middle of its conversation)."""
    ami, clock = FakeAmiLink(), Clock()
    place(ami, "hold-seat", "talk")
    polled(ami, [("hold-seat", "talk"), ("hold-seat", ""), ("hold-seat", "hold-caller")])
    await together_again(ami, SEAT, CALLER, "talk", sleep=clock.sleep, clock=clock)
    assert ami.sent("Bridge") == [{"Action": "Bridge", "Channel1": SEAT, "Channel2": CALLER, "Tone": "no"}]


async def test_together_again_never_raises() -> None:
    ami = FakeAmiLink()
    place(ami, "hold-seat", "hold-caller")
    ami.failing.add("bridge")
    await together_again(ami, SEAT, CALLER, "talk")
    ami.fail_at = {len(ami.actions): AmiActionFailed("Status: Permission denied")}
    await together_again(ami, SEAT, CALLER, "talk")
    ami.failing = {"hangup"}
    place(ami, "hold-seat", None)
    await together_again(ami, SEAT, CALLER, "talk")
