"""The transfer bench's stack: two platforms sharing a Redis, the seats' and callers' SIPp, the
province's AMI marks, and what the bench asks of them."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from bench.e2e_ami import TRUNK_PREFIX, AmiRecorder
from bench.e2e_sipp import caller_scenario
from bench.transfer_model import Settings
from hotline.platforms import PREFIX as SNAPSHOT_PREFIX
from hotline.redis_process import RedisProcess
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.ports import free_port, free_tcp_and_udp_port, rtp_range
from tests.support.seat_phones import seat_scenario, stop_process

DIALPLANS = Path(__file__).resolve().parent / "dialplans"
RTP_BLOCK = 1000  # per platform, disjoint


# --- SIPp


class SeatPhones:
    """One SIPp UAS for every seat of a platform; with ``trace`` it logs every SIP message
    with its arrival time (``-trace_msg``), read back by ``invites()``."""

    def __init__(self, folder: Path, ring_ms: int, talk_ms: int | None, trace: bool) -> None:
        self.port = free_tcp_and_udp_port()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "seats.xml").write_text(seat_scenario(ring_ms, talk_ms), encoding="utf-8")
        self.messages = folder / "messages.log"
        command = [
            "sipp", "-sf", str(folder / "seats.xml"), "-i", "127.0.0.1", "-p", str(self.port),
            "-mi", "127.0.0.1", "-mp", str(free_port(udp=True)), "-m", "10000000", "-nostdin",
            "-trace_err", "-error_file", str(folder / "errors.log"),
        ]  # fmt: skip
        if trace:
            command += ["-trace_msg", "-message_file", str(self.messages)]
        self._proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def contact_for(self, seat_id: str) -> str:
        return f"sip:{seat_id}@127.0.0.1:{self.port}"

    def invites(self) -> list[tuple[float, str, str]]:
        """(epoch, caller number, seat) of every INVITE received, in order (retransmissions too)."""
        if not self.messages.exists():
            return []
        text = self.messages.read_text(encoding="utf-8", errors="replace")
        found = []
        for block in text.split("-----------------------------------------------")[1:]:
            head, _, body = block.partition("\n")
            if "message received" not in body or "\nINVITE sip:" not in body:
                continue
            when = datetime.strptime(head.strip(), "%Y-%m-%d %H:%M:%S.%f").timestamp()  # SIPp: local time
            seat = re.search(r"\nINVITE sip:([^@;>]+)@", body)
            caller = re.search(r"\nFrom:[^\n]*<sip:([^@;>]+)@", body)
            if seat and caller:
                found.append((when, caller.group(1), seat.group(1)))
        return found

    def stop(self) -> None:
        stop_process(self._proc)


class Callers:
    """``count`` SIPp callers (numbers 1390000<n>) into a platform's trunk, in the background:
    each hangs up ``patience_s`` after being answered unless the hotline ends the call first."""

    def __init__(self, folder: Path, sip_port: int, count: int, rate: float, patience_s: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._folder = folder
        (folder / "caller.xml").write_text(caller_scenario(int(patience_s * 1000)), encoding="utf-8")
        self._budget_s = patience_s + count / rate + 60
        command = [
            "sipp", f"127.0.0.1:{sip_port}", "-s", "12345", "-sf", str(folder / "caller.xml"),
            "-i", "127.0.0.1", "-p", str(free_tcp_and_udp_port()), "-mi", "127.0.0.1",
            "-mp", str(free_port(udp=True)), "-r", str(int(rate * 1000)), "-rp", "1000000",
            "-m", str(count), "-l", str(count), "-nostdin", "-timeout", f"{int(self._budget_s)}s",
            "-trace_stat", "-stf", str(folder / "stat.csv"), "-fd", "1",
            "-trace_err", "-error_file", str(folder / "errors.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self) -> tuple[int, int]:
        """(successful, failed) calls, once every caller's call has ended."""
        try:
            self._proc.wait(timeout=self._budget_s + 30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        stat = self._folder / "stat.csv"
        rows = list(csv.DictReader(stat.open(encoding="utf-8"), delimiter=";")) if stat.exists() else []
        if not rows:
            return 0, 0
        return int(rows[-1]["SuccessfulCall(C)"]), int(rows[-1]["FailedCall(C)"])


# --- the province's own marks


class ProvinceRecorder(AmiRecorder):
    """AMI marks per caller channel, plus the caller's number of every trunk channel."""

    def __init__(self, port: int, username: str, secret: str) -> None:
        self.number_of: dict[str, str] = {}  # uniqueid → caller number (before the reader starts)
        super().__init__(port, username, secret)

    def _on_event(self, event: dict[str, str]) -> None:
        if event.get("event") == "Newchannel" and event.get("channel", "").startswith(TRUNK_PREFIX):
            with self._lock:
                self.number_of[event.get("uniqueid", "")] = event.get("calleridnum", "")
        super()._on_event(event)

    def arrival(self, number: str, after: float, before: float) -> tuple[float | None, float | None]:
        """(arrived, queued) of the first trunk channel from ``number`` in [after, before)."""
        with self._lock:
            found = sorted(
                (marks.arrived, marks.queued)
                for uid, marks in self.callers.items()
                if self.number_of.get(uid) == number and after <= marks.arrived < before
            )
        return found[0] if found else (None, None)


# --- the network


def seat_ids(first: int, count: int) -> list[str]:
    return [str(first + index) for index in range(count)]


@dataclass
class Network:
    redis: RedisProcess
    kunming: PlatformUnderTest
    province: PlatformUnderTest
    kunming_phones: SeatPhones
    province_phones: SeatPhones
    kunming_seats: list[str]
    province_seats: list[str]

    @classmethod
    def create(cls, root: Path, settings: Settings) -> Network:
        redis = RedisProcess(root / "redis", free_port())
        kunming_phones = SeatPhones(root / "kunming-seats", ring_ms=100, talk_ms=None, trace=False)
        province_phones = SeatPhones(
            root / "province-seats", ring_ms=settings.ring_ms, talk_ms=int(settings.talk_s * 1000), trace=True
        )
        kunming_seats, province_seats = seat_ids(1001, settings.pairs), seat_ids(2001, settings.pairs)
        province_sip = free_tcp_and_udp_port()
        rtp, _ = rtp_range(2 * RTP_BLOCK)  # split in two

        def platform(
            name: str, sip: dict[str, Any], seats: list[str], phones: SeatPhones, rtp_min: int
        ) -> PlatformUnderTest:
            each = PlatformUnderTest(
                root / name,
                overrides={
                    "platform": {"id": name, "name": name, "area_code": "0871", "province": name == "province"},
                    "sip": sip | {"rtp_port_min": rtp_min, "rtp_port_max": rtp_min + RTP_BLOCK - 1},
                    "seats": [{"id": s, "name": s, "contact": phones.contact_for(s)} for s in seats],
                    "acd": {
                        "auto_login": seats,
                        "wrapup_s": 0,
                        "announce_every_s": 0,
                        "ring_timeout_s": 15,
                        "max_missed_offers": 10,
                    },
                    "recordings": {"enabled": False},  # the same media work on both paths
                },
                dialplan=f"net_{name}",
                shared_redis=redis,
            )
            each.dialplan_file.write_text(
                (DIALPLANS / f"transfer_{name}.yaml").read_text(encoding="utf-8"), encoding="utf-8"
            )
            return each

        to_province = {"host": "127.0.0.1", "port": province_sip}
        kunming = platform(
            "kunming",
            {"trunks": {"province": to_province | {"platform": "province"}, "province_plain": to_province}},
            kunming_seats,
            kunming_phones,
            rtp,
        )
        province = platform("province", {"port": province_sip}, province_seats, province_phones, rtp + RTP_BLOCK)
        return cls(redis, kunming, province, kunming_phones, province_phones, kunming_seats, province_seats)

    def start(self) -> None:
        self.redis.start()
        for each in (self.province, self.kunming):
            each.asterisk.start()
        for each in (self.province, self.kunming):
            each.start_controller()
            wait_until_ready(each)

    def stop(self) -> None:
        for each in (self.kunming, self.province):
            each.stop_all()
        self.redis.stop()
        self.kunming_phones.stop()
        self.province_phones.stop()


def wait_until_ready(platform: PlatformUnderTest) -> None:
    wait_for(f"{platform.platform_id}'s seats ready", lambda: busy_seats(platform) == 0, timeout_s=30)


def busy_seats(platform: PlatformUnderTest) -> int:
    result = platform.http("/api/v1/seats")
    if result.status != 200:
        return -1
    return sum(1 for seat in result.body["seats"] if seat["state"] != "ready")


def channels(platform: PlatformUnderTest) -> list[str]:
    """Asterisk's channels now (``core show channels concise``, one line each)."""
    out = platform.asterisk.cli("core show channels concise", check=False).stdout
    return [line for line in out.splitlines() if line.count("!") > 5]


def is_surrogate(line: str) -> bool:
    """The husk a masquerade leaves; before callers waited in a holding bridge (BridgeWait),
    Bridge() took them out of MusicOnHold that way and now and then a husk stayed up for good
    (docs/benchmarks.md). Counted apart so that it cannot stall the rounds."""
    return line.startswith("Surrogate/")


def leftover_channels(net: Network) -> list[str]:
    """Channels still up, Surrogate husks excepted (counted apart)."""
    return [
        f"{p.platform_id}: {line}"
        for p in (net.kunming, net.province)
        for line in channels(p)
        if not is_surrogate(line)
    ]


def surrogates(net: Network) -> list[str]:
    return [
        f"{p.platform_id}: {line}" for p in (net.kunming, net.province) for line in channels(p) if is_surrogate(line)
    ]


def province_free_since(net: Network, since: float, seats: int) -> bool:
    """Whether the province's snapshot in the shared Redis (what 昆明's transfer consults: a
    platform with no ready seat is refused) was taken after ``since`` with every seat ready."""
    client = redis.Redis.from_url(net.redis.url)
    try:
        raw = client.get(SNAPSHOT_PREFIX + net.province.platform_id)
    finally:
        client.close()
    if not isinstance(raw, bytes):
        return False
    snapshot = json.loads(raw)
    at = datetime.fromisoformat(snapshot["at"]).timestamp()
    return at > since and int(snapshot.get("seats", {}).get("ready", 0)) >= seats


def talking_calls(kunming: PlatformUnderTest) -> dict[str, str]:
    """昆明 seat → the call it talks with (bound by late binding)."""
    seats = kunming.http("/api/v1/seats").body["seats"]
    return {
        s["seat"]: s["current"]["call_id"] for s in seats if s.get("current") and s["current"].get("phase") == "talking"
    }
