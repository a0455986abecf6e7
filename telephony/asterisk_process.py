"""Run a managed Asterisk from the provisioned root on the host (no chroot).

Used by ``hotline12345 stack`` (make run) and by the integration tests.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from common.private_files import PRIVATE_UMASK, private_log
from telephony.asterisk_conf import AsteriskLayout


class AsteriskUnavailable(RuntimeError):
    """Asterisk is not provisioned or does not start."""


class AsteriskProcess:
    """One Asterisk in the foreground (``-f``), its console output in ``log_path``."""

    def __init__(self, layout: AsteriskLayout, log_path: Path) -> None:
        self.layout = layout
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        loader = layout.root / "lib64/ld-linux-x86-64.so.2"
        libs = f"{layout.root}/usr/lib/x86_64-linux-gnu:{layout.root}/lib/x86_64-linux-gnu"
        self._base = [
            str(loader),
            "--library-path",
            libs,
            str(layout.root / "usr/sbin/asterisk"),
            "-C",
            str(layout.etc_dir / "asterisk.conf"),
        ]

    def check_provisioned(self) -> None:
        if not (self.layout.root / "usr/sbin/asterisk").is_file():
            raise AsteriskUnavailable(
                f"no Asterisk in {self.layout.root}: run scripts/provision-asterisk.sh (make asterisk) first"
            )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 60.0, wait_s: float = 5.0) -> None:
        """Start and wait until fully booted (asking for up to ``wait_s`` at a time)."""
        self.check_provisioned()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = private_log(self.log_path)
        # what Asterisk writes (callers' messages, recordings, logs that show the AGI key) is its
        # user's alone: files 0600, folders 0700
        self._proc = subprocess.Popen(
            [*self._base, "-f", "-n"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            umask=PRIVATE_UMASK,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AsteriskUnavailable(f"Asterisk exited with {self._proc.returncode}; see {self.log_path}")
            if self._booted(min(wait_s, max(0.5, deadline - time.monotonic()))):
                return
            time.sleep(0.2)
        self.stop()
        raise AsteriskUnavailable(f"Asterisk did not boot within {timeout_s:g} s; see {self.log_path}")

    def _booted(self, timeout_s: float) -> bool:
        """``core waitfullybooted`` answered in time. On a busy host a boot can take longer than
        one wait: a wait that times out is "not yet", not a failure (CI once lost a module's
        fixture to one 5 s wait raising ``TimeoutExpired``)."""
        try:
            return self.cli("core waitfullybooted", timeout_s=timeout_s, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def cli(self, command: str, timeout_s: float = 10.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one CLI command through the control socket (``asterisk -rx``)."""
        result = subprocess.run(
            [*self._base, "-rx", command], capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if check and result.returncode != 0:
            raise AsteriskUnavailable(
                f"asterisk -rx {command!r} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop now (calls are dropped: this is for shutdown and fault tests)."""
        if self._proc is not None:
            terminate(self._proc, timeout_s)
        self._proc = None


def terminate(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, and SIGKILL if it is still there after ``timeout_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
