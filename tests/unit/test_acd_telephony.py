"""What the ACD asks of Asterisk (acd/telephony.py): a seated caller's three Setvar actions
go out at once, in order, and their replies are awaited together."""

from __future__ import annotations

import asyncio

import pytest

from acd.telephony import AcdTelephony
from telephony.ami_types import AmiActionFailed
from telephony.dialplan_names import MAX_WAIT_VARIABLE, SEATED_VARIABLE
from tests.support.fake_ami_link import FakeAmiLink
from tests.support.waiting import wait_until

CHANNEL = "PJSIP/trunk-0000001a"
SEATED = [
    {"Action": "Setvar", "Channel": CHANNEL, "Variable": "TIMEOUT(absolute)", "Value": "0"},
    {"Action": "Setvar", "Channel": CHANNEL, "Variable": MAX_WAIT_VARIABLE, "Value": "0"},
    {"Action": "Setvar", "Channel": CHANNEL, "Variable": SEATED_VARIABLE, "Value": "1"},
]


async def test_the_three_setvars_of_a_seated_caller_are_sent_before_any_reply_in_order() -> None:
    ami = FakeAmiLink()
    ami.gates["setvar"] = asyncio.Event()  # Asterisk has not replied to any yet
    seated = asyncio.create_task(AcdTelephony(ami, 15).seated(CHANNEL))
    await wait_until(lambda: len(ami.actions) == 3)
    assert ami.actions == SEATED
    assert not seated.done()  # it waits for the replies
    ami.gates["setvar"].set()
    async with asyncio.timeout(5):
        await seated


async def test_a_refused_setvar_is_raised_after_every_reply_and_the_others_were_still_sent() -> None:
    ami = FakeAmiLink()
    ami.fail_at[1] = AmiActionFailed("Setvar: No such channel")
    with pytest.raises(AmiActionFailed, match="No such channel"):
        await AcdTelephony(ami, 15).seated(CHANNEL)
    assert ami.actions == SEATED
