"""Is the message spool fit to take a caller's message? And did a recording really land?

A caller must never be told "your message is saved" when it is not. Two checks:

- before recording, ``SpoolMonitor.refusal()``: the voicemail folder is writable (a real probe
  write: root ignores permission bits, a full or read-only filesystem does not) and has at least
  ``spool.min_free_mb`` free. The same check runs periodically for ``/api/v1/health``. A fit
  result less than ``FRESH_S`` old is reused (at 20 messages a second, one thread a second
  instead of one a message); an unfit one never is, so recovery is seen at the next message.
- after recording, ``recording_failure()`` (pure): Asterisk 22 does not fail ``RECORD FILE`` when
  its writes fail (it logs "Natural write failed" and goes on counting samples), so the file is
  compared with what Asterisk says it recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from voicemail.intake import wav_duration_s

log = structlog.get_logger(__name__)

RECORDED_RATE = 8000  # Asterisk's "wav" format: 8 kHz, 16 bit
LOST_TOLERANCE_S = 0.5  # less than this missing from the file is rounding, not a lost message
PARTIAL_SUFFIX = ".partial"  # a recording that failed: <call>.wav.partial, never a ticket
CHECK_TIMEOUT_S = 2.0  # a spool slower than this to answer cannot take a caller's message
FRESH_S = 1.0  # a fit check this recent stands for the next message (the recording is checked after)
_PROBE_NAME = ".spool-probe"
_MB = 1024 * 1024


@dataclass(frozen=True)
class SpoolState:
    """The spool's last check: ``reason`` is empty when messages can be taken."""

    reason: str = ""
    free_mb: float | None = None

    @property
    def ok(self) -> bool:
        return not self.reason


def check_spool(folder: Path, min_free_mb: float) -> SpoolState:
    """Blocking: create the folder if needed, probe-write a byte, read the free space."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stat = os.statvfs(folder)
    except OSError as exc:
        return SpoolState(reason=f"spool {folder.name}/ is not usable: {exc.strerror or exc}")
    free_mb = stat.f_bavail * stat.f_frsize / _MB
    if stat.f_flag & os.ST_RDONLY:
        return SpoolState(reason=f"spool {folder.name}/ is on a read-only filesystem", free_mb=free_mb)
    probe = folder / f"{_PROBE_NAME}-{os.getpid()}-{threading.get_ident()}"
    try:
        with probe.open("wb") as handle:
            handle.write(b"\0")
    except OSError as exc:
        return SpoolState(reason=f"spool {folder.name}/ is not writable: {exc.strerror or exc}", free_mb=free_mb)
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    if free_mb < min_free_mb:
        return SpoolState(
            reason=f"spool {folder.name}/ has {free_mb:.1f} MB free, under spool.min_free_mb ({min_free_mb:g})",
            free_mb=free_mb,
        )
    return SpoolState(free_mb=free_mb)


def recording_failure(*, exists: bool, duration_s: float, samples: int, ended_by: str) -> str:
    """Why a finished recording is not the caller's message (pure); "" when it is.

    ``samples``: what Asterisk reports it recorded (``endpos``); ``duration_s``: what the file
    holds. A caller who hangs up during the beep leaves no file and no samples: that is a
    too-short message, not a failure.
    """
    if not exists:
        if samples == 0 and ended_by == "hangup":
            return ""
        return "the message file was not written"
    recorded_s = samples / RECORDED_RATE
    if recorded_s - duration_s > LOST_TOLERANCE_S:
        return f"the message file holds {duration_s:.1f} s of {recorded_s:.1f} s recorded (disk full?)"
    return ""


def settle_recording(wav: Path, samples: int, ended_by: str) -> str:
    """Make the caller's message durable before anyone is told it exists (fsync); why it is not
    the caller's message after all (not written, write errors, disk full), or "" (blocking)."""
    try:
        fd = os.open(wav, os.O_RDONLY)
    except FileNotFoundError:
        return recording_failure(exists=False, duration_s=0.0, samples=samples, ended_by=ended_by)
    except OSError as exc:
        return f"the message file cannot be read: {exc.strerror or exc}"
    try:
        os.fsync(fd)
    except OSError as exc:
        return f"the message file could not be made durable: {exc.strerror or exc}"
    finally:
        os.close(fd)
    return recording_failure(exists=True, duration_s=wav_duration_s(wav), samples=samples, ended_by=ended_by)


def set_aside(wav: Path) -> None:
    """A failed recording is renamed ``<call>.wav.partial``: kept for a person, never queued by
    the rescan (it is no message: the caller is called back)."""
    try:
        wav.replace(wav.with_name(wav.name + PARTIAL_SUFFIX))
    except FileNotFoundError:
        return
    except OSError as exc:
        log.error("voicemail.partial_not_set_aside", file=wav.name, error=exc.strerror or str(exc))


class SpoolMonitor:
    """The voicemail folder's fitness, checked periodically and before every message; counts
    messages that could not be kept (``hotline_voicemail_failed_total``)."""

    def __init__(
        self,
        folder: Path,
        min_free_mb: float,
        timeout_s: float = CHECK_TIMEOUT_S,
        fresh_s: float = FRESH_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._folder = folder
        self._min_free_mb = min_free_mb
        self._timeout_s = timeout_s
        self._fresh_s = fresh_s
        self._monotonic = monotonic
        self._checked_at: float | None = None  # when the last check ended
        self._running: asyncio.Future[SpoolState] | None = None
        self.state = SpoolState()
        self.messages_failed = 0

    async def check(self) -> SpoolState:
        """One check at a time (callers share it); a disk that hangs (a dead network mount) is
        unfit after ``timeout_s``, and no second thread is sent after the stuck one."""
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(asyncio.to_thread(check_spool, self._folder, self._min_free_mb))
        try:
            state = await asyncio.wait_for(asyncio.shield(self._running), self._timeout_s)
        except TimeoutError:
            state = SpoolState(
                reason=f"spool {self._folder.name}/ does not answer (a check waits over {self._timeout_s:g} s)"
            )
        if state.reason != self.state.reason:
            if state.ok:
                log.info("spool.recovered", free_mb=round(state.free_mb or 0, 1))
            else:
                log.error("spool.unfit", reason=state.reason)
        self.state = state
        self._checked_at = self._monotonic()
        return state

    async def refusal(self) -> str:
        """Checked just before a caller is asked for a message: why not, or "" (a fit check
        under ``fresh_s`` old is taken as it is)."""
        if self.state.ok and self._checked_at is not None and self._monotonic() - self._checked_at < self._fresh_s:
            return ""
        return (await self.check()).reason

    def message_failed(self, call_id: str, reason: str) -> None:
        self.messages_failed += 1
        log.error("voicemail.not_kept", call_id=call_id, reason=reason, note="the caller is told and called back")
