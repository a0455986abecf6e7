"""A hung Redis (SIGSTOP: connections accepted, nothing answered) and the call path: no IVR step
waits on it beyond its budget, AMI event handlers never wait on it, and nothing is lost once it
answers again. The client here has no socket timeout at all, so any wait on Redis would be
forever (the hang guards below would fail the test). Also the budget's own rules."""

from __future__ import annotations

import asyncio
import json
import signal
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from acd.config import AcdConfig, SeatConfig
from acd.engine import AcdEngine
from acd.events import EventBus
from acd.model import QueuedCall, waiting_key
from acd.seat import SeatState
from acd.seats import SeatService, seats_key
from calls.ami_bridge import CallEventBridge
from calls.callbacks import RedisCallbackList
from calls.handoff import Handoff, RedisHandoffs
from calls.model import CallOutcome, CallRecord
from calls.redis_budget import RedisBudget
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from common.metrics import Histogram
from hotline.redis_process import RedisProcess
from ivr.calendar import PlatformCalendar
from ivr.dialplan.registry import DialplanRegistry
from ivr.entry import IvrEntry
from ivr.interpreter import IvrContext
from telephony.agi_protocol import quote_argument
from telephony.agi_server import AgiServer
from tests.support.fake_ami_link import FakeAmiLink
from tests.support.fake_asterisk_agi import ReplayingAsterisk
from tests.support.ports import free_port
from tests.support.waiting import wait_until
from tickets.store import RedisTicketStore
from voicemail.intake import MessageIntake
from voicemail.queue import AsrQueue
from voicemail.sink import TicketStoreSink

NOW = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Kunming
HANG_GUARD_S = 30.0  # a wait on the hung Redis would last for ever: this ends the test instead
CALL_ID = "kunming-1795846524.0"
TOKEN = "0123456789abcdef01234567"

PLAN = """
platform: kunming
name: 昆明市12345
area_code: "0871"
prompts: {welcome: 您好。, menu: 请按键。, leave: 请留言。, bye: 再见。}
start: welcome
handoff_start: menu
nodes:
  welcome: {kind: play, prompts: [welcome], next: menu}
  menu: {kind: menu, prompt: menu, options: {0: seat, 1: complaint, 2: vm}, timeout_s: 3, retries: 0, default: vm}
  seat: {kind: queue, queue: general, max_wait_s: 30, next: vm}
  complaint: {kind: set, tags: {category: complaint}, next: vm}
  vm: {kind: voicemail, prompt: leave, max_s: 20, silence_s: 2, next: bye}
  bye: {kind: hangup, prompt: bye}
"""

ENVIRONMENT = (
    "\n".join(
        [
            "agi_network: yes",
            "agi_network_script: ivr",
            "agi_request: agi://127.0.0.1/ivr",
            "agi_channel: PJSIP/trunk-00000000",
            f"agi_uniqueid: {CALL_ID}",
            "agi_callerid: 13800000000",
            "agi_calleridname: 张三丰",
            "agi_dnid: 12345",
            "agi_context: hotline-entry",
            "agi_extension: s",
            "agi_priority: 2",
        ]
    )
    + "\n\n"
)


@dataclass
class HungRedis:
    server: RedisProcess
    client: aioredis.Redis  # no socket timeout: a wait on the hung server never ends by itself

    def hang(self) -> None:
        self.server.send_signal(signal.SIGSTOP)

    def answer_again(self) -> None:
        self.server.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        server.send_signal(signal.SIGCONT)
        server.stop()


@pytest.fixture
async def hung(redis_process: RedisProcess) -> AsyncIterator[HungRedis]:
    client = aioredis.Redis(host="127.0.0.1", port=redis_process.port, socket_timeout=None)
    yield HungRedis(redis_process, client)
    redis_process.send_signal(signal.SIGCONT)
    await client.aclose()


class NoSeats:
    """The IVR's CallQueue: nobody staffs the queues (not used by this dialplan's walk)."""

    async def enqueue(self, call: QueuedCall) -> None:
        raise AssertionError("no queue node on this walk")

    def staffed(self, queue: str) -> bool:
        return False


async def _no_prompts(_plan: object) -> None:
    return None


@pytest.mark.parametrize("token_as_argument", [True, False], ids=["dialplan-argument", "older-dialplan"])
async def test_ivr_steps_never_wait_on_a_hung_redis_longer_than_their_budget(
    hung: HungRedis, tmp_path: Path, token_as_argument: bool
) -> None:
    """The hand-off token comes as the AGI's argument (as the rendered dialplan passes it) or,
    from a dialplan rendered before that, is asked for with GET VARIABLE: the same walk."""
    budget = RedisBudget(op_timeout_s=0.2)  # a step may wait 0.4 s on Redis in all
    store = RedisCallStore(hung.client, timedelta(days=1), "kunming")
    tracker = CallTracker(store, "kunming", lambda: NOW, budget)
    callbacks = RedisCallbackList(hung.client, "kunming")
    tracker.on_ended(callbacks.on_call_ended)
    calendar = PlatformCalendar()
    tickets = RedisTicketStore(hung.client, lambda _platform: calendar)
    spool = tmp_path / "spool"
    handoffs = RedisHandoffs(hung.client, budget)
    # another platform handed this caller over: its case is in the shared Redis
    case = Handoff(token=TOKEN, from_platform="province", from_call_id="province-1.1", to="kunming", created_at=NOW)
    await handoffs.create(case)
    plan_file = tmp_path / "dialplans" / "kunming.yaml"
    plan_file.parent.mkdir()
    plan_file.write_text(PLAN, encoding="utf-8")
    registry = DialplanRegistry(plan_file, tmp_path / "prompts", "kunming", _no_prompts)
    await registry.load_initial()
    context = IvrContext(
        tracker=tracker, prompts_dir=tmp_path / "prompts", spool_dir=spool, timezone="Asia/Shanghai",
        clock=lambda: NOW, acd=NoSeats(), platform="kunming", handoffs=handoffs, budget=budget,
        messages=MessageIntake(spool, AsrQueue(hung.client, TicketStoreSink(tickets), "kunming"), budget),
    )  # fmt: skip
    dead_air = Histogram("gaps", "", (0.5, 1.0, 2.5))
    server = AgiServer("127.0.0.1", 0, {"ivr": IvrEntry(tracker, registry, context)}, on_gap=dead_air.observe)
    await server.start()
    writer = asyncio.create_task(tracker.run_flusher(interval_s=0.1))
    (spool / "voicemail").mkdir(parents=True)
    with wave.open(str(spool / "voicemail" / f"{CALL_ID}.wav"), "wb") as message:  # what RECORD FILE leaves
        message.setparams((1, 2, 8000, 0, "NONE", "not compressed"))
        message.writeframes(b"\x00\x10" * 8000 * 3)
    # the rendered dialplan passes the token and says it answered; an older one passes neither
    arguments = f"\nagi_arg_1: {TOKEN}\nagi_arg_2: answered\n\n"
    environment = ENVIRONMENT.replace("\n\n", arguments) if token_as_argument else ENVIRONMENT
    asterisk = ReplayingAsterisk(
        environment,
        {
            f"GET VARIABLE {quote_argument('PJSIP_HEADER(read,X-Hotline-Handoff)')}": f"200 result=1 ({TOKEN})\n",
            f"GET DATA {quote_argument(str(tmp_path / 'prompts' / 'menu'))} 3000 1": "200 result=1\n",
        },
        default_reply="200 result=0\n",
    )
    try:
        hung.hang()
        async with asyncio.timeout(HANG_GUARD_S):
            await asyncio.wait_for(asterisk.run(server.port), HANG_GUARD_S)
            await wait_until(lambda: server.stats.sessions_total == 1 and server.stats.sessions_active == 0)
        assert asterisk.received[-1] == "HANGUP"  # the whole walk, to the goodbye
        asked = [c for c in asterisk.received if c.startswith("GET VARIABLE")]
        assert len(asked) == (0 if token_as_argument else 1)  # one AGI round trip fewer
        assert ("ANSWER" in asterisk.received) is not token_as_argument  # and one more
        assert not [c for c in asterisk.received if "HOTLINE_DIALPLAN" in c]  # the version is on the record
        live = tracker.get_live(CALL_ID)
        assert live is not None and live.dialplan_version == registry.current.version
        assert server.stats.sessions_failed == 0
        # the pick-up of the case, and the message's ASR job, gave up on Redis; nothing else waited
        assert budget.read_timeouts == 2
        assert budget.step_wait.count == 5  # the pick-up, then menu, complaint, vm, bye
        assert budget.step_wait.max <= 1.0  # the chaos target: no IVR step waits more on Redis
        assert dead_air.max < 2.5  # and the caller heard no long silence from us for any reason
        live = tracker.get_live(CALL_ID)
        assert live is not None and live.ivr_path == ("menu", "complaint", "vm", "bye")
        assert live.tags["handoff"] == TOKEN  # a handed-over caller: not sent through the menu again
        assert tracker.unsaved == 1

        hung.answer_again()
        async with asyncio.timeout(HANG_GUARD_S):
            await wait_until(lambda: tracker.unsaved == 0, timeout_s=HANG_GUARD_S)
            assert await budget.drain(HANG_GUARD_S)
        stored = await store.get(CALL_ID)
        assert stored is not None
        assert stored.ivr_path == ("menu", "complaint", "vm", "bye")
        assert stored.digits == ("menu=1",)
        assert (stored.outcome, stored.recording) == (CallOutcome.VOICEMAIL, f"voicemail/{CALL_ID}.wav")
        assert stored.tags["category"] == "complaint"
        picked = await handoffs.get(TOKEN)
        assert picked is not None and picked.picked_up_call_id == CALL_ID  # recorded once Redis answered
        assert (spool / "voicemail" / f"{CALL_ID}.json").is_file()  # the spool rescan queues its job
    finally:
        writer.cancel()
        await server.close()
        await budget.close()


async def test_ami_event_handlers_never_wait_on_a_hung_redis(hung: HungRedis) -> None:
    budget = RedisBudget(op_timeout_s=0.2)
    ami = FakeAmiLink()
    store = RedisCallStore(hung.client, timedelta(days=1), "kunming")
    tracker = CallTracker(store, "kunming", lambda: NOW, budget)
    callbacks = RedisCallbackList(hung.client, "kunming")
    tracker.on_ended(callbacks.on_call_ended)
    CallEventBridge(ami, tracker)
    events = EventBus(hung.client, budget, platform="kunming")
    seats = SeatService(
        (SeatConfig(id="1001", secret="seat-secret-1"),), hung.client, events=events, clock=lambda: NOW,
        platform="kunming", max_missed=1, budget=budget,
    )  # fmt: skip
    engine = AcdEngine(
        config=AcdConfig(wrapup_s=0), seats=seats, ami=ami, client=hung.client, tracker=tracker, events=events,
        clock=lambda: NOW, recordings_dir=None, platform="kunming", missed_calls=callbacks, budget=budget,
    )  # fmt: skip
    engine.start()
    writer = asyncio.create_task(tracker.run_flusher(interval_s=0.1))
    try:
        await seats.login("1001")
        assert await budget.drain(HANG_GUARD_S)
        hung.hang()
        async with asyncio.timeout(HANG_GUARD_S):
            caller = {"Uniqueid": "k-1", "Linkedid": "k-1", "Channel": "PJSIP/trunk-1", "Context": "from-trunk"}
            await ami.emit("Newchannel", **caller, CallerIDNum="13800000001", Exten="12345")
            await ami.emit("Newstate", Uniqueid="k-1", ChannelState="6")
            await engine.enqueue(QueuedCall("k-1", "PJSIP/trunk-1", "general", (), 0, NOW.timestamp(), "13800000001"))
            await wait_until(lambda: len(ami.sent("Originate")) == 1)
            offer = ami.sent("Originate")[0]["ChannelId"]
            await ami.emit("Hangup", Uniqueid=offer, Channel="PJSIP/1001-1", Cause="19")
            await ami.emit("OriginateResponse", Uniqueid=offer, Response="Failure", Reason="3")
            await ami.emit("Hangup", Uniqueid="k-1", Channel="PJSIP/trunk-1", Cause="16")
        assert seats.get("1001").state is SeatState.NOT_READY  # the seat rang out: its own miss
        assert engine.waiting() == []
        assert tracker.unsaved == 1 and budget.backlog > 0  # all of it waits for Redis, not the events

        hung.answer_again()
        async with asyncio.timeout(HANG_GUARD_S):
            await wait_until(lambda: tracker.unsaved == 0, timeout_s=HANG_GUARD_S)
            assert await budget.drain(HANG_GUARD_S)
        stored = await store.get("k-1")
        assert stored is not None and stored.outcome is CallOutcome.ABANDONED
        seat = json.loads(cast(bytes, await hung.client.hget(seats_key("kunming"), "1001")))
        assert (seat["state"], seat["missed_in_a_row"]) == ("not_ready", 1)
        assert await hung.client.hlen(waiting_key("kunming")) == 0
        assert [c.caller for c in await callbacks.pending(10)] == ["13800000001"]  # the abandoned caller
    finally:
        writer.cancel()
        await engine.close()
        await budget.close()


# the budget's own rules


def _record(call_id: str) -> CallRecord:
    return CallRecord(call_id=call_id, platform="kunming", started_at=NOW)


async def test_writes_run_in_order_are_retried_while_redis_fails_and_the_last_of_a_key_wins() -> None:
    budget = RedisBudget()
    done: list[str] = []
    failures = [RedisConnectionError("refused"), RedisConnectionError("refused")]

    async def job(name: str) -> None:
        if name == "b" and failures:
            raise failures.pop()
        done.append(name)

    def write(name: str, key: str | None = None) -> None:
        budget.write(name, lambda: job(name), key=key)

    write("a")
    write("seat-1: ringing", key="seat-1")
    write("b")
    write("seat-1: on call", key="seat-1")  # replaces the one not yet written, in its place
    write("c")
    assert await budget.drain(HANG_GUARD_S)
    assert done == ["a", "seat-1: on call", "b", "c"]
    assert budget.writes_failed == 2 and budget.writes_dropped == 0
    await budget.close()


async def test_a_full_backlog_drops_best_effort_writes_first_and_counts_every_drop() -> None:
    budget = RedisBudget(backlog_max=3)
    done: list[str] = []

    async def job(name: str) -> None:
        done.append(name)

    for name, droppable in (
        ("event-1", True),
        ("seat", False),
        ("waiting", False),
        ("record", False),
        ("event-2", True),
    ):
        budget.write(name, lambda name=name: job(name), droppable=droppable)  # type: ignore[misc]
    assert await budget.drain(HANG_GUARD_S)
    assert done == ["seat", "waiting", "record"]
    assert budget.writes_dropped == 2
    await budget.close()


async def test_reads_give_the_default_after_the_op_timeout_and_a_step_shares_one_budget() -> None:
    budget = RedisBudget(op_timeout_s=0.1)
    never = asyncio.Event()

    async def hangs() -> str:
        await never.wait()
        return "late"

    async def fails() -> str:
        raise RedisConnectionError("refused")

    assert await budget.read("one", hangs, "default") == "default"
    assert await budget.read("refused", fails, "default") == "default"
    assert (budget.read_timeouts, budget.read_errors) == (1, 1)
    with budget.step():
        for _ in range(5):  # five reads in one step: together no longer than the step's budget
            assert await budget.read("many", hangs, "default") == "default"
    assert budget.step_wait.count == 1
    assert budget.step_wait.max <= 1.0
    assert budget.slow
    budget.answered()
    assert not budget.slow


async def test_a_write_waited_for_is_done_behind_when_redis_is_slow() -> None:
    budget = RedisBudget(op_timeout_s=0.1)
    release = asyncio.Event()
    done: list[str] = []

    async def slow_write() -> None:
        await release.wait()
        done.append("written")

    assert not await budget.write_and_wait("hand-off", slow_write)  # the caller goes on
    release.set()
    assert await budget.drain(HANG_GUARD_S)
    assert done == ["written"]

    async def quick() -> None:
        done.append("quick")

    assert await budget.write_and_wait("hand-off", quick)
    await budget.close()
