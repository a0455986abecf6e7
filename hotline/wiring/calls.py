"""The call path's shared parts: Redis and its budget, call records, callbacks, hand-offs,
events, the AMI client and the bridge that turns its events into call records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis

from acd.events import EventBus
from calls.ami_bridge import CallEventBridge
from calls.callbacks import RedisCallbackList
from calls.caller_index import CallerKeys
from calls.fallback import FallbackIngester
from calls.handoff import RedisHandoffs
from calls.redis_budget import RedisBudget
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from common.clock import Clock
from common.private_files import local_secret
from hotline.config import Config
from hotline.local_secrets import redis_client
from hotline.platforms import PlatformDirectory
from recordings.access import RedisAuditLog
from telephony.ami import AmiClient, AmiSettings

CALLER_INDEX_KEY_FILE = "caller-index-key"


@dataclass(frozen=True)
class CallParts:
    redis: aioredis.Redis
    budget: RedisBudget
    caller_keys: CallerKeys
    store: RedisCallStore
    tracker: CallTracker
    callback_list: RedisCallbackList
    audit_log: RedisAuditLog
    events: EventBus
    handoffs: RedisHandoffs
    directory: PlatformDirectory  # the other platforms' free seats (hand-offs, transfers)
    fallback: FallbackIngester
    ami: AmiClient
    bridge: CallEventBridge


def ami_settings(config: Config, secret: str) -> AmiSettings:
    a = config.asterisk
    return AmiSettings(
        host=a.ami_host,
        port=a.ami_port,
        username=a.ami_username,
        secret=secret,
        action_timeout_s=a.ami_action_timeout_s,
        ping_interval_s=a.ami_ping_interval_s,
        ping_timeout_s=a.ami_ping_timeout_s,
        reconnect_initial_s=a.ami_reconnect_initial_s,
        reconnect_max_s=a.ami_reconnect_max_s,
        event_backlog_max=a.ami_event_backlog_max,
        # browser phones: also ContactStatus (a closed websocket; webphone/watch.py)
        events="call,agent,user,system" if any(seat.phone == "browser" for seat in config.seats) else "call,agent,user",
    )


def build_calls(config: Config, ami_secret: str, clock: Clock) -> CallParts:
    client = redis_client(config, socket_timeout=3, socket_connect_timeout=3)
    platform = config.platform.id
    # the call path's patience with Redis: bounded reads, writes done behind (calls/redis_budget.py)
    budget = RedisBudget(config.redis.op_timeout_ms / 1000)
    # the caller index's key names are HMACs of numbers with this local secret (calls/caller_index.py)
    caller_keys = CallerKeys(local_secret(config.paths.runtime_dir / CALLER_INDEX_KEY_FILE))
    store = RedisCallStore(client, timedelta(days=config.redis.call_record_ttl_days), platform, caller_keys)
    tracker = CallTracker(store, platform, clock, budget)
    callback_list = RedisCallbackList(client, platform)
    tracker.on_ended(callback_list.on_call_ended)
    ami = AmiClient(ami_settings(config, ami_secret))
    return CallParts(
        redis=client,
        budget=budget,
        caller_keys=caller_keys,
        store=store,
        tracker=tracker,
        callback_list=callback_list,
        audit_log=RedisAuditLog(client),
        events=EventBus(client, budget, platform=platform),
        handoffs=RedisHandoffs(client, budget),
        directory=PlatformDirectory(client, budget),
        fallback=FallbackIngester(config.paths.spool_dir, tracker, platform),
        ami=ami,
        bridge=CallEventBridge(ami, tracker),
    )
