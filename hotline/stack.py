"""``make run``: Redis, Asterisk and the controller on the embedded defaults, in one process tree."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from common.clock import Clock, system_clock
from common.private_files import private_log
from hotline.asterisk_files import write_asterisk_config
from hotline.config import Config
from hotline.demo_carrier import DemoCarrier, DemoCarrierUnavailable
from hotline.local_secrets import redis_password
from hotline.redis_process import RedisProcess, RedisUnavailable, redis_listening
from telephony.asterisk_process import AsteriskProcess, AsteriskUnavailable
from web.auth import TokenRegistry


def _banner(configs: Sequence[Config], token_file: Path, carrier: DemoCarrier | None = None) -> str:
    primary = configs[0]
    http = f"http://{primary.http.host}:{primary.http.port}"
    token = f"$(cat {token_file})" if not primary.http.tokens else "<your token>"
    model = primary.asr.model_path
    asr = f"asr-worker with {model.name}" if model else "off (asr.model_path unset): tickets without transcripts"
    demo = (
        f"demo carrier on udp:127.0.0.1:{carrier.port} answers 110/119/120/122, 95598 … with a tone"
        if carrier
        else "the carrier trunk of config.yaml (sip.trunks.carrier)"
    )
    platforms = "\n".join(
        f"    {c.platform.id:<14} {c.platform.name}  SIP udp:{c.sip.bind_host}:{c.sip.port}  "
        f"console http://{c.http.host}:{c.http.port}/"
        for c in configs
    )
    return f"""
  hotline12345 is up — {len(configs)} platform(s), one Redis:
{platforms}
  Dial 12345 or {primary.platform.area_code}12345 on {primary.platform.id}'s trunk; on the province's trunk,
  <area code>12345 is answered by that prefecture (e.g. 087212345 → dali).
    API         {http}/api/v1/health
    call list   curl -H "Authorization: Bearer {token}" {http}/api/v1/calls
    tickets     curl -H "Authorization: Bearer {token}" {http}/api/v1/tickets
    platforms   curl -H "Authorization: Bearer {token}" {http}/api/v1/platforms
    ASR         {asr}
    metrics     {http}/metrics
    carrier     {demo}
    seat desk   {http}/seat  (a seat token: hotline12345 token new --role seat --seat 1001 --name 张敏)
  Place a test call (another terminal):   make call
  Stop everything:                         Ctrl-C
"""


def _local_redis(primary: Config) -> RedisProcess | None:
    """The loopback Redis the config names, started when none answers there (None: not ours)."""
    url = urlsplit(primary.redis.url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    if primary.redis.sentinel is not None:  # the sentinels name the primary: none to start here
        print(f"using the Redis the sentinels name {primary.redis.sentinel.service_name!r}", file=sys.stderr)
        return None
    if url.scheme != "redis" or host not in ("127.0.0.1", "localhost"):
        return None
    if redis_listening(host, port):
        print(f"using the Redis that answers on {host}:{port}", file=sys.stderr)
        return None
    password = unquote(url.password) if url.password is not None else redis_password(primary)
    redis = RedisProcess(primary.paths.runtime_dir / "redis", port, host, password=password)
    redis.start()
    auth = "password required" if password else "no password (redis.password_file: null)"
    print(f"redis-server started on {host}:{port} ({auth})", file=sys.stderr)
    return redis


def run_stack(
    configs: Sequence[Config],
    config_path: Path,
    tokens: TokenRegistry,
    token_file: Path,
    clock: Clock = system_clock,
    *,
    carrier: DemoCarrier | None = None,
) -> int:
    """Start Redis (if none answers), one Asterisk per platform, the controllers (one event
    loop, every one on ``clock``: HOTLINE_TEST_NOW drills) and, with a model configured, an
    ASR worker; Ctrl-C stops everything.

    The Redis it starts requires the configured password (the URL's, else ``redis.password_file``'s,
    generated at first use); the platforms share it (one Redis). ``carrier``: the demo carrier
    the configs' ``carrier`` trunk leads to (started first, stopped last)."""
    from hotline.controller import Controller
    from hotline.run import run_until_signalled

    primary = configs[0]
    redis: RedisProcess | None = None
    worker: subprocess.Popen[bytes] | None = None
    asterisks = [
        AsteriskProcess(
            write_asterisk_config(c, c.paths.runtime_dir / "asterisk" / "etc"),
            c.paths.runtime_dir / "asterisk" / "console.log",
        )
        for c in configs
    ]
    try:
        if carrier is not None:
            carrier.start()
            print(f"demo carrier (SIPp) answering on udp:127.0.0.1:{carrier.port}", file=sys.stderr)
        redis = _local_redis(primary)
        for config, asterisk in zip(configs, asterisks, strict=True):
            asterisk.start()
            version = asterisk.cli("core show version").stdout.strip()
            print(f"Asterisk for {config.platform.id} started: {version}", file=sys.stderr)
        if primary.asr.model_path is not None:
            worker = _start_asr_worker(primary, config_path)
        controllers = [Controller(c, tokens, clock) for c in configs]
        banner = _banner(configs, token_file, carrier)
        asyncio.run(run_until_signalled(controllers, lambda: print(banner, file=sys.stderr)))
        return 0
    except (AsteriskUnavailable, RedisUnavailable, DemoCarrierUnavailable) as exc:
        print(f"hotline12345: {exc}", file=sys.stderr)
        return 1
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=90)
        for asterisk in asterisks:
            asterisk.stop()
        if redis is not None:
            redis.stop()
        if carrier is not None:
            carrier.stop()


def _start_asr_worker(config: Config, config_path: Path) -> subprocess.Popen[bytes]:
    """One ASR worker next to the controller (more may run anywhere that sees the spool)."""
    log_path = config.paths.runtime_dir / "asr-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with private_log(log_path) as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "asr-worker", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    print(f"ASR worker started (log: {log_path})", file=sys.stderr)
    return worker
