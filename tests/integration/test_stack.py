"""``hotline12345 stack`` (what ``make run`` runs), started as a user starts it: its own Redis,
Asterisk and controller, on free ports in a folder of its own."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from redis.exceptions import AuthenticationError, ResponseError

from hotline.demo_carrier import demo_carrier_ports
from ivr.dialplan.directory import DIRECTORY_FILE
from tests.support.platform import REPO, HttpResult, wait_for
from tests.support.ports import free_port, free_tcp_and_udp_port, rtp_range

pytestmark = pytest.mark.integration

DRILL_NOW = "2026-10-01T10:00:00+08:00"  # 国庆: a service-hours drill


@dataclass
class Stack:
    root: Path
    process: subprocess.Popen[bytes]
    http_port: int
    redis_port: int

    @property
    def var(self) -> Path:
        return self.root / "var"

    def http(self, path: str, token: str | None = None) -> HttpResult:
        import json
        import urllib.error
        import urllib.request

        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return HttpResult(response.status, json.loads(response.read()))
        except urllib.error.HTTPError as err:
            return HttpResult(err.code, None)

    def health(self) -> dict[str, Any] | None:
        try:
            result = self.http("/api/v1/health")
        except OSError:
            return None
        return result.body if isinstance(result.body, dict) else None

    def log(self) -> str:
        return (self.root / "stack.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    dialplans = root / "dialplans"
    dialplans.mkdir()
    shutil.copy(REPO / "tests" / "dialplans" / "greet.yaml", dialplans / "kunming.yaml")
    shutil.copy(REPO / "dialplans" / DIRECTORY_FILE, dialplans / DIRECTORY_FILE)
    rtp_min, rtp_max = rtp_range()
    http_port, redis_port = free_port(), free_port()
    config = {  # config.yaml's defaults but the ports: no password, secret or token given
        "sip": {"port": free_tcp_and_udp_port(), "rtp_port_min": rtp_min, "rtp_port_max": rtp_max},
        "asterisk": {"ami_port": free_port()},
        "agi": {"port": free_port()},
        "http": {"port": http_port},
        "redis": {"url": f"redis://127.0.0.1:{redis_port}/0"},
        "paths": {"prompts_dir": str(REPO / "prompts")},
        "logging": {"format": "json"},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with (root / "stack.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hotline.cli", "stack", "--config", str(root / "config.yaml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(REPO), "HOTLINE_TEST_NOW": DRILL_NOW},
        )
    under_test = Stack(root, process, http_port, redis_port)
    try:
        wait_for(
            "the stack's controller with AMI, Redis and FastAGI up",
            lambda: (h := under_test.health()) is not None and h["status"] == "ok",
            timeout_s=120,
        )
        yield under_test
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_stack_redis_refuses_a_client_without_the_password(stack: Stack) -> None:
    anonymous = redis.Redis(port=stack.redis_port)
    try:
        with pytest.raises(AuthenticationError):
            anonymous.keys("hotline:*")
        with pytest.raises((AuthenticationError, ResponseError)):
            redis.Redis(port=stack.redis_port, password="hotline").ping()
    finally:
        anonymous.close()
    password = (stack.var / "redis-password").read_text().strip()
    assert stat.S_IMODE((stack.var / "redis-password").stat().st_mode) == 0o600
    with redis.Redis(port=stack.redis_port, password=password) as client:
        assert client.keys("hotline:*")  # the controller got in with it (its records, seats …)
    # no process shows it: not on any command line (`ps`), not in the stack's output
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert password not in cmdline.read_bytes().decode(errors="replace"), cmdline
        except OSError:
            continue
    assert password not in stack.log()


def test_stack_ami_and_agi_run_on_generated_secrets(stack: Stack) -> None:
    for name in ("ami-secret", "agi-secret", "api-token"):
        assert stat.S_IMODE((stack.var / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(stack.var.stat().st_mode) == 0o700
    manager = (stack.var / "asterisk" / "etc" / "manager.conf").read_text()
    assert f"secret = {(stack.var / 'ami-secret').read_text().strip()}\n" in manager
    assert "hotline-demo-secret" not in manager
    health = stack.health()
    assert health is not None
    assert {name: health["components"][name] for name in ("ami", "redis", "agi")} == {
        "ami": "up",
        "redis": "up",
        "agi": "up",
    }


def test_stack_controllers_honour_hotline_test_now(stack: Stack) -> None:
    """make run with HOTLINE_TEST_NOW: the drill's time is every controller's time."""
    token = (stack.var / "api-token").read_text().strip()

    def snapshot_at() -> str | None:
        platforms = stack.http("/api/v1/platforms", token).body["platforms"]
        at = next((p.get("at") for p in platforms if p["platform"] == "kunming"), None)
        return str(at) if at else None

    at = wait_for("kunming's snapshot", snapshot_at, timeout_s=30)
    # the drill's clock runs on from its start (minutes at most, however slow the machine)
    drift = datetime.fromisoformat(at) - datetime.fromisoformat(DRILL_NOW)
    assert timedelta(0) <= drift < timedelta(hours=1), at


def test_make_call_reaches_the_stack_and_leaves_a_record(stack: Stack) -> None:
    """What the README tells a new user to do once ``make run`` is up: ``make call``."""
    result = subprocess.run(
        [sys.executable, "-m", "hotline.cli", "call", "--config", str(stack.root / "config.yaml")],
        cwd=stack.root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    token = (stack.var / "api-token").read_text().strip()
    call = wait_for(
        "the test call's record",
        lambda: next((c for c in stack.http("/api/v1/calls", token).body["calls"] if c["state"] == "ended"), None),
        timeout_s=30,
    )
    assert call["caller"].startswith("138") and "****" in call["caller"]


def test_stack_gives_the_demo_a_carrier(stack: Stack) -> None:
    """No carrier trunk in config.yaml: the stack starts its demo carrier (a SIPp UAS) and the
    trunk to it, so 110 … 95598 are available on the seat desk, and the carrier answers SIP."""
    token = (stack.var / "api-token").read_text().strip()
    destinations = stack.http("/api/v1/destinations", token).body["destinations"]
    available = {d["to"]: d["available"] for d in destinations}
    assert available["police"] is True
    assert available["power"] is True
    pjsip = (stack.var / "asterisk" / "etc" / "pjsip.conf").read_text()
    carrier_port, _ = demo_carrier_ports(yaml.safe_load((stack.root / "config.yaml").read_text())["sip"]["port"])
    assert f"127.0.0.1:{carrier_port}" in pjsip
    assert (stack.var / "demo-carrier" / "carrier.xml").is_file()
    assert "demo carrier" in stack.log()
