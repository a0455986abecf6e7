"""Audio for tests: tones and speech as 8 kHz u-law WAVs (what SIPp streams), and measuring it."""

from __future__ import annotations

import subprocess
from pathlib import Path


def tone_wav(path: Path, seconds: float = 3.0, frequency_hz: int = 440, volume: float = 0.5) -> Path:
    """A sine tone as an 8 kHz u-law WAV; ``volume=0`` gives RTP that carries silence."""
    command = ["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(path)]
    command += ["synth", str(seconds), "sine", str(frequency_hz), "vol", str(volume)]
    subprocess.run(command, check=True, capture_output=True)
    return path


def speech_then_silence_wav(path: Path, speech_s: float, silence_s: float) -> Path:
    """A tone then silence: Asterisk ends a recording on silence only after it heard sound."""
    command = ["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(path)]
    command += ["synth", str(speech_s), "sine", "440", "vol", "0.5", "pad", "0", str(silence_s)]
    subprocess.run(command, check=True, capture_output=True)
    return path


def rms_amplitude(path: Path) -> float:
    """sox's RMS amplitude of a recording (0.0 = silence)."""
    result = subprocess.run(["sox", str(path), "-n", "stat"], check=True, capture_output=True, text=True)
    for line in result.stderr.splitlines():
        if line.startswith("RMS     amplitude"):
            return float(line.split(":")[1])
    raise AssertionError(f"sox stat gave no RMS for {path}: {result.stderr}")


def duration_s(path: Path) -> float:
    result = subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True)
    return float(result.stdout.strip())
