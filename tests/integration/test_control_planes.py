"""The control planes on the host, probed as a local attacker would: AMI, FastAGI, files.

Real Asterisk with the manager.conf and extensions.conf we render, real Redis, the controller.
"""

from __future__ import annotations

import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.audio import duration_s, speech_then_silence_wav
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.sipp import ANSWERED, HOTLINE_HANGS_UP, INVITE, pause, run_sipp, scenario, stream_audio

pytestmark = pytest.mark.integration

MONDAY_NIGHT = "2026-03-09T21:00:00+08:00"  # closed: every caller leaves a message


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformUnderTest]:
    under_test = PlatformUnderTest(
        tmp_path_factory.mktemp("control"),
        overrides={"seats": [{"id": "1001", "secret": "seat-1001-password"}]},
        dialplan="after_hours",
        environment={"HOTLINE_TEST_NOW": MONDAY_NIGHT},
        seed_prompts=False,  # the prompt files' modes are checked: the controller makes them all
    )
    under_test.start_all()
    try:
        yield under_test
    finally:
        under_test.stop_all()


class Ami:
    """A bare AMI client on a socket: what any local process can open."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._file = self._sock.makefile("rb")
        self._file.readline()  # the greeting

    def send(self, **fields: str) -> dict[str, str]:
        """One action; its response's headers (list events that follow are skipped)."""
        text = "".join(f"{key}: {value}\r\n" for key, value in fields.items()) + "\r\n"
        self._sock.sendall(text.encode())
        while True:
            block: dict[str, str] = {}
            while (line := self._file.readline().decode(errors="replace").rstrip("\r\n")) != "":
                key, _, value = line.partition(": ")
                block[key.lower()] = value
            if "response" in block:
                return block

    def close(self) -> None:
        self._sock.close()


def rendered_ami_credentials(platform: PlatformUnderTest) -> tuple[str, str]:
    manager = (platform.asterisk.layout.etc_dir / "manager.conf").read_text()
    user = re.search(r"^\[(?!general\])([^\]]+)\]\nsecret = (\S+)$", manager, re.MULTILINE)
    assert user is not None, manager
    return user.group(1), user.group(2)


def test_ami_grants_the_controller_no_shell_and_no_secrets(platform: PlatformUnderTest) -> None:
    assert platform.health_or_none() is not None  # the controller works with these rights
    assert platform.wait_component("ami", "up")["components"]["ami"] == "up"
    username, secret = rendered_ami_credentials(platform)
    ami = Ami(platform.config.asterisk.ami_port)
    try:
        assert ami.send(Action="Login", Username=username, Secret=secret, Events="off")["response"] == "Success"
        refused = ami.send(Action="Command", Command="core show version")
        assert (refused["response"], refused["message"]) == ("Error", "Permission denied")
        shell = ami.send(
            Action="Originate",
            Channel="Local/1@hotline-peer",
            Application="System",
            Data=f"touch {platform.root}/pwned",
            Async="false",
        )
        assert shell["response"] == "Error"
        assert re.search(r"Permission denied|Forbidden", shell["message"]), shell
        config = ami.send(Action="GetConfig", Filename="manager.conf")  # would read every secret
        assert (config["response"], config["message"]) == ("Error", "Permission denied")
        reload = ami.send(Action="Reload")
        assert (reload["response"], reload["message"]) == ("Error", "Permission denied")
    finally:
        ami.close()
    assert not (platform.root / "pwned").exists()


def test_the_shipped_default_ami_secret_no_longer_works(platform: PlatformUnderTest) -> None:
    ami = Ami(platform.config.asterisk.ami_port)
    try:
        reply = ami.send(Action="Login", Username="hotline", Secret="hotline-demo-secret", Events="off")
    finally:
        ami.close()
    assert reply["response"] == "Error"
    assert "Authentication failed" in reply["message"]


class ForgedAsterisk:
    """A local process playing Asterisk to our FastAGI port: the header, then "200 result=0"
    to every command (a seat's channel for CHANNEL(endpoint)), closing after ``max_commands``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.commands: list[str] = []

    def run(self, script: str, uniqueid: str, callerid: str, max_commands: int = 12) -> None:
        header = (
            f"agi_network: yes\nagi_network_script: {script}\nagi_request: agi://127.0.0.1:{self.port}/{script}\n"
            f"agi_channel: PJSIP/{callerid}-00000001\nagi_uniqueid: {uniqueid}\nagi_callerid: {callerid}\n"
            f"agi_calleridname: forged\nagi_dnid: 12345\nagi_context: hotline-entry\nagi_extension: s\n\n"
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=15) as sock:
            sock.sendall(header.encode())
            reader = sock.makefile("rb")
            for _ in range(max_commands):
                line = reader.readline().decode(errors="replace").strip()
                if not line:
                    return  # closed by the server
                self.commands.append(line)
                reply = "200 result=0\n"
                if line.startswith('GET VARIABLE "CHANNEL(endpoint)"'):
                    reply = f"200 result=1 ({callerid})\n"
                sock.sendall(reply.encode())


def _record_ids(platform: PlatformUnderTest) -> set[str]:
    return {call["call_id"] for call in platform.calls()}


def _seat_state(platform: PlatformUnderTest, seat_id: str) -> str:
    seats = platform.http("/api/v1/seats").body["seats"]
    state: str = next(s for s in seats if s["seat"] == seat_id)["state"]
    return state


def test_a_forged_fastagi_client_cannot_make_records_or_log_seats_in(platform: PlatformUnderTest) -> None:
    forged = ForgedAsterisk(platform.config.agi.port)
    forged.run("ivr", "kunming-forged.1", "13900000001")
    forged.run("feature?action=login", "kunming-forged.2", "1001")
    assert forged.commands == []  # not one command: closed before any route ran
    assert _seat_state(platform, "1001") == "logged_out"
    assert not {i for i in _record_ids(platform) if "forged" in i}
    metrics = platform.http("/metrics", token=None).body
    assert re.search(r"^hotline_agi_unauthenticated_total 2(\.0)?$", metrics, re.MULTILINE), metrics
    log = platform.controller_log_text()
    assert "agi.unauthenticated" in log
    key = (platform.config.paths.runtime_dir / "agi-secret").read_text().strip()
    assert key not in log

    # the same client with the key Asterisk has is served: the refusal above is the key's doing
    with_key = ForgedAsterisk(platform.config.agi.port)
    with_key.run(f"{key}/feature?action=login", "kunming-keyed.1", "1001")
    assert with_key.commands
    wait_for("seat 1001 logged in", lambda: _seat_state(platform, "1001") == "ready", timeout_s=10)
    platform.http("/api/v1/seats/1001/logout", method="POST")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_caller_s_message_and_every_secret_are_the_service_s_alone(
    platform: PlatformUnderTest, tmp_path: Path
) -> None:
    closed_ms = int(duration_s(platform.config.paths.runtime_dir / "prompts" / "ivr" / "closed.wav") * 1000)
    message = speech_then_silence_wav(tmp_path / "message.wav", speech_s=3, silence_s=4)
    result = run_sipp(
        platform.config.sip.port,
        scenario(INVITE, ANSWERED, pause(closed_ms + 800), stream_audio(message), HOTLINE_HANGS_UP),
        caller="13955550009",
        timeout_s=60,
    )
    assert result.ok, result.errors
    call = platform.wait_call(lambda c: c["caller"] == "139****0009" and c["state"] == "ended", "the record")
    assert call["outcome"] == "voicemail"
    spool = platform.config.paths.spool_dir
    wav = spool / platform.stored_call(call["call_id"])["recording"]
    sidecar = wav.with_name(wav.stem + ".json")
    assert wav.is_file() and sidecar.is_file()
    assert "13955550009" in sidecar.read_text()  # the whole number: must be unreadable to others

    runtime = platform.config.paths.runtime_dir
    checked = [
        spool, *spool.rglob("*"),  # messages (written by Asterisk), sidecars, folders
        runtime, *runtime.rglob("*"),  # secrets, prompts, Asterisk's state and logs (they show the AGI key)
        platform.asterisk.layout.etc_dir, *platform.asterisk.layout.etc_dir.iterdir(),  # seat passwords, AMI
        platform.redis.data_dir, *platform.redis.data_dir.rglob("*"),  # the AOF: records, tickets
        platform.root / "asterisk-console.log",
    ]  # fmt: skip
    assert wav in checked and sidecar in checked
    loose = [f"{p} {oct(_mode(p))}" for p in checked if not p.is_symlink() and _mode(p) & 0o077]
    assert loose == []
    for name in ("ami-secret", "agi-secret", "redis-password"):
        assert _mode(runtime / name) == 0o600
    assert "seat-1001-password" in (platform.asterisk.layout.etc_dir / "pjsip.conf").read_text()
