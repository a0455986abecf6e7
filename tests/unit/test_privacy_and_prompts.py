"""Masking of personal data, and prompt building with espeak-ng and sox (real tools)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hotline.privacy import mask_name, mask_number
from ivr.prompts import build_prompts
from tests.support.audio import duration_s, tone_wav


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("13812345678", "138****5678"),
        ("087165123456", "0871****3456"),
        ("6512345", "65*2345"),
        ("110", "*10"),
        ("", ""),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_mask_name() -> None:
    assert mask_name("张三丰") == "张**"
    assert mask_name("") == ""


def test_prompts_are_synthesised_once_and_a_recording_wins(tmp_path: Path) -> None:
    recorded, out = tmp_path / "recorded", tmp_path / "out"
    recorded.mkdir()
    texts = {"greeting": "您好，这里是一二三四五。", "goodbye": "再见。"}
    assert build_prompts(texts, recorded, out) == ["greeting", "goodbye"]
    info = subprocess.run(["soxi", str(out / "greeting.wav")], capture_output=True, text=True, check=True).stdout
    assert "Sample Rate    : 8000" in info
    assert "Channels       : 1" in info
    assert build_prompts(texts, recorded, out) == []  # unchanged: not rebuilt

    tone_wav(recorded / "goodbye.wav", seconds=2.0)
    assert build_prompts(texts, recorded, out) == ["goodbye"]
    assert abs(duration_s(out / "goodbye.wav") - 2.0) < 0.1
