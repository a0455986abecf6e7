"""SIPp callers for the end-to-end ACD bench (the seats: tests/support/seat_phones.py)."""

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
    scenario,
)


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
