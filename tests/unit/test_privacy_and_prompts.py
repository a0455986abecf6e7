"""Masking of personal data, and prompt building with espeak-ng and sox (real tools)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.privacy import mask_fallback_names, mask_name, mask_number
from hotline.logs import mask_personal_data
from ivr.prompts import build_prompts
from tests.support.audio import duration_s, tone_wav


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("13812345678", "138****5678"),
        ("087165123456", "087******456"),
        ("08716512345", "08******345"),
        ("01065123456", "01******456"),
        ("65123456", "6****456"),
        ("6512345", "****345"),
        ("110", "**0"),
        ("", ""),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def _shown(number: str, masked: str) -> list[int]:
    """Where the mask shows the original (positions), after checking it is a true mask."""
    assert len(masked) == len(number)
    assert all(m in ("*", n) for m, n in zip(masked, number, strict=True))
    return [i for i, m in enumerate(masked) if m != "*"]


def _longest_run(positions: list[int]) -> int:
    longest = run = 0
    for i, position in enumerate(positions):
        run = run + 1 if i and position == positions[i - 1] + 1 else 1
        longest = max(longest, run)
    return longest


digit_strings = st.text(alphabet="0123456789", max_size=20)


@given(digit_strings)
def test_a_masked_number_hides_at_least_half_and_never_a_long_run(number: str) -> None:
    shown = _shown(number, mask_number(number))
    is_mobile = len(number) == 11 and number[0] == "1" and number[1] in "3456789"
    # a mobile number is shown as 138****5678, everything else at most half
    assert len(shown) <= (7 if is_mobile else len(number) // 2)
    assert _longest_run(shown) <= (4 if is_mobile else 3)  # never 5 digits in a row of the original


@given(
    prefix=st.sampled_from(["", "0871", "010", "0691", "86", "+86", "+86 871 "]),
    local=st.text(alphabet="0123456789", min_size=7, max_size=8).filter(lambda s: s[0] != "1"),
)
def test_a_landline_keeps_at_least_half_of_its_local_number_hidden(prefix: str, local: str) -> None:
    """7- or 8-digit local numbers, with or without an area (or country) code before them."""
    number = prefix + local
    shown_in_local = [i for i in _shown(number, mask_number(number)) if i >= len(prefix)]
    assert len(shown_in_local) <= len(local) // 2


def test_old_fallback_names_are_masked_wherever_they_appear() -> None:
    old = "fallback/fb-1772442000-13800138000-kunming-1772442000.7.wav"
    masked = mask_fallback_names(f"repeat request: call kunming-1772442000.7, message {old}")
    assert "13800138000" not in masked
    assert "fallback/fb-1772442000-138****8000-kunming-1772442000.7.wav" in masked
    # new names (no number in them) and other text are left alone
    new = "fallback/fb2-1772442000-kunming-1772442000.7.wav"
    assert mask_fallback_names(new) == new
    assert mask_fallback_names("voicemail/kunming-1772442000.7.wav") == "voicemail/kunming-1772442000.7.wav"


def test_log_lines_mask_old_fallback_names() -> None:
    old = "fallback/fb-1772442000-13800138000-kunming-1772442000.7.wav"
    event = mask_personal_data(None, "info", {"event": "asr.job_parked", "recording": old, "attempts": 3})
    assert event == {
        "event": "asr.job_parked",
        "recording": "fallback/fb-1772442000-138****8000-kunming-1772442000.7.wav",
        "attempts": 3,
    }


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
