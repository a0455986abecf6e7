"""Soak of the whole province: every platform (``make run PLATFORMS=all``: one Redis, one
Asterisk per platform, all controllers in one process) at a realistic mix, against the same
mix on one platform measured first in the same invocation.

Per platform the mix is bench/soak.py's (real Asterisk, Redis, SIPp; bench/dialplans/soak.yaml
as every platform's dialplan): callers arrive as a Poisson process at ``--calls-per-min`` per
platform, ``--seat-share`` press 0 for a seat (``--seats`` per platform, SIPp, lognormal talk),
``--message-share`` press 1 and leave a 15 s message, the rest give up in the menu; a caller
waiting ``--max-wait-s`` leaves a message. A supervisors' console polls every platform's calls,
queues, seats and health every ``--poll-s``.

Phase 1 runs the first platform alone for ``--single-minutes``, phase 2 all of them for
``--minutes``. Each phase measures, after a warm-up (a tenth, at least 30 s), per call placed:
CPU of the controllers' process, of the Asterisks and of Redis (/proc/<pid>/stat utime+stime)
and Redis commands (INFO commandstats); and every ``--sample-s`` the RSS of the controllers'
process and of each Asterisk and Redis's used_memory: start, end, least-squares growth per hour.

Run: .venv/bin/python -m bench.soak_province [--minutes 60] [--single-minutes 10] [--platforms all]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from bench.e2e_stack import cpu_seconds, rss_mb
from bench.soak import KEY_AFTER_MS, SOAK_DIALPLAN, menu_leaver, slope_per_hour
from hotline.config import Config, load_config
from hotline.network import network_configs, platform_ids
from tests.support.audio import tone_wav
from tests.support.chaos import caller_scenario
from tests.support.platform import wait_for
from tests.support.ports import free_port
from tests.support.seat_phones import LognormalTalk, SeatPhones
from tests.support.sipp import SippCall
from web.auth import token_sha256

REPO = Path(__file__).resolve().parents[1]
TOKEN = "soak-admin-token"  # noqa: S105 (the bench's own stack, on loopback)
HOLD_ON_S = 3600.0
RTP_BASE = 43000  # platform i: 43000 + 1000·i … (hotline/network.py)
UDP, TCP = socket.SOCK_DGRAM, socket.SOCK_STREAM


def free_block(count: int) -> int:
    """A base port B with B+10·i+{0,1,2,3} free for i < count (SIP udp+tcp, AMI, FastAGI, HTTP)."""
    for _ in range(200):
        base = random.randrange(61000, 65535 - 10 * count - 4, 10)
        try:
            for i in range(count):
                for offset, kind in ((0, UDP), (0, TCP), (1, TCP), (2, TCP), (3, TCP)):
                    with socket.socket(socket.AF_INET, kind) as sock:
                        sock.bind(("127.0.0.1", base + 10 * i + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no free block of ports")


def identity(path: Path) -> tuple[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return str(data["name"]), str(data["area_code"])


def write_setup(root: Path, ids: list[str], args: argparse.Namespace) -> Path:
    """Every platform's dialplan (soak.yaml with its identity), the shared files, config.yaml."""
    dialplans = root / "dialplans"
    dialplans.mkdir(parents=True)
    soak = SOAK_DIALPLAN.read_text(encoding="utf-8").replace("max_wait_s: 600", f"max_wait_s: {args.max_wait_s}")
    for platform in ids:
        name, area = identity(REPO / "dialplans" / f"{platform}.yaml")
        text = soak.replace("platform: kunming", f"platform: {platform}").replace("name: 昆明市12345", f"name: {name}")
        (dialplans / f"{platform}.yaml").write_text(text.replace('area_code: "0871"', f'area_code: "{area}"'))
    for shared in ("directory.yaml", "caller_lists.yaml"):
        shutil.copy(REPO / "dialplans" / shared, dialplans / shared)
    name, area = identity(REPO / "dialplans" / f"{ids[0]}.yaml")
    base = free_block(len(ids))
    data = {
        "platform": {"id": ids[0], "name": name, "area_code": area},
        "sip": {"port": base, "rtp_port_min": RTP_BASE, "rtp_port_max": RTP_BASE + 999},
        "asterisk": {"ami_port": base + 1},
        "agi": {"port": base + 2},
        "http": {"port": base + 3, "tokens": [{"name": "soak", "role": "admin", "sha256": token_sha256(TOKEN)}]},
        "redis": {"url": f"redis://127.0.0.1:{free_port()}/0"},
        "acd": {"wrapup_s": 0, "ring_timeout_s": 10, "require_disposition": False},
        "paths": {"runtime_dir": "var", "spool_dir": "var/spool", "prompts_dir": str(REPO / "prompts")},
        "units": {"dir": str(REPO / "directory")},
        "knowledge": {"dir": str(REPO / "knowledge_base")},
        "logging": {"level": "warning", "format": "json"},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def http(config: Config, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{config.http.port}{path}")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (http://127.0.0.1 only)
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as err:
        return err.code, None
    except OSError:
        return 0, None
    return status, json.loads(raw) if raw.startswith(b"{") else None


def asterisk_pid(config: Config) -> int | None:
    try:
        return int((config.paths.runtime_dir / "asterisk" / "run" / "asterisk.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"}


@dataclass
class Snapshot:
    placed: int
    controller_s: float
    asterisk_s: float
    redis_s: float
    commands: dict[str, int]


@dataclass
class PhaseResult:
    name: str
    platforms: int
    measured_s: float = 0.0
    placed: dict[str, int] = field(default_factory=lambda: {"seat": 0, "message": 0, "menu": 0})
    sip_failed: int = 0
    console_polls: int = 0
    console_errors: int = 0
    per_call: dict[str, float] = field(default_factory=dict)
    top_commands: list[tuple[str, float]] = field(default_factory=list)
    samples: list[tuple[float, float, list[float], float]] = field(default_factory=list)  # s, ctl, asterisks, redis
    exit_code: int | None = None


class Phase:
    def __init__(
        self, root: Path, config_path: Path, ids: list[str], *, phones: SeatPhones, tone: Path, args: Any
    ) -> None:
        self.args, self.tone, self.root = args, tone, root
        self.rng = random.Random(12345)
        self.configs = network_configs(load_config(config_path), ids)
        self.result = PhaseResult("1 platform" if len(ids) == 1 else f"{len(ids)} platforms", len(ids))
        self.stop = threading.Event()
        self.calls: list[SippCall] = []
        self.index = 0
        seats = {
            c.platform.id: [
                {"id": s, "name": s, "contact": phones.contact_for(s)}
                for s in (str(3000 + 10 * i + k) for k in range(args.seats))
            ]
            for i, c in enumerate(self.configs)
        }
        (root / "seats.json").write_text(json.dumps(seats), encoding="utf-8")
        command = [sys.executable, "-m", "bench.soak_province_stack", "--config", str(config_path)]
        command += ["--platforms", ",".join(ids), "--seats", str(root / "seats.json")]
        with (root / f"stack-{len(ids)}.log").open("ab") as log:
            self.stack = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def ready(self) -> bool:
        for config in self.configs:
            status, body = http(config, "/api/v1/seats")
            if status != 200 or not all(s["state"] == "ready" for s in body["seats"]):
                return False
        return True

    def snapshot(self, client: redis.Redis) -> Snapshot:
        redis_pid = int(client.info("server")["process_id"])
        asterisks = sum(cpu_seconds(asterisk_pid(c)) for c in self.configs)
        placed = sum(self.result.placed.values())
        return Snapshot(placed, cpu_seconds(self.stack.pid), asterisks, cpu_seconds(redis_pid), command_calls(client))

    def arrivals(self, until: float) -> None:
        rate = self.args.calls_per_min / 60 * len(self.configs)
        while True:
            gap = self.rng.expovariate(rate)
            if time.monotonic() + gap >= until:
                time.sleep(max(0.0, until - time.monotonic()))
                return
            time.sleep(gap)
            self.index += 1
            config = self.rng.choice(self.configs)
            draw = self.rng.random()
            if draw < self.args.seat_share:
                kind, xml = "seat", caller_scenario(self.tone, "0", int(HOLD_ON_S * 1000), KEY_AFTER_MS)
            elif draw < self.args.seat_share + self.args.message_share:
                kind, xml = "message", caller_scenario(self.tone, "1", int(HOLD_ON_S * 1000), KEY_AFTER_MS)
            else:
                kind, xml = "menu", menu_leaver(self.tone, self.rng.randint(2000, 9000))
            self.result.placed[kind] += 1
            self.calls.append(SippCall(config.sip.port, xml, caller=f"139{self.index:08d}", timeout_s=HOLD_ON_S))
            self.reap()

    def reap(self) -> None:
        for call in [c for c in self.calls if c.finished]:
            self.calls.remove(call)
            self.result.sip_failed += not call.wait().ok

    def console(self) -> None:
        paths = ["/api/v1/calls?limit=50", "/api/v1/queues", "/api/v1/seats", "/api/v1/health"]
        gap = self.args.poll_s / len(self.configs)  # every platform polled every poll_s, spread out
        while True:
            for config in self.configs:
                if self.stop.wait(gap):
                    return
                for path in paths:
                    status, _ = http(config, path)
                    self.result.console_polls += 1
                    self.result.console_errors += status != 200

    def sampler(self, client: redis.Redis, started: float) -> None:
        while True:
            asterisks = [rss_mb(asterisk_pid(c)) for c in self.configs]
            try:
                used = int(client.info("memory")["used_memory"]) / 2**20
            except redis.RedisError:
                used = -1.0
            at, ctl = time.monotonic() - started, rss_mb(self.stack.pid)
            self.result.samples.append((at, ctl, asterisks, used))
            print(
                f"  [{self.result.name}] {at / 60:5.1f} min  controllers {ctl:6.1f} MB  Asterisk mean "
                f"{sum(asterisks) / len(asterisks):5.1f} MB  Redis {used:6.1f} MB  placed "
                f"{sum(self.result.placed.values())}  up {len(self.calls)}",
                flush=True,
            )
            if self.stop.wait(self.args.sample_s):
                return

    def run(self, minutes: float) -> PhaseResult:
        try:
            wait_for("every platform's seats ready", self.ready, timeout_s=900, interval_s=2)
            password = self.configs[0].redis.password_file
            url = self.configs[0].redis.url
            client = redis.Redis.from_url(url, password=password.read_text().strip() if password else None)
            started = time.monotonic()
            threads = [
                threading.Thread(target=self.console, daemon=True),
                threading.Thread(target=self.sampler, args=(client, started), daemon=True),
            ]
            for thread in threads:
                thread.start()
            warm_up = max(30.0, minutes * 6)
            self.arrivals(started + warm_up)
            first = self.snapshot(client)
            self.arrivals(started + minutes * 60)
            last = self.snapshot(client)
            self.result.measured_s = time.monotonic() - started - warm_up
            self.stop.set()
            for thread in threads:
                thread.join(timeout=30)
            self.tally(first, last)
            drain_until = time.monotonic() + 300
            while self.calls and time.monotonic() < drain_until:
                time.sleep(1)
                self.reap()
            client.close()
        finally:
            for call in self.calls:
                call.stop()
            self.stack.send_signal(signal.SIGTERM)  # the drain, as systemd stops a controller
            try:
                self.result.exit_code = self.stack.wait(timeout=180)
            except subprocess.TimeoutExpired:
                self.stack.kill()
                self.stack.wait()
        return self.result

    def tally(self, first: Snapshot, last: Snapshot) -> None:
        calls = max(1, last.placed - first.placed)
        self.result.per_call = {
            "calls": float(last.placed - first.placed),
            "controller_ms": (last.controller_s - first.controller_s) * 1000 / calls,
            "asterisk_ms": (last.asterisk_s - first.asterisk_s) * 1000 / calls,
            "redis_ms": (last.redis_s - first.redis_s) * 1000 / calls,
            "redis_commands": sum(last.commands.values()) - sum(first.commands.values()),
        }
        self.result.per_call["redis_commands"] /= calls
        deltas = {k: (v - first.commands.get(k, 0)) / calls for k, v in last.commands.items()}
        self.result.top_commands = sorted(deltas.items(), key=lambda kv: -kv[1])[:6]


def memory_rows(result: PhaseResult, warm_s: float) -> list[str]:
    """Start → end and growth per hour (after the warm-up) of each process's memory."""
    samples = [s for s in result.samples if s[0] >= warm_s] or result.samples
    if not samples:
        return ["(no samples)"]
    first, last = samples[0], samples[-1]
    n = result.platforms
    ctl = slope_per_hour([(t, c) for t, c, _, _ in samples])
    used = slope_per_hour([(t, r) for t, _, _, r in samples])
    growths = [slope_per_hour([(t, a[i]) for t, _, a, _ in samples]) for i in range(len(first[2]))]
    return [
        f"| controllers' process ({n} controllers) | {first[1]:.1f} → {last[1]:.1f} | {ctl:+.1f} |",
        f"| per controller (÷ {n}) | {first[1] / n:.1f} → {last[1] / n:.1f} | {ctl / n:+.1f} |",
        f"| Asterisk, mean of {n} | {sum(first[2]) / n:.1f} → {sum(last[2]) / n:.1f} "
        f"| {sum(growths) / n:+.1f} (max {max(growths):+.1f}) |",
        f"| Asterisk, largest at the end | {max(last[2]):.1f} | |",
        f"| Redis used_memory | {first[3]:.1f} → {last[3]:.1f} | {used:+.1f} |",
    ]


def report(results: list[PhaseResult], args: argparse.Namespace) -> None:
    print("\n| phase | measured min | callers (seat / message / menu) | SIPp failures | console polls (errors) "
          "| CPU ms/call: controllers | Asterisk | Redis | Redis commands/call | stack exit |")  # fmt: skip
    print("|---|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        pc = r.per_call
        print(
            f"| {r.name} | {r.measured_s / 60:.1f} | {r.placed['seat']} / {r.placed['message']} / {r.placed['menu']} "
            f"| {r.sip_failed} | {r.console_polls} ({r.console_errors}) | {pc.get('controller_ms', 0):.1f} "
            f"| {pc.get('asterisk_ms', 0):.1f} | {pc.get('redis_ms', 0):.2f} | {pc.get('redis_commands', 0):.0f} "
            f"| {r.exit_code} |"
        )
    for r in results:
        print(f"\nRedis commands per call, {r.name}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.top_commands))
    for r, minutes in zip(results, (args.single_minutes, args.minutes), strict=False):
        print(f"\nMemory, {r.name} (MB; growth after the warm-up, per hour)\n\n| process | start → end | growth/h |")
        print("|---|---|---:|")
        print("\n".join(memory_rows(r, max(30.0, minutes * 6))))
    if len(results) == 2 and results[0].samples and results[1].samples:
        single, every = results[0].samples[-1][1], results[1].samples[-1][1]
        extra = (every - single) / max(1, results[1].platforms - 1)
        print(f"\nEach controller beyond the first adds {extra:.1f} MB to the controllers' process.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60, help="the all-platforms phase")
    parser.add_argument("--single-minutes", type=float, default=10, help="the one-platform phase first (0: none)")
    parser.add_argument("--platforms", default="all", help="as make run's PLATFORMS (the first runs alone first)")
    parser.add_argument("--calls-per-min", type=float, default=2.0, help="arrivals per platform")
    parser.add_argument("--seats", type=int, default=2, help="seats per platform")
    parser.add_argument("--seat-share", type=float, default=0.5)
    parser.add_argument("--message-share", type=float, default=0.2)
    parser.add_argument("--max-wait-s", type=int, default=90, help="then the caller leaves a message")
    parser.add_argument("--ring-ms", type=int, default=1500)
    parser.add_argument("--talk-median-s", type=float, default=20.0)
    parser.add_argument("--talk-sigma", type=float, default=0.5)
    parser.add_argument("--poll-s", type=float, default=5.0, help="each platform's console polls this often")
    parser.add_argument("--sample-s", type=float, default=30.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill`: stop the stacks and SIPp on the way out
    ids = platform_ids(args.platforms, REPO / "dialplans")
    results: list[PhaseResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-soak-province-") as tmp:
        root = Path(tmp)
        tone = tone_wav(root / "tone.wav", seconds=2, volume=0.2)
        talk = LognormalTalk(args.talk_median_s, args.talk_sigma)
        phones = SeatPhones(args.ring_ms, None, root / "seat-phones", talk=talk, voice=tone)
        try:
            phases = [([ids[0]], args.single_minutes)] if args.single_minutes > 0 else []
            for wanted, minutes in [*phases, (ids, args.minutes)]:
                folder = root / f"phase-{len(wanted)}"
                config = write_setup(folder, ids, args)
                print(f"soak: {len(wanted)} platform(s) for {minutes:g} min, {args.calls_per_min:g} calls/min "
                      f"per platform, {args.seats} seats each (stack log: {folder})", flush=True)  # fmt: skip
                results.append(Phase(folder, config, wanted, phones=phones, tone=tone, args=args).run(minutes))
        finally:
            phones.stop()
            report(results, args)


if __name__ == "__main__":
    main()
