"""pyproject.toml's warning filters: a ResourceWarning from a finalizer is shown, not blamed on
the innocent test the garbage collector happened to run in; any other exception in a finalizer,
and any plain warning, still fails its test."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Run with the project's own [tool.pytest.ini_options]: each finalizer runs (gc.collect) in the
# test AFTER the one that made the object, as in the CI failure this guards against.
LEAKS = """
import asyncio
import gc
import os
import signal
import socket
import subprocess
import warnings

import pytest

kept = []


class Broken:
    def __del__(self) -> None:
        raise ValueError("a real bug in a finalizer")


def test_01_leaks_a_socket() -> None:
    kept.append(socket.socket())


def test_02_innocent_collects_the_socket() -> None:
    kept.clear()
    gc.collect()


def test_03_leaks_a_file_and_a_running_process(tmp_path) -> None:
    kept.append(open(tmp_path / "f", "w"))
    kept.append(subprocess.Popen(["sleep", "30"]))


def test_04_innocent_collects_them() -> None:
    pid = kept[1].pid
    kept.clear()
    gc.collect()
    os.kill(pid, signal.SIGKILL)  # reaped by subprocess's own list of running children


async def test_05_leaks_a_transport() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    kept.append(writer.transport)
    server.close()


def test_06_innocent_collects_the_transport() -> None:
    kept.clear()
    gc.collect()


def test_07_broken_finalizer_fails() -> None:
    kept.append(Broken())
    kept.clear()
    gc.collect()


def test_08_plain_warning_fails() -> None:
    warnings.warn("deprecated", DeprecationWarning)


class Translating:
    def __del__(self) -> None:
        try:
            warnings.warn("unclosed thing", ResourceWarning)
        except ResourceWarning as warning:
            raise ValueError("a finalizer that fails on its own warning") from warning


def test_09_resource_warning_turned_into_an_error_fails() -> None:
    kept.append(Translating())
    kept.clear()
    gc.collect()
"""


def test_finalizer_resource_warnings_are_shown_and_other_errors_fail(tmp_path: Path) -> None:
    (tmp_path / "test_leaks.py").write_text(LEAKS, encoding="utf-8")
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path),
            "-p", "no:cacheprovider", "-p", "no:xdist", "-rA",
            str(tmp_path / "test_leaks.py"),
        ],
        check=False, capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    out = run.stdout + run.stderr
    outcomes = {test: outcome for outcome, test in re.findall(r"^(PASSED|FAILED|ERROR) \S+::(test_\w+)", out, re.M)}
    assert outcomes == {
        "test_01_leaks_a_socket": "PASSED",
        "test_02_innocent_collects_the_socket": "PASSED",
        "test_03_leaks_a_file_and_a_running_process": "PASSED",
        "test_04_innocent_collects_them": "PASSED",
        "test_05_leaks_a_transport": "PASSED",
        "test_06_innocent_collects_the_transport": "PASSED",
        "test_07_broken_finalizer_fails": "FAILED",
        "test_08_plain_warning_fails": "FAILED",
        "test_09_resource_warning_turned_into_an_error_fails": "FAILED",
    }, out
    # the leaks are still reported, each once, in the warnings summary
    assert "ResourceWarning: unclosed <socket.socket" in out, out
    assert "ResourceWarning: unclosed file" in out, out
    assert "ResourceWarning: subprocess" in out and "is still running" in out, out
    assert "ResourceWarning: unclosed transport" in out, out
