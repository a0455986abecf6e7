"""deploy/systemd: the units are valid for systemd (``systemd-analyze verify``), every command
line they run is one our CLI accepts, and the stop signal is one the controller drains on, with
time for the drain. (The drain itself, on the command line the unit runs — ``hotline12345 run
--config …`` — with a call in the IVR: tests/integration/test_resilience.py,
test_sigterm_drains_the_call_in_progress.)"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hotline import cli
from hotline.run import run_until_signalled
from telephony.config import AgiConfig

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
CLI_BINARY = "/opt/hotline12345/venv/bin/hotline12345"
ASTERISK_BINARY = "/usr/sbin/asterisk"
AMI_AND_REDIS_CLOSE_S = 5.0 + 5.0  # Controller.stop after the AGI drain: ami.close and budget.close bounds
INSTANCES = {"hotline-controller@": "kunming", "hotline-asterisk@": "kunming", "hotline-asr-worker@": "1"}


def unit(name: str) -> dict[str, list[str]]:
    """``key: [values]`` of a unit file (a key may repeat)."""
    values: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def cli_argv(command: str, instance: str) -> list[str] | None:
    """The arguments after our binary, as systemd would pass them; None for another program."""
    words = shlex.split(command.replace("%i", instance).replace("${HOTLINE_CONFIG}", "/etc/hotline12345/x.yaml"))
    return words[1:] if words[0] == CLI_BINARY else None


def test_every_unit_is_there() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(f"{t}.service" for t in INSTANCES)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hotline-controller@.service", {"ExecStart": [cli.cmd_run]}),
        ("hotline-asterisk@.service", {"ExecStartPre": [cli.cmd_render], "ExecReload": [cli.cmd_render]}),
        ("hotline-asr-worker@.service", {"ExecStart": [cli.cmd_asr_worker]}),
    ],
)
def test_command_lines_are_accepted_by_the_cli(name: str, expected: dict[str, list[Any]]) -> None:
    instance = INSTANCES[name.removesuffix(".service")]
    found: dict[str, list[Any]] = {}
    for key, lines in unit(name).items():
        for line in lines if key.startswith("Exec") else []:
            argv = cli_argv(line, instance)
            if argv is None:
                continue
            args = cli.build_parser().parse_args(argv)  # exits (SystemExit) on an unknown flag or subcommand
            assert Path(args.config).is_absolute()
            found.setdefault(key, []).append(args.func)
    assert found == expected


@pytest.mark.parametrize("name", sorted(f"{t}.service" for t in INSTANCES))
def test_hardening_and_restart(name: str) -> None:
    values = unit(name)
    for key, expected in {
        "User": "hotline",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
        "UMask": "0077",  # callers' data: files 0600, folders 0700
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictNamespaces": "yes",
        "SystemCallFilter": "@system-service",
    }.items():
        assert values.get(key) == [expected], f"{name}: {key}"
    assert any("/var/spool/hotline12345" in v for v in values["ReadWritePaths"])


def test_controller_waits_for_its_asterisk_and_outlives_the_drain() -> None:
    values = unit("hotline-controller@.service")
    # what tests/support/platform.py runs for the SIGTERM drain test (python -m hotline.cli run --config …)
    assert cli_argv(values["ExecStart"][0], "kunming") == ["run", "--config", "/etc/hotline12345/kunming/config.yaml"]
    assert "hotline-asterisk@%i.service" in values["After"][0].split()
    assert "network-online.target" in values["After"][0].split()
    assert "network-online.target" in values["Wants"][0].split()
    bound = AgiConfig().drain_timeout_s + AMI_AND_REDIS_CLOSE_S
    assert float(values["TimeoutStopSec"][0]) > bound


class FakeController:
    def __init__(self) -> None:
        self.config = SimpleNamespace(platform=SimpleNamespace(id="kunming"))
        self.started = asyncio.Event()
        self.stopped = False

    async def start(self) -> None:
        self.started.set()

    async def stop(self) -> None:
        self.stopped = True


def test_the_units_stop_signal_makes_the_controller_drain() -> None:
    (kill_signal,) = unit("hotline-controller@.service")["KillSignal"]
    controller = FakeController()

    async def main() -> None:
        served = asyncio.create_task(run_until_signalled([controller]))  # type: ignore[list-item]
        await asyncio.wait_for(controller.started.wait(), timeout=30)  # its signal handlers are in place
        os.kill(os.getpid(), signal.Signals[kill_signal])
        await asyncio.wait_for(served, timeout=10)

    # a signal the controller did not handle would end pytest: caught here, the test fails instead
    previous = signal.signal(signal.Signals[kill_signal], lambda *_: None)
    try:
        asyncio.run(main())
    finally:
        signal.signal(signal.Signals[kill_signal], previous)
    assert controller.stopped


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (scripts/install-system-deps.sh installs systemd)")
    stubs = {CLI_BINARY: tmp_path / "bin" / "hotline12345", ASTERISK_BINARY: tmp_path / "bin" / "asterisk"}
    for stub in stubs.values():
        stub.parent.mkdir(exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    names = []
    for template, instance in INSTANCES.items():
        text = (UNITS / f"{template}.service").read_text(encoding="utf-8")
        for real, stub in stubs.items():  # verify checks that every command exists and is executable
            text = text.replace(real, str(stub))
        for name in (f"{template}.service", f"{template}{instance}.service"):
            (tmp_path / name).write_text(text, encoding="utf-8")
            names.append(str(tmp_path / name))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *names], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys, bad values: warnings only
