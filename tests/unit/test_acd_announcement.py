"""The waiting caller's announcement (acd/agi.py QueueAnnouncement): its place, then the expected
wait; nothing more once the caller is bound to a seat (the seat waits for the caller to be back
in its holding bridge, hotline-offer: the sooner the better)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.agi import QueueAnnouncement
from acd.model import QueuePosition
from telephony.agi_protocol import AgiEnvironment


class Positions:
    """The engine's answer for the one caller, and who asked."""

    def __init__(self, where: QueuePosition | None) -> None:
        self.where = where
        self.asked: list[str] = []

    def position(self, call_id: str) -> QueuePosition | None:
        self.asked.append(call_id)
        return self.where


class Session:
    """The caller's FastAGI session: the prompts played; ``bind_after`` prompts the caller is
    bound to a seat (the engine no longer has it waiting)."""

    def __init__(self, positions: Positions, bind_after: int | None = None) -> None:
        self.env = AgiEnvironment({"agi_uniqueid": "kunming-1.2"}, "announce", {})
        self.played: list[str] = []
        self._positions = positions
        self._bind_after = bind_after

    async def stream_file(self, path: str, escape_digits: str = "") -> str:
        self.played.append(Path(path).name)
        if self._bind_after is not None and len(self.played) >= self._bind_after:
            self._positions.where = None
        return ""


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (QueuePosition(position=1, expected_wait_s=30.0), ["queue_next", "queue_wait_1"]),
        (QueuePosition(position=4, expected_wait_s=250.0), ["queue_ahead_3", "queue_wait_5"]),
        (QueuePosition(position=15, expected_wait_s=3600.0), ["queue_ahead_many", "queue_wait_many"]),
    ],
)
async def test_a_waiting_caller_hears_its_place_then_the_expected_wait(
    tmp_path: Path, where: QueuePosition, expected: list[str]
) -> None:
    positions = Positions(where)
    session = Session(positions)
    await QueueAnnouncement(positions, tmp_path)(session)
    assert session.played == expected
    assert positions.asked == ["kunming-1.2", "kunming-1.2"]  # asked again between the prompts


async def test_a_caller_bound_during_its_place_hears_no_expected_wait(tmp_path: Path) -> None:
    """Bound to a seat while the first prompt played: the AGI ends there, the caller goes back to
    its holding bridge, where the seat's Bridge() moves it (never a masquerade)."""
    positions = Positions(QueuePosition(position=2, expected_wait_s=60.0))
    session = Session(positions, bind_after=1)
    await QueueAnnouncement(positions, tmp_path)(session)
    assert session.played == ["queue_ahead_1"]


async def test_a_caller_no_longer_waiting_hears_nothing(tmp_path: Path) -> None:
    positions = Positions(None)
    session = Session(positions)
    await QueueAnnouncement(positions, tmp_path)(session)
    assert session.played == []
    assert positions.asked == ["kunming-1.2"]
