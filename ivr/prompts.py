"""Builds the prompt files Asterisk plays: an administrator's recording wins, else espeak-ng.

Output is 8 kHz mono 16-bit WAV (Asterisk's slin). A sidecar file holds the SHA-256 of the
source (text or recording), so a prompt is rebuilt only when its source changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import structlog

from telephony.say_zh import SOUND_SET, SoundSetError, check_sound_set

log = structlog.get_logger(__name__)


# trim leading and trailing silence: callers should not wait through nothing
_TRIM = ("silence", "1", "0.05", "0.5%", "reverse", "silence", "1", "0.05", "0.5%", "reverse")


# espeak-ng's voice "cmn" reads Latin as English, and its dictionary gives many characters as
# pinyin (一 → "yi1"): the caller heard "yi one", "nin two hao three". "cmn-latn-pinyin" reads
# that pinyin in Mandarin. Part of every synthesised prompt's stamp: a new voice rebuilds them.
VOICE = ("espeak-ng", "-v", "cmn-latn-pinyin", "-s", "170")


class PromptBuildError(RuntimeError):
    """A prompt could not be made (tool missing or failed)."""


def _run(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise PromptBuildError(f"{command[0]} is not installed (apt-get install {command[0]})")
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        raise PromptBuildError(f"{' '.join(command[:2])} failed: {result.stderr.strip()[:300]}")


def build_prompts(texts: Mapping[str, str], recorded_dir: Path, out_dir: Path) -> list[str]:
    """Make ``out_dir/<name>.wav`` for every prompt; returns the names (re)built."""
    out_dir.mkdir(parents=True, exist_ok=True)
    built: list[str] = []
    for name, text in texts.items():
        recorded = recorded_dir / f"{name}.wav"
        source = recorded.read_bytes() if recorded.is_file() else " ".join((*VOICE, "--", text)).encode("utf-8")
        digest = hashlib.sha256(source).hexdigest()
        target = out_dir / f"{name}.wav"
        stamp = out_dir / f".{name}.sha256"
        if target.is_file() and stamp.is_file() and stamp.read_text() == digest:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.wav"
            if recorded.is_file():
                shutil.copyfile(recorded, raw)
            else:
                # "--": the text is never an option ("-f<file>" would speak any readable file)
                _run([*VOICE, "-w", str(raw), "--", text])
            _run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(target), *_TRIM])
        stamp.write_text(digest)
        built.append(name)
        log.info("prompts.built", prompt=name, source="recording" if recorded.is_file() else "espeak-ng")
    return built


def build_sound_set(recorded_dir: Path, out_dir: Path) -> list[str]:
    """The Mandarin sound set (telephony/say_zh.py) in ``out_dir``: a recording in
    ``recorded_dir`` (same name) wins, else espeak-ng. Raises naming any file still missing."""
    built = build_prompts(SOUND_SET, recorded_dir, out_dir)
    try:
        check_sound_set(out_dir)
    except SoundSetError as exc:
        raise PromptBuildError(str(exc)) from None
    return built
