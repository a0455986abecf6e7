"""SIPp for the end-to-end ACD bench: one UAS playing every seat, and a caller load generator.

The seats are one SIPp process on one port: every seat's static contact points at it with a
different user part, so 50 seats cost one process. One call at a time per seat is the ACD's
job (ours, or app_queue's ``ringinuse=no``), not the phone's.
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_media_port, free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    HOTLINE_HANGS_UP,
    INVITE,
    KEEP_DIALOG,
    OK,
    OK_WITH_SDP,
    REQUEST_TERMINATED,
    RINGING,
    UAS_BYE,
    scenario,
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


def seat_scenario(ring_ms: int, talk_ms: int | None) -> str:
    """A seat phone: rings ``ring_ms`` then answers; a CANCEL during the ring (the caller
    left, or our ACD withdrew the offer) ends it cleanly; once answered it waits for BYE, or
    hangs up itself after ``talk_ms``. SIPp's ``recv timeout/ontimeout`` is what lets one
    scenario wait and still hear the other side end the call."""
    invite = f'\n  <recv request="INVITE" rrs="true">{KEEP_DIALOG}</recv>\n'
    cancelled = f'\n  <recv request="CANCEL" timeout="{ring_ms}" ontimeout="answer"/>\n'
    cancelled += OK + REQUEST_TERMINATED + '  <recv request="ACK" next="end"/>\n'
    talk = f' timeout="{talk_ms}" ontimeout="seatbye"' if talk_ms else ""
    answer = '  <label id="answer"/>\n' + OK_WITH_SDP + '  <recv request="ACK"/>\n'
    answer += f'  <recv request="BYE"{talk}/>\n'
    ended_by_them = OK + '  <nop next="end"/>\n'
    hangs_up = '  <label id="seatbye"/>\n' + UAS_BYE + '  <recv response="200" next="end"/>\n'
    body = invite + RINGING + cancelled + answer + ended_by_them + hangs_up + '  <label id="end"/>\n'
    return scenario(body)


def _unique_caller(part: str) -> str:
    return part.replace("[caller]", "1390000[call_number]").replace("[caller_name]", "")


def caller_scenario(patience_ms: int) -> str:
    """A caller who hangs up ``patience_ms`` after the hotline answers, connected to a seat or
    not (the queue answers first in both systems, so patience counts from the same moment),
    unless the hotline ends the call first (a seat that hangs up; whether a seat was ever
    reached is read from Asterisk's events, not from SIPp)."""
    patience = f'  <recv request="BYE" timeout="{patience_ms}" ontimeout="callerbye"/>\n'
    ended_by_hotline = HOTLINE_HANGS_UP.replace('<recv request="BYE"/>', "") + '  <nop next="end"/>\n'
    hang_up = '  <label id="callerbye"/>\n' + _unique_caller(CALLER_HANGS_UP) + '  <label id="end"/>\n'
    return scenario(_unique_caller(INVITE), _unique_caller(ANSWERED), patience, ended_by_hotline, hang_up)


class SeatPhones:
    """One SIPp UAS that answers for every seat (``contact_for(seat)``)."""

    def __init__(self, ring_ms: int, talk_ms: int | None, folder: Path) -> None:
        self.port = free_tcp_and_udp_port()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "seats.xml").write_text(seat_scenario(ring_ms, talk_ms), encoding="utf-8")
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


@dataclass(frozen=True)
class CallerLoad:
    """What SIPp itself says about a caller run (SIP-level success and failure)."""

    placed: int
    successful: int
    failed: int
    errors_excerpt: str


def _last_stats(stat_file: Path) -> tuple[int, int, int]:
    """Created, successful and failed calls from SIPp's ``-trace_stat`` CSV (last row)."""
    if not stat_file.exists():
        return 0, 0, 0
    rows = list(csv.DictReader(stat_file.open(encoding="utf-8", errors="replace"), delimiter=";"))
    if not rows:
        return 0, 0, 0
    last = rows[-1]
    return int(last["TotalCallCreated"]), int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])


def run_callers(sip_port: int, number: str, rate: float, calls: int, patience_ms: int) -> CallerLoad:
    """Place ``calls`` callers at ``rate`` per second to ``number``; blocks until all ended."""
    with tempfile.TemporaryDirectory(prefix="bench-callers-") as tmp:
        folder = Path(tmp)
        (folder / "caller.xml").write_text(caller_scenario(patience_ms), encoding="utf-8")
        budget_s = int(calls / rate + patience_ms / 1000 + 60)
        command = [
            "sipp", f"127.0.0.1:{sip_port}", "-s", number, "-sf", str(folder / "caller.xml"),
            "-i", "127.0.0.1", "-p", str(free_tcp_and_udp_port()), "-mi", "127.0.0.1",
            "-mp", str(free_media_port()), "-r", str(int(rate * 1000)), "-rp", "1000000",
            "-m", str(calls), "-l", "5000", "-nostdin", "-timeout", f"{budget_s}s",
            "-trace_stat", "-stf", str(folder / "stat.csv"), "-fd", "1",
            "-trace_err", "-error_file", str(folder / "errors.log"),
        ]  # fmt: skip
        subprocess.run(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        placed, ok, failed = _last_stats(folder / "stat.csv")
        errors = folder / "errors.log"
        excerpt = errors.read_text(errors="replace")[:1500] if errors.exists() else ""
    return CallerLoad(placed, ok, failed, excerpt)
