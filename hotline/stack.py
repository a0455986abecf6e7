"""``make run``: Redis, Asterisk and the controller on the embedded defaults, in one process tree."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from hotline.auth import TokenRegistry
from hotline.config import Config
from hotline.redis_process import RedisProcess, RedisUnavailable, redis_answers
from telephony.asterisk_conf import write_asterisk_config
from telephony.asterisk_process import AsteriskProcess, AsteriskUnavailable


def _banner(config: Config, token_file: Path) -> str:
    http = f"http://{config.http.host}:{config.http.port}"
    token = f"$(cat {token_file})" if not config.http.tokens else "<your token>"
    model = config.asr.model_path
    asr = f"asr-worker with {model.name}" if model else "off (asr.model_path unset): tickets without transcripts"
    return f"""
  hotline12345 is up — platform {config.platform.name} ({config.platform.id}, {config.platform.area_code})
    SIP trunk   udp:{config.sip.bind_host}:{config.sip.port}   (dial 12345 or {config.platform.area_code}12345)
    console     {http}/   (paste the API token)
    API         {http}/api/v1/health
    call list   curl -H "Authorization: Bearer {token}" {http}/api/v1/calls
    tickets     curl -H "Authorization: Bearer {token}" {http}/api/v1/tickets
    ASR         {asr}
    metrics     {http}/metrics
  Place a test call (another terminal):   make call
  Stop everything:                         Ctrl-C
"""


def run_stack(config: Config, config_path: Path, tokens: TokenRegistry, token_file: Path) -> int:
    """Start what is needed, run the controller until Ctrl-C, stop everything."""
    from hotline.controller import Controller, run_until_signalled

    runtime = config.paths.runtime_dir
    redis: RedisProcess | None = None
    worker: subprocess.Popen[bytes] | None = None
    url = urlsplit(config.redis.url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    asterisk = AsteriskProcess(
        write_asterisk_config(config, runtime / "asterisk" / "etc"), runtime / "asterisk" / "console.log"
    )
    try:
        if url.scheme == "redis" and host in ("127.0.0.1", "localhost") and not redis_answers(host, port):
            redis = RedisProcess(runtime / "redis", port, host)
            redis.start()
            print(f"redis-server started on {host}:{port} (data in {runtime / 'redis'})", file=sys.stderr)
        asterisk.start()
        print(f"Asterisk started: {asterisk.cli('core show version').stdout.strip()}", file=sys.stderr)
        if config.asr.model_path is not None:
            worker = _start_asr_worker(config, config_path)
        controller = Controller(config, tokens)
        asyncio.run(run_until_signalled(controller, lambda: print(_banner(config, token_file), file=sys.stderr)))
        return 0
    except (AsteriskUnavailable, RedisUnavailable) as exc:
        print(f"hotline12345: {exc}", file=sys.stderr)
        return 1
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=90)
        asterisk.stop()
        if redis is not None:
            redis.stop()


def _start_asr_worker(config: Config, config_path: Path) -> subprocess.Popen[bytes]:
    """One ASR worker next to the controller (more may run anywhere that sees the spool)."""
    log_path = config.paths.runtime_dir / "asr-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "asr-worker", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    print(f"ASR worker started (log: {log_path})", file=sys.stderr)
    return worker
