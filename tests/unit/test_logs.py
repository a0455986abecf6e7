"""The log format: readable lines on a terminal, JSON otherwise; masking in both."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog

from hotline.logs import chosen_format, log_processors

OLD_FALLBACK = "fallback/fb-1772442000-13800138000-kunming-1772442000.7.wav"


@pytest.mark.parametrize(
    ("fmt", "tty", "expected"),
    [
        ("auto", True, "console"),  # make run in a terminal
        ("auto", False, "json"),  # systemd, a pipe, a file
        ("json", True, "json"),
        ("console", False, "console"),
    ],
)
def test_the_format_follows_the_terminal_unless_configured(fmt: Any, tty: bool, expected: str) -> None:
    assert chosen_format(fmt, tty) == expected


def render(fmt: Any, colors: bool, **event: Any) -> str:
    """One event through the configured chain (the last processor renders it to a string)."""
    value: Any = {"event": "asr.job_parked", **event}
    for processor in log_processors(fmt, colors):
        value = processor(None, "info", value)
    assert isinstance(value, str)
    return value


@pytest.mark.parametrize("colors", [True, False])
def test_console_lines_mask_caller_numbers(colors: bool) -> None:
    line = render("console", colors, recording=OLD_FALLBACK)
    assert "13800138000" not in line
    assert "138****8000" in line
    assert "asr.job_parked" in line
    assert ("\x1b[" in line) is colors  # colours only when asked (stderr is a terminal)


def test_json_lines_mask_caller_numbers_and_parse() -> None:
    line = render("json", False, recording=OLD_FALLBACK)
    event = json.loads(line)
    assert event["recording"] == "fallback/fb-1772442000-138****8000-kunming-1772442000.7.wav"
    assert event["level"] == "info"
    assert "\x1b[" not in line


def test_console_chain_renders_exceptions_and_bound_context() -> None:
    structlog.contextvars.bind_contextvars(call_id="kunming-1.1")
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            line = render("console", False, exc_info=True)
    finally:
        structlog.contextvars.clear_contextvars()
    assert "call_id=kunming-1.1" in line
    assert "RuntimeError: boom" in line


SCRIPT = (
    "import structlog; from hotline.logs import configure_logging; configure_logging(); "
    f"structlog.get_logger().info('stack.demo', recording={OLD_FALLBACK!r})"
)


def test_a_terminal_gets_coloured_lines_and_a_pipe_json() -> None:
    """The real decision, in a child process: its stderr a pseudo-terminal, then a pipe."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    main, child = pty.openpty()
    try:
        subprocess.run([sys.executable, "-c", SCRIPT], stderr=child, env=env, check=True, timeout=60)
        terminal = os.read(main, 65536).decode()
    finally:
        os.close(main)
        os.close(child)
    assert "stack.demo" in terminal
    assert "\x1b[" in terminal
    assert "138****8000" in terminal
    assert "13800138000" not in terminal
    piped = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, env=env, check=True, timeout=60)
    event = json.loads(piped.stderr.decode().strip())
    assert event["event"] == "stack.demo"
    assert "138****8000" in event["recording"]


def test_json_lines_keep_their_fields_and_separators() -> None:
    """Same fields, UTF-8 as it is, ``"key": "value"`` (what log readers match); a lone
    surrogate still gives a line; an unknown type goes through repr."""

    class Odd:
        def __repr__(self) -> str:
            return "<odd>"

    line = render("json", False, caller_name='张三 "q"\n', count=3, share=1e-05, odd=Odd(), keys=(1, "x"))
    assert "张三" in line  # not \\u-escaped
    assert '"count": 3' in line
    event = json.loads(line)
    assert (event["caller_name"], event["count"], event["share"]) == ('张三 "q"\n', 3, 1e-05)
    assert (event["odd"], event["keys"]) == ("<odd>", [1, "x"])
    surrogate = json.loads(render("json", False, name="a\udc80b"))
    assert surrogate["name"] == "a\udc80b"
