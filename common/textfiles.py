"""Reading the operators' text files (dialplans, caller lists, units, desk codes, knowledge):
a regular file only, and at most a bound, read before anything is parsed.

``Path.read_text`` would block for ever on a FIFO named ``x.yaml`` (holding the reload's lock,
so every later reload waits too), never end on a link to ``/dev/zero``, and read a stray
gigabyte log whole before the YAML bound (``common/yamlsource.py``) could refuse it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from common.yamlsource import MAX_YAML_CHARS

MAX_TEXT_BYTES = MAX_YAML_CHARS * 4  # UTF-8: at most 4 bytes a character


def read_text_file(path: Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``; OSError (``strerror`` says why) for anything
    else or anything larger than ``max_bytes``, UnicodeDecodeError for text that is not UTF-8."""
    # O_NONBLOCK: opening a FIFO with no writer returns at once (then it is refused below)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, a device or a folder)")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(errno.EFBIG, f"larger than {max_bytes // 1024} KiB")
    return data.decode("utf-8")
