"""AsteriskProcess.start against a stand-in for Asterisk (a script where the loader would be):
a boot slower than one ``core waitfullybooted`` wait is waited for, not raised."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from telephony.asterisk_conf import AsteriskLayout
from telephony.asterisk_process import AsteriskProcess, AsteriskUnavailable

# argv: --library-path LIBS ASTERISK -C CONF (-f -n | -rx COMMAND); the first -rx hangs (a busy
# host's slow boot), later ones answer; -f stays up until terminated
STAND_IN = """#!{python}
import pathlib, sys, time
marks = pathlib.Path({marks!r})
if "-f" in sys.argv:
    time.sleep(3600)
marks.mkdir(exist_ok=True)
count = len(list(marks.iterdir()))
(marks / str(count)).touch()
if count < {hanging}:
    time.sleep(3600)
sys.exit({answer})
"""


def _stand_in(tmp_path: Path, hanging: int, answer: int = 0) -> tuple[AsteriskProcess, Path]:
    root = tmp_path / "root"
    loader = root / "lib64/ld-linux-x86-64.so.2"
    loader.parent.mkdir(parents=True)
    marks = tmp_path / "marks"
    loader.write_text(STAND_IN.format(python=sys.executable, marks=str(marks), hanging=hanging, answer=answer))
    loader.chmod(loader.stat().st_mode | stat.S_IXUSR)
    binary = root / "usr/sbin/asterisk"
    binary.parent.mkdir(parents=True)
    binary.touch()
    layout = AsteriskLayout(root=root, etc_dir=tmp_path / "etc", var_dir=tmp_path / "var")
    return AsteriskProcess(layout, tmp_path / "log/asterisk.log"), marks


def test_a_boot_slower_than_one_wait_is_waited_for(tmp_path: Path) -> None:
    asterisk, marks = _stand_in(tmp_path, hanging=2)
    try:
        asterisk.start(timeout_s=30, wait_s=0.5)
        assert asterisk.running()
        assert len(list(marks.iterdir())) == 3  # two waits ran out, the third answered
    finally:
        asterisk.stop(timeout_s=2)
    assert not asterisk.running()


def test_a_boot_that_never_ends_is_refused_at_the_deadline(tmp_path: Path) -> None:
    asterisk, _ = _stand_in(tmp_path, hanging=1000)
    with pytest.raises(AsteriskUnavailable, match="did not boot within 2 s"):
        asterisk.start(timeout_s=2, wait_s=0.5)
    assert not asterisk.running()
