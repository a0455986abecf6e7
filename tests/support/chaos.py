"""A floor of calls to break things under: callers in menus, waiting for a seat, talking to one.

The fault suite (tests/integration/test_chaos.py, a short run in ``make test``) and its long
version (bench/chaos.py) build the same floor on a real Asterisk, Redis and SIPp, break a part,
and then account for every caller: each call must end served (a seat answered it, or the caller
left a message that is on disk) with exactly one complete record. "Dropped" means anything
else: a SIP failure, a record missing or not ended, a call ended ``lost_track`` or abandoned
while the caller was still holding on.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.support.audio import duration_s, tone_wav
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.seat_phones import SeatPhones
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    HOTLINE_HANGS_UP,
    INVITE,
    SippCall,
    dtmf,
    pause,
    scenario,
    stream_audio,
)
from tests.support.speech import korean_asr, korean_message_ulaw

KEY_AFTER_MS = 2500  # after the welcome and into the menu prompt: key 0, a seat
SERVED = frozenset({"answered", "fallback", "voicemail"})


def caller_scenario(tone: Path, key: str | None, patience_ms: int, key_after_ms: int = KEY_AFTER_MS) -> str:
    """A caller who talks (a tone, all along), optionally presses ``key`` in the menu, then holds
    on until the hotline ends the call (a seat hangs up) or ``patience_ms`` passes (then hangs
    up: a message being recorded ends with the caller's hang-up)."""
    parts = [INVITE, ANSWERED, stream_audio(tone, loops=-1)]
    if key is not None:
        parts += [pause(key_after_ms), dtmf(key)]
    parts.append(f'  <recv request="BYE" timeout="{patience_ms}" ontimeout="callerbye"/>\n')
    parts.append(HOTLINE_HANGS_UP.replace('<recv request="BYE"/>', "") + '  <nop next="end"/>\n')
    parts.append('  <label id="callerbye"/>\n' + CALLER_HANGS_UP + '  <label id="end"/>\n')
    return scenario(*parts)


def caller_number(index: int) -> str:
    return f"1390002{index:04d}"


def masked(number: str) -> str:
    return number[:3] + "****" + number[-4:]


@dataclass
class Floor:
    """``seats`` seats talking ``talk_ms`` each, then ``waiting`` callers queued behind them,
    then ``in_menu`` callers who press nothing."""

    platform: PlatformUnderTest
    phones: SeatPhones
    seats: int
    waiting: int
    in_menu: int
    tone: Path
    calls: dict[str, SippCall] = field(default_factory=dict)  # caller number → its SIPp, until finish()
    placed: list[str] = field(default_factory=list)  # every caller number placed

    @classmethod
    def create(cls, root: Path, seats: int, waiting: int, in_menu: int, talk_ms: int) -> Floor:
        phones = SeatPhones(ring_ms=300, talk_ms=talk_ms, folder=root / "seat-phones")
        seat_ids = [str(2001 + i) for i in range(seats)]
        platform = PlatformUnderTest(
            root / "platform",
            overrides={
                "seats": [{"id": s, "name": s, "contact": phones.contact_for(s)} for s in seat_ids],
                "acd": {"wrapup_s": 0, "ring_timeout_s": 6, "announce_every_s": 0, "auto_login": seat_ids},
            },
            dialplan="chaos",
        )
        return cls(platform, phones, seats, waiting, in_menu, tone_wav(root / "tone.wav", seconds=2, volume=0.2))

    def start(self) -> None:
        self.platform.start_all()
        wait_for("every seat ready", lambda: self.seat_states().count("ready") == self.seats, timeout_s=30)

    def stop(self) -> None:
        for call in self.calls.values():
            call.stop()
        self.phones.stop()
        self.platform.stop_all()

    # the floor

    def place(self, first: int, count: int, press_zero: bool, patience_ms: int, gap_s: float = 0.3) -> list[str]:
        numbers = []
        for index in range(first, first + count):
            number = caller_number(index)
            self.calls[number] = SippCall(
                self.platform.config.sip.port,
                caller_scenario(self.tone, "0" if press_zero else None, patience_ms),
                caller=number,
                timeout_s=patience_ms / 1000 + 120,
            )
            numbers.append(number)
            self.placed.append(number)
            time.sleep(gap_s)
        return numbers

    def fill(self, patience_ms: int) -> None:
        """Seats talking, callers waiting behind them, callers in the menu: then return."""
        self.place(0, self.seats + self.waiting, press_zero=True, patience_ms=patience_ms)
        wait_for("every seat on a call", lambda: self.seat_states().count("on_call") == self.seats, timeout_s=60)
        wait_for("the callers waiting", lambda: self.waiting_now() == self.waiting, timeout_s=60)
        first_menu = self.seats + self.waiting
        menu_numbers = self.place(first_menu, self.in_menu, press_zero=False, patience_ms=patience_ms)
        wanted = {masked(n) for n in menu_numbers}
        wait_for(
            "the menu callers in the menu",
            lambda: (
                len([c for c in self.live_calls() if c["caller"] in wanted and "menu" in c["ivr_path"]]) == len(wanted)
            ),
            timeout_s=60,
        )

    # what the platform says

    def seat_states(self) -> list[str]:
        result = self.platform.http("/api/v1/seats")
        return [s["state"] for s in result.body["seats"]] if result.status == 200 else []

    def waiting_now(self) -> int:
        result = self.platform.http("/api/v1/queues")
        return sum(int(q["waiting_now"]) for q in result.body["queues"]) if result.status == 200 else -1

    def live_calls(self) -> list[dict[str, Any]]:
        try:
            return self.platform.calls()
        except (OSError, AssertionError):
            return []

    # the account

    def finish(self) -> Account:
        """Wait for every caller to end, then account for each one."""
        sip_failures = {n: r.errors[:300] for n, r in ((n, c.wait()) for n, c in self.calls.items()) if not r.ok}
        self.calls.clear()
        wanted = {masked(number) for number in self.placed}

        def ended() -> list[dict[str, Any]] | None:
            mine = [c for c in self.live_calls() if c["caller"] in wanted]
            done = [c for c in mine if c["state"] == "ended"]
            return mine if len(done) == len(wanted) and len(mine) == len(wanted) else None

        try:
            records = wait_for("every record ended", ended, timeout_s=120, interval_s=1.0)
        except AssertionError:
            records = [c for c in self.live_calls() if c["caller"] in wanted]
        return Account(len(wanted), sip_failures, records, wanted)


def _served(record: dict[str, Any]) -> bool:
    outcome = record["outcome"]
    if record["state"] != "ended" or outcome not in SERVED:
        return False
    if outcome == "answered":
        return bool(record.get("seat"))
    return bool(record.get("has_recording"))  # a message, on disk


@dataclass(frozen=True)
class Account:
    placed: int
    sip_failures: dict[str, str]
    records: list[dict[str, Any]]
    wanted: set[str]

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(str(r["outcome"]) for r in self.records)

    @property
    def incomplete(self) -> list[dict[str, Any]]:
        """Records that do not show a served caller: not ended, not served, a seat call
        without its seat, a message without its recording."""
        return [record for record in self.records if not _served(record)]

    @property
    def missing(self) -> set[str]:
        return self.wanted - {str(r["caller"]) for r in self.records}

    @property
    def duplicated(self) -> list[str]:
        return [caller for caller, n in Counter(str(r["caller"]) for r in self.records).items() if n > 1]

    @property
    def dropped(self) -> int:
        callers = set(self.sip_failures) | {str(r["caller"]) for r in self.incomplete} | self.missing
        return len({masked(c) if c.isdigit() else c for c in callers})

    def summary(self) -> str:
        return (
            f"placed {self.placed}, dropped {self.dropped}, outcomes {dict(self.outcomes)}, "
            f"SIP failures {len(self.sip_failures)}, missing {sorted(self.missing)}, duplicated {self.duplicated}, "
            f"incomplete {[(r['caller'], r['state'], r['outcome']) for r in self.incomplete]}"
        )


# Messages through Redis faults: after hours every caller leaves a message (tests/dialplans/after_hours.yaml)
MONDAY_NIGHT = "2026-03-09T21:00:00+08:00"


@dataclass(frozen=True)
class MessageAccount:
    placed: int
    sip_failures: list[str]
    tickets: list[dict[str, Any]]  # of these callers, as the API lists them
    callers: set[str]  # masked
    ivr_steps: float  # IVR steps taken (the controller's histogram)
    ivr_steps_within_1s: float  # of which waited at most 1 s on Redis
    report: str  # where each message got to, when one is missing

    @property
    def lost(self) -> int:
        return len(self.callers - {str(t["caller"]) for t in self.tickets})

    @property
    def duplicate_tickets(self) -> int:
        return len(self.tickets) - len({str(t["call_id"]) for t in self.tickets})


class MessageDrill:
    """Callers leave messages one every ``gap_s`` while Redis is hung (SIGSTOP for ``hang_s``)
    and then killed (SIGKILL) and restarted; an ASR worker files the tickets."""

    def __init__(self, root: Path, first_caller: int = 0) -> None:
        self.platform = PlatformUnderTest(
            root / "platform",
            overrides={"asr": korean_asr()},
            dialplan="after_hours",
            environment={"HOTLINE_TEST_NOW": MONDAY_NIGHT},
        )
        self.message = korean_message_ulaw(root / "message.wav", "안녕하세요 감사합니다")
        self.first_caller = first_caller
        self.calls: list[SippCall] = []

    def run(self, callers: int, gap_s: float, hang_s: float) -> MessageAccount:
        """A third of the callers before the hang, a third during it, the rest around the kill."""
        platform = self.platform
        platform.start_all()
        platform.start_asr_worker()
        closed_s = duration_s(platform.config.paths.runtime_dir / "prompts" / "ivr" / "closed.wav")
        # the caller speaks a little after the beep: an IVR step may wait up to 1 s on a hung Redis
        caller_xml = scenario(
            INVITE, ANSWERED, pause(int(closed_s * 1000) + 1200), stream_audio(self.message), HOTLINE_HANGS_UP
        )
        numbers = [f"1390003{self.first_caller + i:04d}" for i in range(callers)]
        third = max(1, callers // 3)
        for index, number in enumerate(numbers):
            if index == third:
                platform.redis.send_signal(signal.SIGSTOP)  # hung, not refused: connections open, no answer
                hung_until = time.monotonic() + hang_s
            if index == 2 * third:
                time.sleep(max(0.0, hung_until - time.monotonic()))
                platform.redis.send_signal(signal.SIGCONT)
            self.calls.append(SippCall(platform.config.sip.port, caller_xml, caller=number, timeout_s=120))
            if index == 2 * third + 1:
                time.sleep(3)
                platform.redis.kill()  # mid-message, without a clean shutdown
                time.sleep(2)
                platform.redis.start()
            time.sleep(gap_s)
        failures = [r.errors[:300] for r in (call.wait() for call in self.calls) if not r.ok]
        self.calls.clear()
        masked_callers = {masked(n) for n in numbers}

        def ticketed() -> list[dict[str, Any]] | None:
            result = platform.http("/api/v1/tickets?limit=1000")
            if result.status != 200:
                return None
            mine = [t for t in result.body["tickets"] if t["caller"] in masked_callers]
            return mine if {t["caller"] for t in mine} == masked_callers else None

        report = ""
        try:
            wait_for("a ticket for every message", ticketed, timeout_s=180 + callers * 5, interval_s=1.0)
            # a rescan or a reclaimed job would make a second ticket: wait until no job is left in
            # the stream (pending or new), so a second ticket would be written by now
            wait_for("the ASR jobs all done", self._no_asr_jobs_left, timeout_s=120, interval_s=0.5)
        except AssertionError:
            report = self._report(masked_callers)
        result = platform.http("/api/v1/tickets?limit=1000")
        tickets = [t for t in result.body.get("tickets", []) if t["caller"] in masked_callers]
        return MessageAccount(
            placed=callers,
            sip_failures=failures,
            tickets=tickets,
            callers=masked_callers,
            ivr_steps=self._metric("hotline_ivr_step_redis_wait_seconds_count"),
            ivr_steps_within_1s=self._metric('hotline_ivr_step_redis_wait_seconds_bucket{le="1"}'),
            report=report,
        )

    def stop(self) -> None:
        for call in self.calls:
            call.stop()
        self.platform.stop_all()

    def _no_asr_jobs_left(self) -> bool:
        client = redis.Redis.from_url(self.platform.redis.url)
        try:
            return int(client.xlen(f"hotline:asr:jobs:{self.platform.config.platform.id}")) == 0
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _metric(self, sample: str) -> float:
        """One sample of the controller's /metrics (Prometheus text)."""
        for line in self.platform.http("/metrics", token=None).body.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return -1.0

    def _report(self, callers: set[str]) -> str:
        """Where each message got to: its call record, its ticket, parked jobs, the spool."""
        platform = self.platform
        tickets = platform.http("/api/v1/tickets?limit=1000").body.get("tickets", [])
        calls = [c for c in platform.calls() if c["caller"] in callers]
        parked = platform.http("/api/v1/asr/parked").body
        spool = sorted(p.name for p in (platform.config.paths.spool_dir / "voicemail").glob("*"))
        return (
            f"tickets for {sorted(t['caller'] for t in tickets if t['caller'] in callers)}; "
            f"calls {[(c['caller'], c['state'], c['outcome'], c.get('tags')) for c in calls]}; "
            f"parked {parked}; spool {spool}"
        )
