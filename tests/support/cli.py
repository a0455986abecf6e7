"""Run the ``hotline12345`` command as a user would (a child process from the repository)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*arguments: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m hotline.cli ARGUMENTS`` in the repository; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "hotline.cli", *arguments],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=timeout_s,
    )
