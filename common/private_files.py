"""Files that are the service's alone: 0700 folders, 0600 files, secrets made at first use."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PRIVATE_UMASK = 0o077  # what the controller and the processes it starts create: theirs alone


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700: what is inside is nobody else's."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def private_log(path: Path) -> BinaryIO:
    """``path`` opened for appending, 0600 (a child process's output: Asterisk's console shows
    the AGI key and callers' numbers)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "ab")


def local_secret(path: Path) -> str:
    """The secret kept in ``path``; when there is none, a new random one, written 0600.

    Creation is atomic (a complete temporary file linked into place): two processes starting at
    once end up with the same secret."""
    with contextlib.suppress(FileNotFoundError):
        value = path.read_text(encoding="utf-8").strip()
        if value:
            if path.stat().st_mode & 0o077:
                path.chmod(PRIVATE_FILE_MODE)
            return value
    private_dir(path.parent)
    value = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text(encoding="utf-8").strip()  # another process made it first
    finally:
        temporary.unlink(missing_ok=True)
    return value
