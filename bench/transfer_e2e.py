"""Transfer set-up time between platforms: a 昆明 seat's transfer to the provincial seat's ring.

Two real platforms on loopback (昆明 and the province: each its own Asterisk and controller,
one shared Redis; 大理 of the integration test is left out, it plays no part in a transfer).
Each round: ``--pairs`` SIPp callers dial 昆明's 12345 and are seated with as many 昆明 seats
(one SIPp UAS plays every seat); once every seat talks, the bench fires one
``POST /api/v1/calls/{id}/transfer`` per call at once (aiohttp, one task each). 昆明 redirects
each caller into its transfer context, which dials the province over a SIP trunk; the
province's IVR puts the call straight into a queue and its ACD rings one of ``--pairs``
provincial seats (another SIPp UAS, which rings ``--ring-ms``, answers and hangs up after
``--talk-s``; the caller then gets the BYE, and the round ends).

The stopwatch: start = the bench's clock just before each POST is sent; end = the INVITE to a
provincial seat that carries the caller's number, as the seats' SIPp received it (its
``-trace_msg`` log, microsecond timestamps, same host clock). That is the phone ringing. Two
intermediate marks come from the province Asterisk's own AMI events (``timestampevents``):
the transferred call arriving on the province's trunk (``Newchannel``), and the call entering
the hold context (queued for a seat, after the province's IVR).

Systems, alternating round by round in one run on the same stack:
- ours: destination ``province``, a trunk with ``platform: province``: 昆明 writes a hand-off
  record to the shared Redis, its token goes in the SIP header, and the province reads it,
  marks it picked up and starts the call at ``handoff_start`` (a queue node).
- baseline: destination ``province_plain``, a trunk to the same province with no
  ``platform``: the same API, Redirect and Dial, but no record, no header; the province
  starts at ``start`` (the same queue, no priority). Both province paths have no prompt.
- attended: ours, as a consultation (``"mode": "attended"``): Asterisk's attended transfer
  dials the province from the 昆明 seat's channel with the case; the bench completes each one
  (``POST …/transfer/complete``) as soon as the province has answered (its IVR), so the caller
  joins the provincial queue; the stopwatch is the same.

A transfer failed if the API did not answer 202, or no provincial seat rang for the caller,
or 昆明's record of the call did not end ``transferred``; ours also counts hand-offs never
marked picked up.

Run: .venv/bin/python -m bench.transfer_e2e [--quick] [--pairs 20] [--rounds 10] ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import redis

from bench.e2e_ami import TRUNK_PREFIX, AmiRecorder, add_observer
from bench.e2e_sipp import caller_scenario
from bench.e2e_stack import cpu_seconds
from hotline.platforms import PREFIX as SNAPSHOT_PREFIX
from hotline.redis_process import RedisProcess
from tests.support.platform import ADMIN_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_port, free_tcp_and_udp_port, rtp_range
from tests.support.seat_phones import seat_scenario, stop_process

DIALPLANS = Path(__file__).resolve().parent / "dialplans"
SYSTEMS = {  # system → (destination, mode)
    "baseline": ("province_plain", "blind"),
    "ours": ("province", "blind"),
    "attended": ("province", "attended"),
}
LABELS = {"baseline": "baseline: plain transfer", "ours": "ours: with hand-off", "attended": "ours: attended"}
WITH_HANDOFF = ("ours", "attended")
RTP_BLOCK = 1000  # per platform, disjoint
PATIENCE_S = 20.0  # callers hang up this long after 昆明 answered them, if nothing ended the call before


@dataclass(frozen=True)
class Settings:
    pairs: int
    rounds: int  # in all, systems alternating
    ring_ms: int  # provincial seats ring this long before answering
    talk_s: float  # provincial seats hang up after this much talk
    arrival_rate: float  # callers per second into 昆明
    settle_s: float  # after every 昆明 seat talks, before the transfers


@dataclass
class Transfer:
    """One transfer, as the bench saw it."""

    system: str
    round_no: int
    call_id: str
    caller: str
    sent: float = 0.0  # epoch, just before the POST
    replied: float | None = None
    status: int = 0
    token: str = ""
    error: str = ""
    round_end: float = 0.0
    arrived: float | None = None  # the province's trunk channel (AMI Newchannel)
    queued: float | None = None  # the province's hold context (AMI Newexten)
    rang: float | None = None  # the INVITE at a provincial seat (SIPp trace)
    outcome: str = ""  # 昆明's record
    picked_up: bool = False  # ours: the hand-off record names the province's leg

    @property
    def failed(self) -> bool:
        picked = self.picked_up or self.system not in WITH_HANDOFF
        return self.status != 202 or self.rang is None or self.outcome != "transferred" or not picked

    def ms(self, mark: float | None) -> float | None:
        return (mark - self.sent) * 1000 if mark is not None else None


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


# --- one round


async def fire(base_url: str, transfers: list[Transfer], system: str) -> None:
    """Every transfer's POST at once, one task each; a consultation is completed as soon as
    the other side has answered."""
    to, mode = SYSTEMS[system]
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def complete_when_answered(transfer: Transfer) -> None:
            url = f"{base_url}/api/v1/calls/{transfer.call_id}/transfer"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                async with session.get(url) as response:
                    state = (await response.json(content_type=None)).get("state") if response.status == 200 else None
                if state == "talking":
                    async with session.post(f"{url}/complete") as response:
                        if response.status != 202:
                            transfer.error = f"complete: {response.status} {await response.text()}"[:300]
                    return
                await asyncio.sleep(0.05)
            transfer.error = "the consultation was never answered"

        async def one(transfer: Transfer) -> None:
            url = f"{base_url}/api/v1/calls/{transfer.call_id}/transfer"
            transfer.sent = time.time()
            try:
                body = {"to": to, "mode": mode, "note": "跨市事项，请省级坐席继续处理。"}
                async with session.post(url, json=body) as response:
                    reply = await response.json(content_type=None)
                    transfer.replied = time.time()
                    transfer.status = response.status
                    if response.status == 202:
                        transfer.token = (reply.get("handoff") or {}).get("token", "")
                    else:
                        transfer.error = str(reply)[:300]
                if mode == "attended" and transfer.status == 202:
                    await complete_when_answered(transfer)
            except (aiohttp.ClientError, TimeoutError) as exc:
                transfer.error = repr(exc)

        await asyncio.gather(*(one(t) for t in transfers))


@dataclass
class Round:
    system: str
    round_no: int
    placed: int
    seated: int
    transfers: list[Transfer]
    sip_ok: int = 0
    sip_failed: int = 0
    leftover_channels: int = 0
    stuck_seats: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)  # process → CPU seconds in the round
    leftover_detail: str = ""  # `core show channels concise` of both, when channels outlived the round


def cpu_now(net: Network) -> dict[str, float]:
    pids = {
        "kunming asterisk": net.kunming.asterisk.pid,
        "province asterisk": net.province.asterisk.pid,
        "kunming controller": net.kunming.controller.pid if net.kunming.controller else None,
        "province controller": net.province.controller.pid if net.province.controller else None,
    }
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def run_round(net: Network, settings: Settings, system: str, round_no: int, folder: Path) -> Round:
    kunming = net.kunming
    # the province publishes its seats every 5 s; a snapshot from the previous round's calls
    # would refuse our transfers ("no free seat") while its seats are in fact free
    since = time.time()
    with contextlib.suppress(AssertionError):  # fire anyway: refusals count as failures
        wait_for(
            "a snapshot of the province with every seat ready",
            lambda: province_free_since(net, since, len(net.province_seats)),
            timeout_s=15,
        )
    before = cpu_now(net)
    callers = Callers(folder / f"callers-{round_no}", kunming.config.sip.port, settings.pairs,
                      settings.arrival_rate, patience_s=PATIENCE_S)  # fmt: skip
    try:
        talking = wait_for(
            f"{settings.pairs} 昆明 seats talking",
            lambda: found if len(found := talking_calls(kunming)) >= settings.pairs else None,
            timeout_s=settings.pairs / settings.arrival_rate + 30,
        )
    except AssertionError:
        talking = talking_calls(kunming)  # go on with the seats that do talk; the table says so
    time.sleep(settings.settle_s)
    transfers = [
        Transfer(system, round_no, call_id, str(kunming.stored_call(call_id)["caller"])) for call_id in talking.values()
    ]
    asyncio.run(fire(kunming.base_url, transfers, system))
    sip_ok, sip_failed = callers.wait()
    end = time.time()
    for each in transfers:
        each.round_end = end
    leftover = leftover_channels(net)
    deadline = time.monotonic() + 20
    while leftover and time.monotonic() < deadline:
        time.sleep(0.5)
        leftover = leftover_channels(net)
    stuck = 0
    try:
        wait_for("every seat ready", lambda: busy_seats(net.kunming) + busy_seats(net.province) == 0, timeout_s=20)
    except AssertionError:
        stuck = busy_seats(net.kunming) + busy_seats(net.province)
    after = cpu_now(net)
    outcomes = {c["call_id"]: c for c in kunming.calls()}
    for each in transfers:
        each.outcome = str(outcomes.get(each.call_id, {}).get("outcome") or "")
        if each.token:
            record = kunming.http(f"/api/v1/handoffs/{each.token}").body
            each.picked_up = isinstance(record, dict) and bool(record.get("picked_up_call_id"))
    return Round(
        system, round_no, settings.pairs, len(talking), transfers, sip_ok, sip_failed, len(leftover), stuck,
        {name: after[name] - before[name] for name in before}, "\n".join(leftover),
    )  # fmt: skip


# --- the table


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def marks_ms(transfers: list[Transfer], mark: str) -> list[float]:
    values = [t.ms(getattr(t, mark)) for t in transfers]
    return [v for v in values if v is not None]


@dataclass(frozen=True)
class Summary:
    system: str
    rounds: int
    transfers: int
    not_seated: int
    failed: int
    api_failed: int
    no_ring: int
    not_transferred: int
    not_picked_up: int
    p50: dict[str, float]
    p99: dict[str, float]
    cpu_ms: dict[str, float]  # per transfer

    @classmethod
    def of(cls, system: str, rounds: list[Round]) -> Summary:
        mine = [r for r in rounds if r.system == system]
        transfers = [t for r in mine for t in r.transfers]
        count = max(len(transfers), 1)
        marks = {m: marks_ms(transfers, m) for m in ("replied", "arrived", "queued", "rang")}
        cpu = {name: sum(r.cpu_s[name] for r in mine) * 1000 / count for name in mine[0].cpu_s} if mine else {}
        return cls(
            system=system, rounds=len(mine), transfers=len(transfers),
            not_seated=sum(r.placed - r.seated for r in mine),
            failed=sum(t.failed for t in transfers),
            api_failed=sum(t.status != 202 for t in transfers),
            no_ring=sum(t.rang is None for t in transfers),
            not_transferred=sum(t.outcome != "transferred" for t in transfers),
            not_picked_up=sum(system in WITH_HANDOFF and not t.picked_up for t in transfers),
            p50={m: percentile(v, 50) for m, v in marks.items()},
            p99={m: percentile(v, 99) for m, v in marks.items()},
            cpu_ms=cpu,
        )  # fmt: skip


HEADER = (
    f"{'system':<26}{'xfers':>6}{'failed':>7}{'api':>4}{'noring':>7}{'notxf':>6}{'nopick':>7}"
    f"{'202 p50':>8}{'202 p99':>8}{'arr p50':>8}{'arr p99':>8}{'que p50':>8}{'que p99':>8}"
    f"{'RING p50':>9}{'RING p99':>9}"
)


def row(s: Summary) -> str:
    return (
        f"{LABELS[s.system]:<26}{s.transfers:>6}{s.failed:>7}{s.api_failed:>4}{s.no_ring:>7}"
        f"{s.not_transferred:>6}{s.not_picked_up:>7}"
        f"{s.p50['replied']:>8.1f}{s.p99['replied']:>8.1f}{s.p50['arrived']:>8.1f}{s.p99['arrived']:>8.1f}"
        f"{s.p50['queued']:>8.1f}{s.p99['queued']:>8.1f}{s.p50['rang']:>9.1f}{s.p99['rang']:>9.1f}"
    )


def ratio_row(ours: Summary, base: Summary) -> str:
    """``ours`` over ``base``, mark by mark."""

    def r(mark: str, q: dict[str, float], b: dict[str, float]) -> str:
        return f"{q[mark] / b[mark]:.2f}" if b[mark] else "n/a"

    cells = "".join(
        f"{r(m, ours.p50, base.p50):>8}{r(m, ours.p99, base.p99):>8}" for m in ("replied", "arrived", "queued")
    )
    label = f"ratio {ours.system}/{base.system}"
    return (
        f"{label:<26}{'':>6}{'':>7}{'':>4}{'':>7}{'':>6}{'':>7}{cells}"
        f"{r('rang', ours.p50, base.p50):>9}{r('rang', ours.p99, base.p99):>9}"
    )


def report(settings: Settings, rounds: list[Round], husks: list[str]) -> None:
    base, ours, attended = (Summary.of(system, rounds) for system in SYSTEMS)
    print()
    print(
        f"Transfers 昆明 → province, {settings.pairs} at once per round ({settings.pairs} callers with "
        f"{settings.pairs} 昆明 seats → {settings.pairs} provincial seats), {base.rounds} + {ours.rounds} + "
        f"{attended.rounds} rounds alternating; ms from the POST"
    )
    print("202 = API answered; arr = INVITE at the province's trunk (AMI Newchannel); que = queued for a seat")
    print("(AMI, after the province's IVR); RING = INVITE at the provincial seat's phone (SIPp trace)")
    print(HEADER)
    for summary in (base, ours, attended):
        print(row(summary))
    print(ratio_row(ours, base))
    print(ratio_row(attended, base))
    names = list(base.cpu_ms)
    print("CPU ms per transfer round trip (whole round: caller arrival, seating, transfer, talk, hang-up):")
    for s in (base, ours, attended):
        print(f"  {LABELS[s.system]:<26}" + "  ".join(f"{n} {s.cpu_ms[n]:.1f}" for n in names))
    for r in rounds:
        notes = []
        if r.seated < r.placed:
            notes.append(f"only {r.seated} of {r.placed} callers were seated in 昆明 (not transferred)")
        if r.sip_failed:
            notes.append(f"{r.sip_failed} SIPp caller failures")
        if r.leftover_channels:
            notes.append(f"{r.leftover_channels} channels still up 20 s after the round:\n{r.leftover_detail[:1500]}")
        if r.stuck_seats:
            notes.append(f"{r.stuck_seats} seats not back to ready")
        for t in r.transfers:
            if t.failed:
                notes.append(
                    f"{t.call_id} ({t.caller}): status {t.status} {t.error} rang={t.rang is not None} "
                    f"outcome={t.outcome or '-'} picked_up={t.picked_up}"
                )
        if notes:
            print(f"--- round {r.round_no} ({r.system}):\n  " + "\n  ".join(notes[:25]))
    print(f"Surrogate channels still up at the end (Bridge() husks that never went away): {len(husks)}")
    for line in husks[:20]:
        print(f"  {line}")


def attach_marks(net: Network, recorder: ProvinceRecorder, rounds: list[Round]) -> None:
    invites = net.province_phones.invites()
    for r in rounds:
        for t in r.transfers:
            t.rang = next((w for w, caller, _ in invites if caller == t.caller and t.sent <= w < t.round_end), None)
            t.arrived, t.queued = recorder.arrival(t.caller, t.sent, t.round_end)


def run(settings: Settings, workdir: Path) -> None:
    net = Network.create(workdir, settings)
    recorder: ProvinceRecorder | None = None
    rounds: list[Round] = []
    try:
        observer, secret = add_observer(net.province.asterisk.layout.etc_dir)
        net.start()
        recorder = ProvinceRecorder(net.province.config.asterisk.ami_port, observer, secret)
        order = list(SYSTEMS)
        for round_no in range(settings.rounds):
            system = order[round_no % len(order)]
            started = time.monotonic()
            result = run_round(net, settings, system, round_no, workdir / "rounds")
            rounds.append(result)
            statuses = sorted({t.status for t in result.transfers})
            print(f"round {round_no} {system}: {result.seated} seated, POST statuses {statuses}, "
                  f"{len(surrogates(net))} Surrogate channels up, {time.monotonic() - started:.1f} s",
                  flush=True)  # fmt: skip
        attach_marks(net, recorder, rounds)
        report(settings, rounds, surrogates(net))
    finally:
        if recorder is not None:
            recorder.close()
        net.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="6 rounds (2 per system), < 4 min")
    parser.add_argument("--pairs", type=int, default=20, help="concurrent transfers per round")
    parser.add_argument("--rounds", type=int, default=30, help="rounds in all, systems taking turns")
    parser.add_argument("--ring-ms", type=int, default=500, help="provincial seats ring this long, then answer")
    parser.add_argument("--talk-s", type=float, default=1.0, help="provincial seats hang up after this much talk")
    parser.add_argument("--arrival-rate", type=float, default=10.0, help="callers per second into 昆明")
    parser.add_argument("--settle-s", type=float, default=1.0, help="pause once every 昆明 seat talks")
    parser.add_argument("--keep", type=Path, help="keep logs, configs and traces in this folder")
    args = parser.parse_args()
    if args.rounds < len(SYSTEMS):
        parser.error(f"--rounds: at least {len(SYSTEMS)} (one per system)")
    settings = Settings(
        pairs=args.pairs, rounds=2 * len(SYSTEMS) if args.quick else args.rounds, ring_ms=args.ring_ms,
        talk_s=args.talk_s, arrival_rate=args.arrival_rate, settle_s=args.settle_s,
    )  # fmt: skip
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        args.keep.mkdir(parents=True)
        run(settings, args.keep.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="bench-transfer-e2e-") as tmp:
        run(settings, Path(tmp))


if __name__ == "__main__":
    main()
