"""The Erlang-A bench's callers: Poisson arrivals and per-caller patience, played by SIPp.

One SIPp process per load step places all of the step's callers: it creates them quickly, and
each first pauses until its own arrival time (a SIPp injection file gives every call its
number and its delay: ``<pause variable=…>``), so the INVITEs follow the drawn Poisson process
exactly. A caller streams a tone (RTP) from the moment it is answered and never hangs up by
itself: the seat ends the conversation (lognormal talk, tests/support/seat_phones.py) or the
bench hangs the caller up through Asterisk when its patience runs out while waiting
(bench/erlang_ami.py). The arrival times, patience draws and the sequence of talk times (the
seat phones' injection file) of a repeat are the same for both ACDs (common random numbers).
"""

from __future__ import annotations

import math
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_media_port, free_tcp_and_udp_port
from tests.support.seat_phones import LognormalTalk, seat_scenario, stop_process
from tests.support.sipp import ANSWERED, HOTLINE_HANGS_UP, INVITE, scenario, stream_audio

CREATE_PER_S = 200  # SIPp creates the calls this fast; each then waits for its arrival time
HOLD_ON_S = 3600  # the caller's own limit: far beyond any wait plus talk


@dataclass(frozen=True)
class Caller:
    number: str
    arrival_s: float  # from the step's start
    patience_s: float


@dataclass(frozen=True)
class Shape:
    """Seats, ring, talk and patience: what capacity and load are measured against."""

    seats: int
    ring_s: float
    talk_median_s: float
    talk_sigma: float
    patience_mean_s: float

    @property
    def mean_talk_s(self) -> float:
        return self.talk_median_s * math.exp(self.talk_sigma**2 / 2)

    @property
    def capacity(self) -> float:
        """Calls per second the seats can complete: seats / (ring + mean talk)."""
        return self.seats / (self.ring_s + self.mean_talk_s)


def draw_callers(rng: random.Random, rate: float, seconds: float, patience_mean_s: float, prefix: str) -> list[Caller]:
    """Poisson arrivals at ``rate`` per second for ``seconds``, each with an exponential
    patience of mean ``patience_mean_s``; numbers ``prefix`` + a 4-digit index (11 digits)."""
    callers: list[Caller] = []
    at = rng.expovariate(rate)
    while at < seconds:
        number = f"{prefix}{len(callers):04d}"
        callers.append(Caller(number, at, rng.expovariate(1 / patience_mean_s)))
        at += rng.expovariate(rate)
    return callers


def injection_file(callers: list[Caller]) -> str:
    """SIPp's ``-inf`` text: call ``i`` is created at ``i / CREATE_PER_S`` and pauses the rest
    of the way to its arrival time (field0 number, field1 delay in ms)."""
    lines = ["SEQUENTIAL"]
    for index, caller in enumerate(callers):
        delay_ms = max(0, round(caller.arrival_s * 1000 - index * 1000 / CREATE_PER_S))
        lines.append(f"{caller.number};{delay_ms}")
    return "\n".join(lines) + "\n"


def _from_field(part: str) -> str:
    return part.replace("[caller]", "[field0]").replace("[caller_name]", "")


def caller_scenario(tone: Path) -> str:
    """Wait for the arrival time, call, talk (a tone) once answered, hold on until the hotline
    hangs up (a seat ending the conversation, or the bench's patience)."""
    wait = (
        '  <nop><action><assignstr assign_to="d" value="[field1]"/>'
        '<todouble assign_to="delay" variable="d"/></action></nop>\n'
        '  <pause variable="delay"/>\n'
    )
    return scenario(wait, _from_field(INVITE), _from_field(ANSWERED), stream_audio(tone, loops=-1), HOTLINE_HANGS_UP)


class CallerRun:
    """One SIPp placing one step's callers in the background."""

    def __init__(self, folder: Path, sip_port: int, number: str, callers: list[Caller], tone: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.calls = len(callers)
        (folder / "caller.xml").write_text(caller_scenario(tone), encoding="utf-8")
        (folder / "callers.csv").write_text(injection_file(callers), encoding="utf-8")
        last_s = max((c.arrival_s for c in callers), default=0.0)
        command = [
            "sipp", f"127.0.0.1:{sip_port}", "-s", number, "-sf", "caller.xml", "-inf", "callers.csv",
            "-i", "127.0.0.1", "-p", str(free_tcp_and_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port()),
            "-r", str(CREATE_PER_S), "-rp", "1000", "-m", str(max(1, self.calls)), "-l", str(self.calls + 10),
            "-nostdin", "-timeout", f"{int(last_s + HOLD_ON_S)}s", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
            "-trace_err", "-error_file", "errors.log",
        ]  # fmt: skip
        self._proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def finished(self) -> bool:
        return self._proc.poll() is not None

    def stop(self) -> None:
        stop_process(self._proc)

    def failed(self) -> int:
        """Calls SIPp counts as failed (from its last statistics row); -1 if unknown."""
        stat = self.folder / "stat.csv"
        if not stat.exists():
            return -1
        rows = stat.read_text(errors="replace").splitlines()
        if len(rows) < 2:
            return -1
        header, last = rows[0].split(";"), rows[-1].split(";")
        try:
            return int(last[header.index("FailedCall(C)")])
        except (ValueError, IndexError):
            return -1


class InjectedTalk(LognormalTalk):
    """A seat's talk time read from its line of the injection file (field0, milliseconds):
    the n-th call a seat phone answers talks the n-th drawn time, for both ACDs alike."""

    def pause(self) -> str:
        return (
            '  <nop><action><assignstr assign_to="t" value="[field0]"/>'
            '<todouble assign_to="talk" variable="t"/></action></nop>\n'
            '  <pause variable="talk"/>\n'
        )


def draw_talks(rng: random.Random, median_s: float, sigma: float, count: int) -> list[int]:
    """Lognormal talk times in milliseconds."""
    return [round(rng.lognormvariate(math.log(median_s * 1000), sigma)) for _ in range(count)]


class SeatBank:
    """One SIPp UAS for every seat of one phase (tests/support/seat_phones.py's scenario), its
    talk times from an injection file: the same sequence of talk times for both ACDs."""

    def __init__(self, folder: Path, ring_ms: int, talks_ms: list[int], voice: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_tcp_and_udp_port()
        talk = InjectedTalk(1.0, 0.0)
        (folder / "seats.xml").write_text(seat_scenario(ring_ms, None, talk, voice), encoding="utf-8")
        (folder / "talk.csv").write_text("SEQUENTIAL\n" + "".join(f"{t}\n" for t in talks_ms), encoding="utf-8")
        command = [
            "sipp", "-sf", "seats.xml", "-inf", "talk.csv", "-i", "127.0.0.1", "-p", str(self.port),
            "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-m", "10000000", "-nostdin",
            "-trace_err", "-error_file", "seats-errors.log",
        ]  # fmt: skip
        self._proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def contact_for(self, seat_id: str) -> str:
        return f"sip:{seat_id}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self._proc)
