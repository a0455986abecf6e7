"""A platform under test: its own Redis, Asterisk and controller on free ports in a temp folder."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis
import yaml

from hotline.asterisk_files import write_asterisk_config
from hotline.config import Config, load_config
from hotline.local_secrets import redis_password
from hotline.redis_process import RedisProcess
from ivr.dialplan.directory import DIRECTORY_FILE
from telephony.asterisk_process import AsteriskProcess
from tests.support.ports import free_port, free_tcp_and_udp_port, rtp_range
from tests.support.sound_set import seed_sound_set
from web.auth import token_sha256

ADMIN_TOKEN = "test-admin-token"
SEAT_TOKEN = "test-seat-token"
REPO = Path(__file__).resolve().parents[2]

T = TypeVar("T")

# Prompt files built by one platform of this test run, reused by the next (see seed_prompts):
# espeak-ng + sox for ~60 prompts is about a second of every platform's first start.
_PROMPT_CACHE = Path(tempfile.mkdtemp(prefix="hotline-test-prompts-"))
atexit.register(shutil.rmtree, _PROMPT_CACHE, ignore_errors=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 20.0, interval_s: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last: {last!r})")


@dataclass
class HttpResult:
    status: int
    body: Any


@dataclass
class PlatformUnderTest:
    """Everything one platform needs, started and stopped by tests."""

    root: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    dialplan: str = "greet"  # a file of tests/dialplans
    environment: dict[str, str] = field(default_factory=dict)  # for the controller (HOTLINE_TEST_NOW)
    shared_redis: RedisProcess | None = None  # platforms of one province share one Redis
    # start with the prompts earlier platforms of this run built (False: the controller builds
    # every prompt file itself, e.g. where a test checks the files' modes)
    seed_prompts: bool = True
    config: Config = field(init=False)
    platform_id: str = field(init=False, default="kunming")
    config_path: Path = field(init=False)
    redis: RedisProcess = field(init=False)
    asterisk: AsteriskProcess = field(init=False)
    controller: subprocess.Popen[bytes] | None = field(init=False, default=None)
    asr_worker: subprocess.Popen[bytes] | None = field(init=False, default=None)
    controller_log: Path = field(init=False)

    def __post_init__(self) -> None:
        rtp_min, rtp_max = rtp_range()
        redis_port = self.shared_redis.port if self.shared_redis else free_port()
        data: dict[str, Any] = {
            "platform": {"id": "kunming", "name": "昆明市12345", "area_code": "0871"},
            "sip": {"port": free_tcp_and_udp_port(), "rtp_port_min": rtp_min, "rtp_port_max": rtp_max},
            "asterisk": {
                "ami_port": free_port(),
                "ami_ping_interval_s": 1.0,
                "ami_ping_timeout_s": 1.0,
                "ami_reconnect_max_s": 1.0,
                # tests read Asterisk's log for prompts played and numbers dialled (verbose 3)
                "verbose": 3,
            },
            "agi": {"port": free_port(), "drain_timeout_s": 30},  # a loaded CI box is slow
            "http": {
                "port": free_port(),
                "tokens": [
                    {"name": "test-admin", "role": "admin", "sha256": token_sha256(ADMIN_TOKEN)},
                    {"name": "test-seat", "role": "seat", "sha256": token_sha256(SEAT_TOKEN), "seat": "1001"},
                ],
            },
            # a Redis of its own requires the password the platform keeps in var/redis-password (as
            # `stack`'s does); a province's shared one is named with its own URL
            "redis": (
                {"url": self.shared_redis.url, "password_file": None}
                if self.shared_redis
                else {"url": f"redis://127.0.0.1:{redis_port}/0"}
            ),
            "paths": {
                "runtime_dir": "var",
                "spool_dir": "var/spool",
                "prompts_dir": str(REPO / "prompts"),
                "dialplans_dir": "dialplans",
            },
            "logging": {"level": "info", "format": "json"},
            # the shipped units directory and desk codes
            "units": {"dir": str(REPO / "directory")},
            # an empty knowledge base: loading the shipped one starts jieba's dictionary, a second
            # or more of every controller start; a test of the knowledge base overrides this with
            # str(REPO / "knowledge_base") (tests/browser/test_seat_desk.py)
            "knowledge": {"dir": str(self.root / "knowledge_base")},
        }
        for section, values in self.overrides.items():
            if isinstance(values, dict):
                data.setdefault(section, {}).update(values)
            else:
                data[section] = values
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "knowledge_base").mkdir(exist_ok=True)
        self.platform_id = str(data["platform"]["id"])
        self.install_dialplan(self.dialplan)
        # the shipped hotline directory, as every platform has it (trunk `carrier`: 110, 95598 …)
        shutil.copy(REPO / "dialplans" / DIRECTORY_FILE, self.dialplan_file.parent / DIRECTORY_FILE)
        self.config_path = self.root / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        self.config = load_config(self.config_path)
        self.redis = self.shared_redis or RedisProcess(
            self.root / "redis", redis_port, password=redis_password(self.config)
        )
        layout = write_asterisk_config(self.config, self.root / "asterisk-etc")
        seed_sound_set(self.config.paths.runtime_dir, self.config.paths.prompts_dir)  # built once per run
        self.asterisk = AsteriskProcess(layout, self.root / "asterisk-console.log")
        self.controller_log = self.root / "controller.log"

    @property
    def _prompts_dir(self) -> Path:
        return self.config.paths.runtime_dir / "prompts"

    @property
    def dialplan_file(self) -> Path:
        return self.root / "dialplans" / f"{self.platform_id}.yaml"

    def install_dialplan(self, name: str, edit: Callable[[str], str] = lambda text: text) -> None:
        """Copy tests/dialplans/<name>.yaml in as this platform's dialplan (optionally edited)."""
        self.dialplan_file.parent.mkdir(parents=True, exist_ok=True)
        text = (REPO / "tests" / "dialplans" / f"{name}.yaml").read_text(encoding="utf-8")
        self.dialplan_file.write_text(edit(text), encoding="utf-8")

    # processes

    def start_all(self) -> None:
        if self.shared_redis is None:
            self.redis.start()
        self.asterisk.start()
        if self.seed_prompts:
            _copy_prompts(_PROMPT_CACHE, self._prompts_dir)
        self.start_controller()

    def stop_all(self) -> None:
        self.stop_asr_worker()
        self.stop_controller()
        _copy_prompts(self._prompts_dir, _PROMPT_CACHE)
        self.asterisk.stop()
        if self.shared_redis is None:
            self.redis.stop()

    def channels(self) -> list[str]:
        """Asterisk's channels now (``core show channels concise``, one line each)."""
        out = self.asterisk.cli("core show channels concise", check=False).stdout
        return [line for line in out.splitlines() if line.strip()]

    def assert_no_channels_left(self, timeout_s: float = 20.0) -> None:
        """Every call a test made is over in Asterisk too: wait until it has no channel, or fail
        naming the channels left (a leaked offer, a caller held for nobody, a bridge not torn down)."""
        left: list[str] = []

        def gone() -> bool:
            left[:] = self.channels()
            return not left

        try:
            wait_for("Asterisk to have no channel left", gone, timeout_s=timeout_s, interval_s=0.25)
        except AssertionError:
            raise AssertionError("channels left in Asterisk after the test:\n" + "\n".join(left)) from None

    def start_controller(
        self, wait_ami: bool = True, environment: dict[str, str] | None = None, wait_http: bool = True
    ) -> None:
        """Start ``hotline12345 run``; wait for its HTTP API (and AMI) unless ``wait_http`` is False."""
        if environment is not None:
            self.environment = environment
        self.controller = self._spawn("run", self.controller_log)
        if not wait_http:
            return
        try:
            wait_for("the controller's HTTP API", self._health_while_running, timeout_s=60)
        except AssertionError as exc:  # what the controller was doing: the last lines of its log
            tail = "\n".join(self.controller_log_text().splitlines()[-30:])
            raise AssertionError(f"{exc}\n--- the controller's log, last lines:\n{tail}") from None
        if wait_ami:
            self.wait_component("ami", "up")

    def _health_while_running(self) -> dict[str, Any] | None:
        """The health answer; a controller that exited fails the wait at once."""
        if self.controller is not None and self.controller.poll() is not None:
            raise AssertionError(f"the controller exited with {self.controller.returncode} while starting")
        return self.health_or_none()

    def start_asr_worker(self, config_path: Path | None = None) -> None:
        """One ``hotline12345 asr-worker`` (needs ``asr.model_path`` in the overrides), with this
        platform's config or ``config_path`` (e.g. the same platform with another ``asr``)."""
        self.asr_worker = self._spawn("asr-worker", self.root / "asr-worker.log", config_path)

    def _spawn(self, command: str, log_path: Path, config_path: Path | None = None) -> subprocess.Popen[bytes]:
        """``hotline12345 COMMAND --config <this platform's>``, output appended to ``log_path``."""
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "hotline.cli", command, "--config", str(config_path or self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                env={**os.environ, "PYTHONPATH": str(REPO), **self.environment},
            )

    def stop_asr_worker(self, sig: int = signal.SIGTERM) -> None:
        if self.asr_worker is None:
            return
        if self.asr_worker.poll() is None:
            self.asr_worker.send_signal(sig)
        try:
            self.asr_worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.asr_worker.kill()
            self.asr_worker.wait()
        self.asr_worker = None

    def stop_controller(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        if self.controller is None:
            return None
        if self.controller.poll() is None:
            self.controller.send_signal(sig)
        try:
            code = self.controller.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.controller.send_signal(signal.SIGUSR1)  # stacks into the log, for the post-mortem
            time.sleep(0.5)
            self.controller.kill()
            code = self.controller.wait()
        self.controller = None
        return code

    # HTTP

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.http.port}"

    def http(
        self, path: str, token: str | None = ADMIN_TOKEN, method: str = "GET", body: dict[str, Any] | None = None
    ) -> HttpResult:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, method=method, data=data)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                raw = response.read()
                status = response.status
                ctype = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            raw, status, ctype = err.read(), err.code, err.headers.get("Content-Type", "")
        body = json.loads(raw) if "json" in ctype else raw.decode()
        return HttpResult(status, body)

    def http_bytes(self, path: str, token: str = ADMIN_TOKEN) -> bytes:
        """A binary GET (recordings); raises on any status but 200."""
        request = urllib.request.Request(self.base_url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body: bytes = response.read()
        return body

    def health_or_none(self) -> dict[str, Any] | None:
        try:
            result = self.http("/api/v1/health", token=None)
        except OSError:
            return None
        return result.body if isinstance(result.body, dict) else None

    def wait_component(self, name: str, state: str, timeout_s: float = 30.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            health = self.health_or_none()
            return health if health and health["components"][name] == state else None

        return wait_for(f"{name} to be {state}", probe, timeout_s=timeout_s)

    def calls(self) -> list[dict[str, Any]]:
        result = self.http("/api/v1/calls?limit=200")
        assert result.status == 200, result
        calls: list[dict[str, Any]] = result.body["calls"]
        return calls

    def wait_call(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            try:
                return next((c for c in self.calls() if predicate(c)), None)
            except (OSError, AssertionError):
                return None

        return wait_for(what, probe, timeout_s=timeout_s, interval_s=0.25)

    def stored_call(self, call_id: str) -> dict[str, Any]:
        """The record as kept in Redis (unmasked), read directly."""
        client = redis.Redis.from_url(self.redis.url)
        try:
            raw = client.get(f"hotline:call:{call_id}")
        finally:
            client.close()
        assert raw is not None, f"no record {call_id} in Redis"
        record: dict[str, Any] = json.loads(raw)
        return record

    def controller_log_text(self) -> str:
        return self.controller_log.read_text(errors="replace") if self.controller_log.exists() else ""


def _copy_prompts(source: Path, target: Path) -> None:
    """Copy each built prompt (``<name>.wav`` with its ``.<name>.sha256`` stamp) that ``target``
    lacks. The controller rebuilds any whose stamp does not match its own text, so a prompt
    another platform spoke differently is never played; folders are made private (0700), as the
    controller makes them."""
    if not source.is_dir():
        return
    for stamp in source.rglob(".*.sha256"):
        wav = stamp.with_name(stamp.name[1 : -len(".sha256")] + ".wav")
        folder = target / stamp.parent.relative_to(source)
        if not wav.is_file() or (folder / stamp.name).exists() or (folder / wav.name).exists():
            continue
        for part in [*reversed(folder.parents), folder]:
            if not part.exists():
                part.mkdir(mode=0o700)
        shutil.copy2(wav, folder / wav.name)
        shutil.copy2(stamp, folder / stamp.name)
