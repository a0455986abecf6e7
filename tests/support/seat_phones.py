"""Seat phones for load and fault runs: one SIPp UAS that answers for every seat.

Every seat's static contact points at the same SIPp with a different user part, so 50 seats
cost one process. One call at a time per seat is the ACD's job (ours, or app_queue's
``ringinuse=no``), not the phone's. Used by the benches (bench/) and the fault suite.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_media_port, free_tcp_and_udp_port
from tests.support.sipp import (
    KEEP_DIALOG,
    OK,
    OK_WITH_SDP,
    REQUEST_TERMINATED,
    RINGING,
    UAS_BYE,
    scenario,
    stream_audio,
)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a SIPp that may still run (it waits for calls), kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class LognormalTalk:
    """Seats end their calls after a lognormal talk time (SIPp's own ``pause`` distribution)."""

    median_s: float
    sigma: float  # of the talk time's logarithm

    def pause(self) -> str:
        mean = math.log(self.median_s * 1000)  # SIPp: mean and stdev of ln(milliseconds)
        return f'  <pause distribution="lognormal" mean="{mean:.4f}" stdev="{self.sigma:.4f}"/>\n'


def seat_scenario(
    ring_ms: int, talk_ms: int | None, talk: LognormalTalk | None = None, voice: Path | None = None
) -> str:
    """A seat phone: rings ``ring_ms`` then answers; a CANCEL during the ring (the caller
    left, or our ACD withdrew the offer) ends it cleanly; once answered it waits for BYE, or
    hangs up itself after ``talk_ms``. SIPp's ``recv timeout/ontimeout`` is what lets one
    scenario wait and still hear the other side end the call. With ``talk`` the seat hangs up
    after a lognormal talk time instead (and must not be hung up on: a caller's BYE during it
    fails the call); with ``voice`` it talks (RTP) all along."""
    invite = f'\n  <recv request="INVITE" rrs="true">{KEEP_DIALOG}</recv>\n'
    cancelled = f'\n  <recv request="CANCEL" timeout="{ring_ms}" ontimeout="answer"/>\n'
    cancelled += OK + REQUEST_TERMINATED + '  <recv request="ACK" next="end"/>\n'
    answer = '  <label id="answer"/>\n' + OK_WITH_SDP + '  <recv request="ACK"/>\n'
    if voice is not None:
        answer += stream_audio(voice, loops=-1)
    if talk is not None:
        answer += talk.pause() + '  <nop next="seatbye"/>\n'
    else:
        timeout = f' timeout="{talk_ms}" ontimeout="seatbye"' if talk_ms else ""
        answer += f'  <recv request="BYE"{timeout}/>\n'
    ended_by_them = OK + '  <nop next="end"/>\n'
    hangs_up = '  <label id="seatbye"/>\n' + UAS_BYE + '  <recv response="200" next="end"/>\n'
    body = invite + RINGING + cancelled + answer + ended_by_them + hangs_up + '  <label id="end"/>\n'
    return scenario(body)


class SeatPhones:
    """One SIPp UAS that answers for every seat (``contact_for(seat)``)."""

    def __init__(
        self,
        ring_ms: int,
        talk_ms: int | None,
        folder: Path,
        talk: LognormalTalk | None = None,
        voice: Path | None = None,
    ) -> None:
        self.port = free_tcp_and_udp_port()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "seats.xml").write_text(seat_scenario(ring_ms, talk_ms, talk, voice), encoding="utf-8")
        command = [
            "sipp", "-sf", str(folder / "seats.xml"), "-i", "127.0.0.1", "-p", str(self.port),
            "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-m", "10000000", "-nostdin",
            "-trace_err", "-error_file", str(folder / "seats-errors.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def contact_for(self, seat_id: str) -> str:
        return f"sip:{seat_id}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self._proc)
