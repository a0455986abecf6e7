"""Monitors kept in Redis (monitor/store.py) with a real Redis: a "restarted" service (a new
MonitorService on the same Redis) takes back the monitors its predecessor left, keeps the one
whose supervisor's channel Asterisk still has (and follows its end), ends and audits the one whose
channel is gone, and keeps the ended list; bad records are dropped, never used."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

import monitor.service as monitor_service
from monitor.model import Mode
from monitor.service import GONE_AWAY, MonitorService, MonitorSettings, SeatCall
from monitor.store import RedisMonitorStore, monitor_record, parse_monitor
from tests.support.fake_ami_link import FakeAmiLink
from tests.support.waiting import wait_until
from tests.unit.test_monitor import PHONE_CHANNEL, SEAT_CHANNEL, Audit, SeatCalls

OTHER_SEAT_CHANNEL = "PJSIP/1002-0000002b"
OTHER_PHONE_CHANNEL = "PJSIP/1091-0000002c"
LIVE_KEY = "hotline:monitors:kunming"


def service(ami: FakeAmiLink, client: aioredis.Redis, audit: Audit, calls: SeatCalls | None = None) -> MonitorService:
    settings = MonitorSettings(frozenset({"1090", "1091"}), 20.0, "kunming")
    return MonitorService(ami, calls or SeatCalls(), settings, audit, store=RedisMonitorStore(client, "kunming"))


async def answered(ami: FakeAmiLink, monitor_id: str, channel: str) -> None:
    await ami.emit("Newchannel", Uniqueid=monitor_id, Channel=channel)
    await ami.emit("OriginateResponse", Uniqueid=monitor_id, Response="Success", Channel=channel)


async def test_a_restart_keeps_the_running_monitor_and_ends_the_gone_one(client: aioredis.Redis) -> None:
    ami, audit, calls = FakeAmiLink(), Audit(), SeatCalls()
    calls.calls["kunming-2.2"] = SeatCall("kunming-2.2", "1002", OTHER_SEAT_CHANNEL)
    before = service(ami, client, audit, calls)
    kept = await before.start("kunming-1.1", Mode.LISTEN, "1090", "sup")
    await answered(ami, kept.id, PHONE_CHANNEL)
    await before.switch(kept.id, Mode.WHISPER)
    gone = await before.start("kunming-2.2", Mode.BARGE, "1091", "sup2")
    await answered(ami, gone.id, OTHER_PHONE_CHANNEL)
    stored = {m.id: m for m in (await RedisMonitorStore(client, "kunming").load())[0]}
    assert stored == {kept.id: before.get(kept.id), gone.id: before.get(gone.id)}  # every field back

    # the controller goes; meanwhile the second supervisor hangs up. A new one starts:
    ami2, audit2 = FakeAmiLink(), Audit()
    ami2.channels = [{"uniqueid": kept.id, "channel": PHONE_CHANNEL}, {"uniqueid": "kunming-1.1", "channel": "x"}]
    after = service(ami2, client, audit2)
    assert after.active() == []  # nothing until it reaches Asterisk
    await ami2.reconnect()
    (running,) = after.active()
    assert (running.id, running.state, running.mode, running.modes) == (
        kept.id,
        "active",
        "whisper",
        ("listen", "whisper"),
    )
    assert (running.who, running.call_id, running.channel) == ("sup", "kunming-1.1", PHONE_CHANNEL)
    (ended,) = after.ended()
    assert (ended.id, ended.end_reason, ended.who) == (gone.id, GONE_AWAY, "sup2")
    (entry,) = audit2.entries  # the end that happened while away is audited, once
    assert entry.call_id == "kunming-2.2" and entry.who == "sup2" and "mode=barge" in entry.action
    assert list(await client.hkeys(LIVE_KEY)) == [kept.id.encode()]

    # the kept one is followed as before: its phone hangs up → ended, audited, off Redis's live set
    await ami2.emit("Hangup", Uniqueid=kept.id, Channel=PHONE_CHANNEL)
    assert after.active() == [] and len(audit2.entries) == 2
    assert await client.hlen(LIVE_KEY) == 0
    # a second restart: nothing running, both ended kept (newest first), nothing audited again
    ami3, audit3 = FakeAmiLink(), Audit()
    third = service(ami3, client, audit3)
    await ami3.reconnect()
    assert third.active() == [] and audit3.entries == []
    assert [m.id for m in third.ended()] == [kept.id, gone.id]


async def test_asterisk_restarting_ends_monitors_whose_channels_it_lost(client: aioredis.Redis) -> None:
    ami, audit = FakeAmiLink(), Audit()
    monitors = service(ami, client, audit)
    await ami.reconnect()
    monitor = await monitors.start("kunming-1.1", Mode.LISTEN, "1090", "sup")
    await answered(ami, monitor.id, PHONE_CHANNEL)
    await ami.reconnect()  # AMI back, the channel gone: no Hangup was ever seen
    assert monitors.active() == [] and monitors.ended()[0].end_reason == GONE_AWAY
    assert len(audit.entries) == 1 and await client.hlen(LIVE_KEY) == 0


async def test_bad_or_foreign_records_are_never_taken_back(client: aioredis.Redis) -> None:
    ami, audit = FakeAmiLink(), Audit()
    monitors = service(ami, client, audit)
    await ami.reconnect()
    good = await monitors.start("kunming-1.1", Mode.LISTEN, "1090", "sup")
    record = json.loads(monitor_record(monitors.get(good.id)))  # type: ignore[arg-type]
    injected = {**record, "id": "monitor-00000000000000aa", "spied_channel": "PJSIP/1001-0000001a\r\nAction: Originate"}
    foreign = {**record, "id": "monitor-00000000000000bb", "platform": "dali"}
    await client.hset(LIVE_KEY, mapping={
        "a": json.dumps(injected), "b": json.dumps(foreign), "c": "not json", "d": "x" * 10_000,
        "e": json.dumps({**record, "id": "monitor-00000000000000cc", "state": "ended"}),
    })  # fmt: skip
    ami2 = FakeAmiLink()
    ami2.channels = [
        {"uniqueid": good.id},
        {"uniqueid": "monitor-00000000000000aa"},
        {"uniqueid": "monitor-00000000000000bb"},
    ]
    after = service(ami2, client, Audit())
    await ami2.reconnect()
    assert [m.id for m in after.active()] == [good.id]
    assert ami2.sent("Hangup") == []


def test_a_record_round_trips_and_its_time_keeps_its_zone() -> None:
    record = {
        "id": "monitor-0123456789abcdef", "call_id": "kunming-1.1", "seat": "1001", "spied_channel": SEAT_CHANNEL,
        "phone": "1090", "who": "sup", "platform": "kunming", "mode": "listen", "state": "ringing",
        "started_at": "2026-03-02T08:00:00+00:00", "channel": "", "answered_at": None, "ended_at": None,
        "end_reason": "", "modes": ["listen"],
    }  # fmt: skip
    monitor = parse_monitor(json.dumps(record))
    assert json.loads(monitor_record(monitor)) == record
    for bad in ({"started_at": "2026-03-02T08:00:00"}, {"mode": "sing"}, {"phone": "13912345678"}, {"id": "x"}):
        try:
            parse_monitor(json.dumps({**record, **bad}))
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


class HungStore:
    """Redis that never answers (a hung primary)."""

    async def save(self, monitor: object) -> None:
        await asyncio.Event().wait()

    async def ended(self, monitor: object, keep: int) -> None:
        await asyncio.Event().wait()

    async def load(self) -> tuple[list[object], list[object]]:
        await asyncio.Event().wait()
        raise AssertionError


async def test_a_hung_redis_never_holds_asterisks_events_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor_service, "STORE_TIMEOUT_S", 0.05)
    ami, audit = FakeAmiLink(), Audit()
    settings = MonitorSettings(frozenset({"1090"}), 20.0, "kunming")
    monitors = MonitorService(ami, SeatCalls(), settings, audit, store=HungStore())  # type: ignore[arg-type]
    async with asyncio.timeout(30):  # each store call gives up after STORE_TIMEOUT_S
        await ami.reconnect()
        monitor = await monitors.start("kunming-1.1", Mode.LISTEN, "1090", "sup")
        await answered(ami, monitor.id, PHONE_CHANNEL)
        await ami.emit("Hangup", Uniqueid=monitor.id, Channel=PHONE_CHANNEL)
    assert monitors.active() == [] and len(audit.entries) == 1  # the monitor worked, its end audited


async def test_a_monitor_ending_during_its_start_or_switch_is_not_stored_live_again(client: aioredis.Redis) -> None:
    """Found (session 7 review): ``start`` and ``switch`` saved the monitor after their AMI
    action returned; a Hangup handled meanwhile had already ended it (off the live hash, on the
    ended list), and the save put it back in the live hash (``switch`` back in the running
    monitors too): shown running, and ended and audited a second time after the next restart."""
    ami, audit = FakeAmiLink(), Audit()
    monitors = service(ami, client, audit)
    ami.gates["playdtmf"] = asyncio.Event()
    kept = await monitors.start("kunming-1.1", Mode.LISTEN, "1090", "sup")
    await answered(ami, kept.id, PHONE_CHANNEL)
    switching = asyncio.create_task(monitors.switch(kept.id, Mode.WHISPER))
    await asyncio.sleep(0)  # the PlayDTMF is on its way
    await ami.emit("Hangup", Uniqueid=kept.id, Channel=PHONE_CHANNEL)  # the supervisor hangs up meanwhile
    ami.gates["playdtmf"].set()
    with pytest.raises(monitor_service.MonitorRefused):
        await switching
    assert monitors.active() == [] and await client.hlen(LIVE_KEY) == 0

    ami.gates["originate"] = asyncio.Event()
    starting = asyncio.create_task(monitors.start("kunming-1.1", Mode.LISTEN, "1090", "sup"))
    await wait_until(monitors.active, timeout_s=30)
    (ringing,) = monitors.active()
    await ami.emit("Hangup", Uniqueid=ringing.id, Channel=PHONE_CHANNEL)  # rejected at once
    ami.gates["originate"].set()
    await starting
    assert monitors.active() == [] and await client.hlen(LIVE_KEY) == 0
    assert len(audit.entries) == 2  # each ended once
