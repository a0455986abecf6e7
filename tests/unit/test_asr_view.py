"""The vosk model's deterministic view (voicemail/asr.py) where the temp folder fails: a full
disk or an unwritable TMPDIR must say so as ModelUnavailable (the ASR worker's ConfigError),
not end the worker with a traceback, and leave nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from voicemail.asr import ModelUnavailable, VoskTranscriber


def _model(folder: Path) -> Path:
    """A folder shaped like a vosk model (check_model_folder passes; vosk is never reached)."""
    for part in ("am/final.mdl", "conf/mfcc.conf", "graph/HCLG.fst"):
        (folder / part).parent.mkdir(parents=True, exist_ok=True)
        (folder / part).write_text("--use-energy=false\n" if part.endswith(".conf") else "")
    return folder


def test_a_temp_folder_that_cannot_be_used_is_a_model_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(tmp_path / "vosk-model-small-cn-0.22")
    not_a_folder = tmp_path / "tmp"
    not_a_folder.write_text("")  # TMPDIR names a file: mkdtemp fails as on a full or read-only disk
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    with pytest.raises(ModelUnavailable, match=r"temporary folder"):
        VoskTranscriber(model)
