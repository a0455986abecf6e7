"""The controller's restart gap: SIGTERM of the old controller → the new one serving FastAGI,
logged in to AMI and ready, measured on a real platform (Redis + Asterisk + ``hotline12345 run``,
as tests/support/platform.py starts them).

While no controller serves FastAGI, Asterisk sends new calls down the fallback route (a message,
no seat): the gap from SIGTERM to the new controller's ``agi.listening`` is what a restart costs
citizens. Per restart, from the controller's own JSON log lines (ISO timestamps, UTC):

- ``stop``: SIGTERM → the old process has exited (its drain; no calls are running here), and
  ``drain``: its ``controller.stopping`` → ``controller.stopped`` (the rest is Python's exit);
- ``first_log``: the new process spawned → its first log line (Python start, imports, config);
- ``agi``: spawned → ``agi.listening``;  ``ami``: spawned → ``ami.connected``;
- ``ready``: spawned → ``controller.started``;  ``knowledge``: spawned → ``knowledge.loaded``;
- ``gap``: SIGTERM → ``agi.listening`` of the new process (stop + spawn + agi).

``--compare DIR`` runs the same restarts alternately with the code in DIR (e.g. a ``git worktree``
of the commit this branch started from) on the same platform, so both columns share one sitting:
each code is restarted onto twice in a row and the second restart counted (old and new process
of the same code; the first warms its bytecode cache).
The shipped knowledge base is loaded (``knowledge_base/``, jieba's dictionary) as in production.

Run: .venv/bin/python -m bench.controller_start [--restarts 10] [--compare /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from tests.support.platform import REPO, PlatformUnderTest, wait_for

PHASES = ("stop", "drain", "first_log", "agi", "ami", "ready", "knowledge", "gap")
EVENTS = {
    "agi": "agi.listening",
    "ami": "ami.connected",
    "ready": "controller.started",
    "knowledge": "knowledge.loaded",
}


def _log_lines(path: Path, offset: int) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    with path.open("rb") as handle:
        handle.seek(offset)
        for raw in handle.read().splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and "timestamp" in line:
                lines.append(line)
    return lines


def _epoch(line: dict[str, object]) -> float:
    return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()


def restart(platform: PlatformUnderTest, code: Path, previous: int) -> tuple[dict[str, float], int]:
    """One restart of the platform's controller onto ``code``; seconds per phase, and where the
    new controller's log lines begin (``previous``: where the old one's began)."""
    assert platform.controller is not None
    sigterm = time.time()
    platform.controller.send_signal(signal.SIGTERM)
    try:
        platform.controller.wait(timeout=60)
    except subprocess.TimeoutExpired:  # a stop that hangs: every thread's stack into the log, then the log
        platform.controller.send_signal(signal.SIGUSR1)
        time.sleep(1)
        platform.controller.kill()
        tail = platform.controller_log.read_bytes()[previous:].decode(errors="replace")
        raise SystemExit(f"the controller did not stop within 60 s; its log:\n{tail[-20000:]}") from None
    exited = time.time()
    lines = _log_lines(platform.controller_log, previous)
    old = {line.get("event"): _epoch(line) for line in lines}
    stopping = old["controller.stopping"]
    for line in lines:  # what a slow drain waited for
        if _epoch(line) >= stopping and line.get("level") in ("warning", "error"):
            print(f"  during the drain: {json.dumps(line, ensure_ascii=False)[:300]}")
    offset = platform.controller_log.stat().st_size
    # bytecode cached as an installed package has it (this machine's shells may set the opposite)
    platform.environment = {"PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": ""}
    spawned = time.time()
    platform.start_controller(wait_ami=False, wait_http=False)

    def seen() -> dict[str, float] | None:
        lines = _log_lines(platform.controller_log, offset)
        at = {key: _epoch(line) for line in lines for key, event in EVENTS.items() if line.get("event") == event}
        if lines:
            at["first_log"] = _epoch(lines[0])
        return at if {"first_log", *EVENTS} <= at.keys() else None

    at = wait_for("the controller's start log lines", seen, timeout_s=60, interval_s=0.02)
    figures = {key: at[key] - spawned for key in ("first_log", *EVENTS)}
    figures["stop"] = exited - sigterm
    figures["drain"] = old["controller.stopped"] - stopping
    figures["gap"] = at["agi"] - sigterm
    return figures, offset


def summary(name: str, runs: list[dict[str, float]]) -> str:
    cells = []
    for phase in PHASES:
        values = sorted(run[phase] for run in runs)
        cells.append(f"{phase} {statistics.median(values):.2f}/{values[-1]:.2f}")
    return f"{name:>8}: " + "  ".join(cells) + "   (s, p50/max)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--compare", type=Path, help="a checkout of the code to compare with (before)")
    args = parser.parse_args()
    codes = {"after": REPO} | ({"before": args.compare.resolve()} if args.compare else {})
    with tempfile.TemporaryDirectory(prefix="bench-controller-start-") as folder:
        platform = PlatformUnderTest(
            Path(folder), overrides={"knowledge": {"dir": str(REPO / "knowledge_base")}}, seed_prompts=False
        )
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
        first = time.time()
        platform.start_all()  # the first start builds every prompt and the sound set
        print(f"first start (every prompt built): {time.time() - first:.2f} s to AMI up")
        offset = 0
        try:
            for _ in range(args.restarts):
                for name, code in codes.items():
                    # twice onto the same code, the second counted: its stop is that code's too
                    # (and the first has warmed its bytecode cache)
                    for counted in (False, True):
                        figures, offset = restart(platform, code, offset)
                        platform.wait_component("ami", "up", timeout_s=60)
                        if counted:
                            runs[name].append(figures)
        finally:
            platform.stop_all()
    for name, measured in runs.items():
        print(summary(name, measured))


if __name__ == "__main__":
    main()
