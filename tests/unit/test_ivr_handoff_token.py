"""The hand-off token reaches the IVR as its AGI argument: capped by the dialplan, checked here."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any, cast

import pytest

from ivr.entry import IvrEntry
from telephony.agi_protocol import AgiEnvironment


class Budget:
    def step(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


class Handoffs:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def picked_up_on_call_path(self, token: str, *_: object) -> tuple[None]:
        self.asked.append(token)
        return (None,)


@pytest.mark.parametrize("token", ["a" * 65, "abc*", "ab\ncd", "键" * 3])
async def test_a_malformed_token_is_not_looked_up(token: str) -> None:
    handoffs = Handoffs()
    entry = IvrEntry(cast(Any, None), cast(Any, None), cast(Any, SimpleNamespace(handoffs=handoffs)))
    session = SimpleNamespace(env=AgiEnvironment(variables={}, script="ivr", arguments={"arg1": token}))
    assert await entry._picked_up(cast(Any, session), "1.1", "queue") is None
    assert handoffs.asked == []


async def test_a_well_formed_token_is_looked_up() -> None:
    handoffs = Handoffs()
    entry = IvrEntry(
        cast(Any, None),
        cast(Any, None),
        cast(Any, SimpleNamespace(handoffs=handoffs, budget=Budget(), platform="kunming", clock=lambda: None)),
    )
    session = SimpleNamespace(env=AgiEnvironment(variables={}, script="ivr", arguments={"arg1": "0f" * 12}))
    assert await entry._picked_up(cast(Any, session), "1.1", "queue") is None  # unknown token
    assert handoffs.asked == ["0f" * 12]
