"""Monitors kept in Redis, so that a controller restart neither forgets a supervisor on a call
nor loses its audit: the live ones in a hash (``hotline:monitors:<platform>``, monitor id →
record), the last ended ones in a capped list (``hotline:monitors:ended:<platform>``). What is
read back is checked here, where it enters (ids, channels and phones go to Asterisk again): a
record that does not fit is dropped with a warning, never used."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
import structlog
from pydantic import TypeAdapter, ValidationError

from monitor.model import MONITOR_PREFIX, Mode, Monitor, MonitorState
from telephony.values import PlatformId, SeatChannel, SeatId

log = structlog.get_logger(__name__)

_ID = re.compile(re.escape(MONITOR_PREFIX) + r"[0-9a-f]{16}")
_CALL_ID = re.compile(r"[\w.:-]{1,128}")
_PLATFORM: TypeAdapter[str] = TypeAdapter(PlatformId)
_SEAT: TypeAdapter[str] = TypeAdapter(SeatId)
_CHANNEL: TypeAdapter[str] = TypeAdapter(SeatChannel)
MAX_RECORD_BYTES = 8192


class MonitorStore(Protocol):
    """Where a controller's monitors outlive it (RedisMonitorStore; a dict in unit tests)."""

    async def save(self, monitor: Monitor) -> None: ...

    async def ended(self, monitor: Monitor, keep: int) -> None:
        """``monitor`` is over: off the live ones, first of the ended ones (``keep`` of them)."""
        ...

    async def load(self) -> tuple[list[Monitor], list[Monitor]]:
        """(live monitors, ended ones newest first), each checked; bad records are left out."""
        ...


def monitor_record(monitor: Monitor) -> str:
    return json.dumps(
        {
            "id": monitor.id,
            "call_id": monitor.call_id,
            "seat": monitor.seat,
            "spied_channel": monitor.spied_channel,
            "phone": monitor.phone,
            "who": monitor.who,
            "platform": monitor.platform,
            "mode": monitor.mode.value,
            "started_at": monitor.started_at.isoformat(),
            "state": monitor.state.value,
            "channel": monitor.channel,
            "answered_at": monitor.answered_at.isoformat() if monitor.answered_at else None,
            "ended_at": monitor.ended_at.isoformat() if monitor.ended_at else None,
            "end_reason": monitor.end_reason,
            "modes": list(monitor.modes),
        },
        ensure_ascii=False,
    )


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    at = datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise ValueError("a time without its zone")
    return at


def parse_monitor(raw: str | bytes) -> Monitor:
    """A stored record back as a Monitor; ValueError (saying what) for anything that does not fit."""
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError("record too long")
    data: Any = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    try:
        monitor_id, call_id = str(data["id"]), str(data["call_id"])
        if _ID.fullmatch(monitor_id) is None or _CALL_ID.fullmatch(call_id) is None:
            raise ValueError("id or call_id out of shape")
        channel = str(data.get("channel") or "")
        modes = tuple(Mode(m).value for m in data.get("modes") or ())
        started_at = _time(data["started_at"])
        if started_at is None:
            raise ValueError("no start time")
        return Monitor(
            id=monitor_id,
            call_id=call_id,
            seat=_SEAT.validate_python(data["seat"]),
            spied_channel=_CHANNEL.validate_python(data["spied_channel"]),
            phone=_SEAT.validate_python(data["phone"]),
            who=str(data["who"])[:64],
            platform=_PLATFORM.validate_python(data["platform"]),
            mode=Mode(data["mode"]),
            started_at=started_at,
            state=MonitorState(data["state"]),
            channel=_CHANNEL.validate_python(channel) if channel else "",
            answered_at=_time(data.get("answered_at")),
            ended_at=_time(data.get("ended_at")),
            end_reason=str(data.get("end_reason") or "")[:200],
            modes=modes,
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


class RedisMonitorStore:
    def __init__(self, client: aioredis.Redis, platform: str) -> None:
        platform = _PLATFORM.validate_python(platform)
        self._redis = client
        self._live = f"hotline:monitors:{platform}"
        self._ended = f"hotline:monitors:ended:{platform}"

    async def save(self, monitor: Monitor) -> None:
        await self._redis.hset(self._live, monitor.id, monitor_record(monitor))

    async def ended(self, monitor: Monitor, keep: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._live, monitor.id)
            pipe.lpush(self._ended, monitor_record(monitor))
            pipe.ltrim(self._ended, 0, keep - 1)
            await pipe.execute()

    async def load(self) -> tuple[list[Monitor], list[Monitor]]:
        live_raw: dict[Any, Any] = await self._redis.hgetall(self._live)
        ended_raw: list[Any] = await self._redis.lrange(self._ended, 0, -1)
        return _checked(live_raw.values(), live=True), _checked(ended_raw, live=False)


def _checked(raws: Any, *, live: bool) -> list[Monitor]:
    found = []
    for raw in raws:
        try:
            monitor = parse_monitor(raw)
        except ValueError as exc:
            log.warning("monitor.bad_record", error=str(exc)[:200])
            continue
        if (monitor.state is MonitorState.ENDED) is live:
            where = "live" if live else "ended"
            log.warning("monitor.bad_record", error=f"state {monitor.state.value} in the {where} set")
            continue
        found.append(monitor)
    return found
