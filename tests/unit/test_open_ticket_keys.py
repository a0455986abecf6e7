"""The caller's open-ticket key (the voicemail merge key, also set by phone cases) on a real
redis-server: named by the caller index's keyed digest, never the number; the keys of earlier
versions (``hotline:tickets:open:<platform>:<number>``) renamed in the background, once, only the
platform's own, retried until Redis answers; merging as before, also while they wait to be
renamed; a closing ticket leaves no key with the number."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from calls.caller_index import CallerKeys
from cases.store import CaseStore
from common.private_files import local_secret
from hotline.asr_worker import worker_caller_keys
from hotline.config import ConfigError, parse_config
from hotline.redis_process import RedisProcess
from hotline.wiring.calls import CALLER_INDEX_KEY_FILE
from ivr.calendar import PlatformCalendar
from tests.support.ports import free_port
from tickets.model import TicketCategory, TicketState, Transcript
from tickets.open_keys import migrate_open_ticket_keys, migrate_until_done
from tickets.store import CreateOutcome, CreateResult, RedisTicketStore

CST = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)
CALLER = "13812345678"
OLD = "hotline:tickets:open:"


def _store(client: aioredis.Redis, secret: str = "the-controllers-secret") -> RedisTicketStore:
    calendar = PlatformCalendar()
    return RedisTicketStore(client, lambda _p: calendar, caller_keys=CallerKeys(secret))


async def _message(
    store: RedisTicketStore, recording: str, caller: str = CALLER, platform: str = "kunming"
) -> CreateResult:
    return await store.create_from_voicemail(
        recording=recording,
        platform=platform,
        caller=caller,
        call_id=recording.removesuffix(".wav"),
        accepted_at=T0,
        transcript=Transcript(text="路灯坏了"),
        category=TicketCategory.COMPLAINT,
    )


async def _names(client: aioredis.Redis, pattern: str) -> set[str]:
    return {key.decode() if isinstance(key, bytes) else key for key in await client.keys(pattern)}


async def test_the_key_names_no_number_and_needs_the_secret(client: aioredis.Redis) -> None:
    store = _store(client)
    first = await _message(store, "a.wav")
    (key,) = await _names(client, "hotline:tickets:open*")
    assert CALLER not in key and CALLER[-4:] not in key
    assert key == store.open_key("kunming", CALLER)
    # another secret (another deployment, or a worker that made its own): another name
    assert _store(client, "another-secret").open_key("kunming", CALLER) != key
    # the same number on another platform: another name as well
    assert store.open_key("dali", CALLER) != key
    # merging as before: a repeat message links to the open ticket; closing it frees the caller
    again = await _message(store, "b.wav")
    assert again.outcome is CreateOutcome.LINKED and again.ticket.id == first.ticket.id
    await store.transition(first.ticket.id, TicketState.RESOLVED, at=T0 + timedelta(hours=1), actor="seat 1001")
    assert not await client.keys("hotline:tickets:open*")
    assert (await _message(store, "c.wav")).outcome is CreateOutcome.CREATED


async def test_old_keys_are_renamed_once_and_merging_goes_on(client: aioredis.Redis) -> None:
    store = _store(client)
    ticket = (await _message(store, "a.wav")).ticket
    # what an earlier version left: the same open ticket under the number's name
    await client.rename(store.open_key("kunming", CALLER), f"{OLD}kunming:{CALLER}")
    # another platform's old key is its controller's to rename (with its own secret)
    await client.set(f"{OLD}dali:{CALLER}", "DL-20260302-0001")
    # a caller whose old key met a new one written after the upgrade: the new (newer) one wins
    await client.set(f"{OLD}kunming:13900000000", "KM-20260301-0001")
    await client.set(store.open_key("kunming", "13900000000"), "KM-20260302-0009")
    # a number in another form (+86…) is renamed as the store would name it
    await client.set(f"{OLD}kunming:+8613700000000", "KM-20260301-0002")

    assert await migrate_open_ticket_keys(client, "kunming", store) == 3
    assert await _names(client, f"{OLD}*") == {f"{OLD}dali:{CALLER}"}
    assert await client.get(store.open_key("kunming", CALLER)) == ticket.id.encode()
    assert await client.get(store.open_key("kunming", "13900000000")) == b"KM-20260302-0009"
    assert await client.get(store.open_key("kunming", "+8613700000000")) == b"KM-20260301-0002"
    # idempotent: a second start finds nothing
    assert await migrate_open_ticket_keys(client, "kunming", store) == 0
    # the caller's next message still merges into the ticket opened before the upgrade
    again = await _message(store, "b.wav")
    assert again.outcome is CreateOutcome.LINKED and again.ticket.id == ticket.id
    # a platform id that is a prefix of another's touches only its own keys
    await client.set(f"{OLD}kunmingxi:{CALLER}", "X")
    assert await migrate_open_ticket_keys(client, "kunming", store) == 0


@pytest.mark.parametrize("count", [2_500])
async def test_many_old_keys_all_move_across_scan_pages(client: aioredis.Redis, count: int) -> None:
    store = _store(client)
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        pipe.set(f"{OLD}kunming:1380{n:07d}", f"KM-20260302-{n % 10000:04d}")
    await pipe.execute()
    assert await migrate_open_ticket_keys(client, "kunming", store) == count
    assert not await client.keys(f"{OLD}*")
    assert len(await client.keys("hotline:tickets:open-by-caller:kunming:*")) == count
    assert await client.get(store.open_key("kunming", "13800001234")) == b"KM-20260302-1234"


def test_an_asr_worker_never_makes_its_own_caller_secret(tmp_path: Path) -> None:
    """A worker host without the controller's key would name other keys, and its callers'
    messages would silently stop merging: it refuses to start, naming the file."""
    config = parse_config("", "config.yaml", tmp_path)
    key_file = config.paths.runtime_dir / CALLER_INDEX_KEY_FILE
    with pytest.raises(ConfigError, match="caller-index-key"):
        worker_caller_keys(config)
    assert not key_file.exists()
    secret = local_secret(key_file)  # as the controller makes it
    assert worker_caller_keys(config).digest("kunming", CALLER) == CallerKeys(secret).digest("kunming", CALLER)


async def test_the_migration_is_retried_with_back_off_until_redis_answers(tmp_path: Path) -> None:
    """Redis away when the controller starts: the background migration logs, waits 1 s, 2 s, …
    and renames once Redis is back (no second controller start needed)."""
    server = RedisProcess(tmp_path, free_port())
    client = aioredis.Redis.from_url(server.url)
    store = _store(client)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # Redis comes back during the second wait, an old key in it
            server.start()
            await client.set(f"{OLD}kunming:{CALLER}", "KM-20260302-0001")

    try:
        with capture_logs() as logs:
            assert await migrate_until_done(client, "kunming", store, sleep=sleep) == 1
        assert waits == [1.0, 2.0]
        assert await client.get(store.open_key("kunming", CALLER)) == b"KM-20260302-0001"
        assert not await client.keys(f"{OLD}*")
        failed = [entry for entry in logs if entry["event"] == "tickets.open_keys_not_renamed"]
        assert [(entry["attempt"], entry["retry_in_s"]) for entry in failed] == [(1, 1.0), (2, 2.0)]
        (done,) = [entry for entry in logs if entry["event"] == "tickets.open_keys_renamed"]
        assert done["keys"] == 1 and done["attempts"] == 3
    finally:
        await client.aclose()
        server.stop()


async def test_before_the_migration_an_old_key_still_merges_and_closing_leaves_no_number(
    client: aioredis.Redis,
) -> None:
    store = _store(client)
    cases = CaseStore(client, store, lambda _p: PlatformCalendar(), CallerKeys("the-controllers-secret"))
    ticket = (await _message(store, "a.wav")).ticket
    old = f"{OLD}kunming:{CALLER}"
    await client.rename(store.open_key("kunming", CALLER), old)  # not renamed yet
    # a repeat message merges into it, and the desk lists it among the caller's open cases
    again = await _message(store, "b.wav")
    assert again.outcome is CreateOutcome.LINKED and again.ticket.id == ticket.id
    assert [t.id for t in await cases.open_cases("kunming", CALLER, 10)] == [ticket.id]
    # it closes: the old key goes in the same transaction; the next message is a new matter
    await store.transition(ticket.id, TicketState.RESOLVED, at=T0 + timedelta(hours=1), actor="seat 1001")
    assert not await client.keys("hotline:tickets:open*")
    fresh = (await _message(store, "c.wav")).ticket
    assert fresh.id != ticket.id
    # a new key beside a stale old one (a message after the upgrade): closing drops both
    await client.set(old, fresh.id)
    await store.transition(fresh.id, TicketState.RESOLVED, at=T0 + timedelta(hours=2), actor="seat 1001")
    assert not await client.keys("hotline:tickets:open*")
    # an old key naming a closed ticket is replaced with the new one's key, not kept beside it
    await client.set(old, ticket.id)
    newest = await _message(store, "d.wav")
    assert newest.outcome is CreateOutcome.CREATED
    assert await _names(client, "hotline:tickets:open*") == {store.open_key("kunming", CALLER)}


async def test_closing_another_ticket_keeps_the_old_key_of_the_open_one(client: aioredis.Redis) -> None:
    """Only the closing ticket's keys go: another ticket's old key still merges until renamed."""
    store = _store(client)
    first = (await _message(store, "a.wav")).ticket
    other = (await _message(store, "b.wav", caller="13900000000")).ticket
    old = f"{OLD}kunming:{CALLER}"
    await client.rename(store.open_key("kunming", CALLER), old)
    await client.set(f"{OLD}kunming:13900000000", first.id)  # nonsense, but not this ticket's to drop
    await client.delete(store.open_key("kunming", "13900000000"))
    await store.transition(other.id, TicketState.RESOLVED, at=T0 + timedelta(hours=1), actor="seat 1001")
    assert await client.get(old) == first.id.encode()
    assert await client.get(f"{OLD}kunming:13900000000") == first.id.encode()
