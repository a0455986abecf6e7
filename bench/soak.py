"""Soak: one platform at 0.8× its seats' capacity for an hour — does the controller leak?

A day on one platform, compressed (real Asterisk, Redis, SIPp; Erlang-A load):
- callers arrive as a Poisson process (exponential gaps, one SIPp per caller, RTP all along);
  ``--seat-share`` press 0 for a seat, ``--message-share`` press 1 and leave a 15 s message, the
  rest hang up in the menu after a few seconds;
- seats (one SIPp UAS for all, talking RTP back) answer after ``--ring-ms`` and end the call
  after a lognormal talk time (median ``--talk-median-s``, sigma ``--talk-sigma``);
- patience applies only while waiting: the bench hangs up a caller still unbridged after their
  patience (exponential, mean ``--patience-mean-s``) through Asterisk;
- the supervisors' console polls calls, queues, seats, health and /metrics every 2 s.

The arrival rate puts the seat-bound callers at ``--load`` × capacity (seats / (ring + mean
talk)). Every ``--sample-s`` the controller's RSS and open descriptors are read from /proc; the
growth is the least-squares slope after the first tenth of the run (warm-up). Figures go to
docs/reliability.md.

Run: .venv/bin/python -m bench.soak [--minutes 60] [--seats 10] [--load 0.8]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.e2e_stack import rss_mb, seat_ids
from tests.support.audio import tone_wav
from tests.support.chaos import caller_scenario
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.seat_phones import LognormalTalk, SeatPhones
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    INVITE,
    SippCall,
    pause,
    scenario,
    stream_audio,
)

SOAK_DIALPLAN = Path(__file__).resolve().parent / "dialplans" / "soak.yaml"
KEY_AFTER_MS = 4000  # into the menu prompt
HOLD_ON_MS = 3_600_000  # callers who reach the queue hold on until hung up (by a seat, or by the bench's patience)


def menu_leaver(tone: Path, leave_after_ms: int) -> str:
    """A caller who gives up in the menu."""
    return scenario(INVITE, ANSWERED, stream_audio(tone, loops=-1), pause(leave_after_ms), CALLER_HANGS_UP)


def open_fds(pid: int | None) -> int:
    if pid is None:
        return -1
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600


@dataclass
class Tally:
    placed: dict[str, int] = field(default_factory=lambda: {"seat": 0, "message": 0, "menu": 0})
    sip_failed: int = 0
    sip_errors: list[str] = field(default_factory=list)
    patience_hangups: int = 0
    console_polls: int = 0
    console_errors: int = 0


class Soak:
    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(12345)
        self.tone = tone_wav(root / "tone.wav", seconds=2, volume=0.2)
        talk = LognormalTalk(args.talk_median_s, args.talk_sigma)
        self.phones = SeatPhones(args.ring_ms, None, root / "seat-phones", talk=talk, voice=self.tone)
        seats = seat_ids(args.seats)
        self.platform = PlatformUnderTest(
            root / "platform",
            overrides={
                "seats": [{"id": s, "name": s, "contact": self.phones.contact_for(s)} for s in seats],
                "acd": {"wrapup_s": 0, "ring_timeout_s": 10, "auto_login": seats},
                "logging": {"level": "warning", "format": "json"},
            },
        )
        self.platform.dialplan_file.write_text(SOAK_DIALPLAN.read_text(encoding="utf-8"), encoding="utf-8")
        mean_talk_s = args.talk_median_s * math.exp(args.talk_sigma**2 / 2)
        self.capacity = args.seats / (args.ring_ms / 1000 + mean_talk_s)  # seat-bound calls per second
        self.rate = args.load * self.capacity / args.seat_share
        self.patience_s: dict[str, float] = {}
        self.calls: list[SippCall] = []
        self.tally = Tally()
        self.samples: list[tuple[float, float, int, int]] = []  # (s, RSS MB, fds, channels)
        self.stop = threading.Event()

    # the parts of the day

    def arrivals(self, until: float) -> None:
        index = 0
        while time.monotonic() < until and not self.stop.is_set():
            time.sleep(self.rng.expovariate(self.rate))
            index += 1
            number = f"139{index:08d}"
            draw = self.rng.random()
            if draw < self.args.seat_share:
                kind, xml = "seat", caller_scenario(self.tone, "0", HOLD_ON_MS, KEY_AFTER_MS)
                self.patience_s[number] = self.rng.expovariate(1 / self.args.patience_mean_s)
            elif draw < self.args.seat_share + self.args.message_share:
                kind, xml = "message", caller_scenario(self.tone, "1", HOLD_ON_MS, KEY_AFTER_MS)
            else:
                kind, xml = "menu", menu_leaver(self.tone, self.rng.randint(2000, 9000))
            self.tally.placed[kind] += 1
            self.calls.append(SippCall(self.platform.config.sip.port, xml, caller=number, timeout_s=HOLD_ON_MS / 1000))
            self.reap()

    def reap(self) -> None:
        for call in [c for c in self.calls if c.finished]:
            self.calls.remove(call)
            result = call.wait()
            if not result.ok:
                self.tally.sip_failed += 1
                if len(self.tally.sip_errors) < 5:
                    self.tally.sip_errors.append(result.errors[:300])

    def patience(self) -> None:
        """Hang up, through Asterisk, the callers still waiting after their patience."""
        client = redis.Redis.from_url(self.platform.redis.url)
        hung_up: set[str] = set()
        try:
            while not self.stop.wait(0.5):
                try:
                    waiting = client.hgetall(f"hotline:acd:waiting:{self.platform.platform_id}")
                except redis.RedisError:
                    continue
                now = time.time()
                for raw in waiting.values():
                    entry: dict[str, Any] = json.loads(raw)
                    channel, caller = str(entry["channel"]), str(entry.get("caller", ""))
                    patience = self.patience_s.get(caller)
                    if patience is None or channel in hung_up or now - float(entry["entered_at"]) < patience:
                        continue
                    hung_up.add(channel)
                    self.platform.asterisk.cli(f"channel request hangup {channel}", check=False)
                    self.tally.patience_hangups += 1
        finally:
            client.close()

    def console(self) -> None:
        paths = ["/api/v1/calls?limit=50", "/api/v1/queues", "/api/v1/seats", "/api/v1/health", "/metrics"]
        while not self.stop.wait(2.0):
            for path in paths:
                try:
                    status = self.platform.http(path).status
                except OSError:
                    status = 0
                self.tally.console_polls += 1
                self.tally.console_errors += status != 200

    def sampler(self, started: float) -> None:
        while True:
            controller = self.platform.controller
            pid = controller.pid if controller is not None else None
            out = self.platform.asterisk.cli("core show channels count", check=False).stdout
            channels = next((int(w) for w in out.split() if w.isdigit()), -1)
            at, rss, fds = time.monotonic() - started, rss_mb(pid), open_fds(pid)
            self.samples.append((at, rss, fds, channels))
            print(
                f"  {at / 60:5.1f} min  RSS {rss:6.1f} MB  fds {fds:4d}"
                f"  channels {channels:4d}  placed {sum(self.tally.placed.values())}",
                flush=True,
            )
            if self.stop.wait(self.args.sample_s):
                return

    # the run

    def run(self) -> dict[str, Any]:
        self.platform.start_all()
        wait_for("every seat ready", self._seats_ready, timeout_s=60)
        started = time.monotonic()
        until = started + self.args.minutes * 60
        threads = [
            threading.Thread(target=self.patience, daemon=True),
            threading.Thread(target=self.console, daemon=True),
            threading.Thread(target=self.sampler, args=(started,), daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            self.arrivals(until)
            drain_until = time.monotonic() + 600
            while self.calls and time.monotonic() < drain_until:
                time.sleep(1)
                self.reap()
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=10)
        queues = self.platform.http("/api/v1/queues").body.get("queues", [])
        leftover = self.platform.asterisk.cli("core show channels count", check=False).stdout
        for call in self.calls:
            call.stop()
        self.phones.stop()
        self.platform.stop_all()
        return {"queues": queues, "leftover": leftover.strip().splitlines()[:1]}

    def _seats_ready(self) -> bool:
        result = self.platform.http("/api/v1/seats")
        return result.status == 200 and all(s["state"] == "ready" for s in result.body["seats"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--seats", type=int, default=10)
    parser.add_argument("--load", type=float, default=0.8, help="seat-bound arrivals as a fraction of capacity")
    parser.add_argument("--seat-share", type=float, default=0.7)
    parser.add_argument("--message-share", type=float, default=0.15)
    parser.add_argument("--ring-ms", type=int, default=1500)
    parser.add_argument("--talk-median-s", type=float, default=30.0)
    parser.add_argument("--talk-sigma", type=float, default=0.5)
    parser.add_argument("--patience-mean-s", type=float, default=60.0)
    parser.add_argument("--sample-s", type=float, default=30.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        soak = Soak(Path(tmp), args)
        print(
            f"soak: {args.minutes:g} min, {args.seats} seats, capacity {soak.capacity:.3f} seat calls/s, "
            f"arrivals {soak.rate:.3f}/s (Poisson), load {args.load:g}",
            flush=True,
        )
        extra = soak.run()

    samples = soak.samples
    warm = [s for s in samples if s[0] >= args.minutes * 60 * 0.1]
    growth = slope_per_hour([(t, rss) for t, rss, _, _ in warm])
    fd_growth = slope_per_hour([(t, float(fds)) for t, _, fds, _ in warm])
    tally = soak.tally
    general: dict[str, Any] = next((q for q in extra["queues"] if q.get("queue") == "general"), {})
    print()
    print(
        "| minutes | callers (seat / message / menu) | SIPp failures | patience hang-ups | offered | answered "
        "| abandoned | console polls (errors) | RSS start → end MB | RSS growth MB/h | fds start → end | fd growth /h |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---|---|---:|---|---:|")
    first, last = (samples[0], samples[-1]) if samples else ((0, 0.0, 0, 0), (0, 0.0, 0, 0))
    placed = tally.placed
    print(
        f"| {args.minutes:g} | {placed['seat']} / {placed['message']} / {placed['menu']} | {tally.sip_failed} "
        f"| {tally.patience_hangups} | {general.get('offered', '?')} | {general.get('answered', '?')} "
        f"| {general.get('abandoned', '?')} | {tally.console_polls} ({tally.console_errors}) "
        f"| {first[1]:.1f} → {last[1]:.1f} | {growth:+.1f} | {first[2]} → {last[2]} | {fd_growth:+.1f} |"
    )
    print(f"\nAsterisk at the end: {extra['leftover']}")
    for error in tally.sip_errors:
        print("SIPp error:", error.replace("\n", " ")[:300])


if __name__ == "__main__":
    main()
