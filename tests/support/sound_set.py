"""The Mandarin sound set, built once per test run and copied into every platform under test.

Each controller builds it at start (about 50 espeak-ng and sox runs, seconds on a loaded box);
a copy with its stamps (ivr/prompts.py) makes that build a check that finds nothing to do."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from common.private_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, private_dir
from ivr.prompts import build_sound_set
from telephony.say_zh import zh_sounds_dir

_BUILT: list[Path] = []


def seed_sound_set(runtime_dir: Path, recorded_dir: Path) -> None:
    """Put a built sound set into ``runtime_dir`` unless it has one (recordings from ``recorded_dir``/zh)."""
    target = zh_sounds_dir(runtime_dir)
    if target.exists():
        return
    if not _BUILT:
        folder = Path(tempfile.mkdtemp(prefix="hotline-zh-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        build_sound_set(recorded_dir / "zh", folder / "zh")
        _BUILT.append(folder / "zh")
    private_dir(target.parent)  # as the controller makes its folders: the service's alone
    shutil.copytree(_BUILT[0], target)
    target.chmod(PRIVATE_DIR_MODE)
    for path in target.rglob("*"):
        path.chmod(PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE)
