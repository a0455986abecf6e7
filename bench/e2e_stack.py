"""The platform the end-to-end ACD bench runs on: one Asterisk serving both systems.

Our ACD answers 12345 (IVR → queue node → hold context, seat-first offers). The baseline is
an extra app_queue, appended to the rendered Asterisk files before Asterisk starts, on the
same seats (static members) and reached by its own number on the same trunk, so the two are
compared on one Asterisk, one set of phones, one machine state.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from telephony.config import AsteriskConfig
from telephony.dialplan_names import TRUNK_CONTEXT
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.ports import rtp_range

BASELINE_NUMBER = "88812345"
BASELINE_QUEUE = "bench-baseline"
OURS_NUMBER = "12345"
BENCH_DIALPLAN = Path(__file__).resolve().parent / "dialplans" / "queue.yaml"
RTP_PORTS = 8000  # two per call leg: thousands, or the range caps the load (DESIGN.md)
_TICKS = os.sysconf("SC_CLK_TCK")


def shipped_asterisk_settings() -> dict[str, Any]:
    """What the test platforms change for their assertions and a bench must not: Asterisk's
    verbosity (tests read prompts and dials at 3) and the AMI keep-alive (tests ping every second
    to see a dead Asterisk fast; shipped every 5 s: a Ping costs Asterisk and the controller a
    wake-up each, charged to the calls of that second)."""
    fields = AsteriskConfig.model_fields
    return {name: fields[name].default for name in ("verbose", "ami_ping_interval_s", "ami_ping_timeout_s")}


def seat_ids(count: int) -> list[str]:
    return [str(2001 + index) for index in range(count)]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc: per-process
    figures are trustworthy on these VMs, system-wide ones are not."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else 0.0


def _baseline_queue(seats: list[str], ring_timeout_s: float) -> str:
    """app_queue as close to our ACD as it goes: longest idle (leastrecent), one call per seat
    (ringinuse=no), same ring timeout, no wrap-up, no announcements, several callers placed
    at once (autofill)."""
    members = "".join(f"member => PJSIP/{seat},0,{seat}\n" for seat in seats)
    return (
        f"\n[{BASELINE_QUEUE}]\nstrategy = leastrecent\ntimeout = {int(ring_timeout_s)}\nretry = 1\n"
        "ringinuse = no\nwrapuptime = 0\nautofill = yes\njoinempty = yes\nleavewhenempty = no\n"
        "announce-frequency = 0\nperiodic-announce-frequency = 0\nannounce-holdtime = no\n"
        f"musicclass = default\n{members}"
    )


def _baseline_extension(max_wait_s: int = 120) -> str:
    return (
        f"\n[{TRUNK_CONTEXT}]\nexten => {BASELINE_NUMBER},1,Answer()\n"
        f" same => n,Queue({BASELINE_QUEUE},,,,{max_wait_s})\n same => n,Hangup()\n"
    )


@dataclass
class BenchStack:
    """Redis, Asterisk (with the baseline queue) and, for our phase, the controller."""

    platform: PlatformUnderTest
    seats: list[str]

    @classmethod
    def create(
        cls,
        root: Path,
        contacts: dict[str, str],
        ring_timeout_s: float,
        dialplan: Path = BENCH_DIALPLAN,
        max_wait_s: int = 120,
    ) -> BenchStack:
        """``dialplan`` (ours) and ``max_wait_s`` (app_queue's Queue() timeout) should agree."""
        rtp_min, rtp_max = rtp_range(RTP_PORTS)
        seats = list(contacts)
        overrides: dict[str, Any] = {
            "sip": {"rtp_port_min": rtp_min, "rtp_port_max": rtp_max},
            "seats": [{"id": s, "name": s, "contact": c} for s, c in contacts.items()],
            "acd": {
                "strategy": "longest_idle",
                "ring_timeout_s": ring_timeout_s,
                "wrapup_s": 0,
                "announce_every_s": 0,
                "max_missed_offers": 10,
                "auto_login": seats,
            },
            # app_queue records nothing here: neither do we, so both do the same media work
            "recordings": {"enabled": False},
            "asterisk": shipped_asterisk_settings(),
        }
        platform = PlatformUnderTest(root, overrides=overrides, dialplan="queue")
        platform.dialplan_file.write_text(dialplan.read_text(encoding="utf-8"), encoding="utf-8")
        etc = root / "asterisk-etc"
        with (etc / "queues.conf").open("a", encoding="utf-8") as queues:
            queues.write(_baseline_queue(seats, ring_timeout_s))
        with (etc / "extensions.conf").open("a", encoding="utf-8") as extensions:
            extensions.write(_baseline_extension(max_wait_s))
        return cls(platform, seats)

    def start_asterisk(self) -> None:
        self.platform.redis.start()
        self.platform.asterisk.start()

    def start_controller(self, environment: dict[str, str] | None = None) -> None:
        """Start ours and wait until every seat is logged in and ready (auto_login)."""
        self.platform.start_controller(environment=environment)
        wait_for("every seat ready", lambda: self.not_ready_seats() == 0, timeout_s=30)

    def stop_controller(self) -> None:
        self.platform.stop_controller()

    def stop(self) -> None:
        self.platform.stop_all()

    # what the measurements read

    @property
    def asterisk_pid(self) -> int | None:
        return self.platform.asterisk.pid

    @property
    def controller_pid(self) -> int | None:
        controller = self.platform.controller
        return controller.pid if controller is not None else None

    @property
    def redis_pid(self) -> int | None:
        client = redis.Redis.from_url(self.platform.redis.url)
        try:
            return int(client.info("server")["process_id"])
        finally:
            client.close()

    def redis_stats(self) -> tuple[int, int]:
        """Redis's read events (one per pipeline or lone command received) and commands so far."""
        client = redis.Redis.from_url(self.platform.redis.url)
        try:
            stats = client.info("stats")
            return int(stats["total_reads_processed"]), int(stats["total_commands_processed"])
        finally:
            client.close()

    def active_channels(self) -> int:
        out = self.platform.asterisk.cli("core show channels count", check=False).stdout
        found = re.search(r"(\d+) active channels?", out)
        return int(found.group(1)) if found else -1

    def channel_list(self) -> str:
        """Asterisk's own list of the channels still up (for a report of leftovers)."""
        return self.platform.asterisk.cli("core show channels concise", check=False).stdout.strip()

    def wait_quiet(self, timeout_s: float = 20.0) -> int:
        """Wait for Asterisk to have no channel left; the count left over (0 = clean)."""
        deadline = time.monotonic() + timeout_s
        left = self.active_channels()
        while left != 0 and time.monotonic() < deadline:
            time.sleep(0.5)
            left = self.active_channels()
        return left

    def not_ready_seats(self) -> int:
        """Our seats not back to ready (stuck ringing, on call, or paused after missed offers)."""
        result = self.platform.http("/api/v1/seats")
        if result.status != 200:
            return -1
        return sum(1 for seat in result.body["seats"] if seat["state"] != "ready")

    def ours_waiting(self) -> int:
        result = self.platform.http("/api/v1/queues")
        if result.status != 200:
            return -1
        return sum(int(q.get("waiting_now", 0)) for q in result.body["queues"])

    def baseline_busy_members(self) -> int:
        """app_queue members it still considers in use (stuck) after the calls ended."""
        out = self.platform.asterisk.cli(f"queue show {BASELINE_QUEUE}", check=False).stdout
        return sum(1 for line in out.splitlines() if "PJSIP/" in line and ("In use" in line or "Busy" in line))
