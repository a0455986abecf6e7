"""``hotline12345 asr-worker`` and ``hotline12345 transcribe`` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.cli import run_cli
from tests.support.speech import korean_model_folder, korean_speech_wav


def config_file(tmp_path: Path, model: Path | None, grammar: list[str] | None = None) -> Path:
    path = tmp_path / "config.yaml"
    asr: dict[str, object] = {"model_path": str(model) if model else None}
    if grammar:
        asr["grammar"] = grammar
    path.write_text(yaml.safe_dump({"asr": asr}, allow_unicode=True), encoding="utf-8")
    return path


def test_a_worker_without_a_model_says_what_it_needs(tmp_path: Path) -> None:
    result = run_cli("asr-worker", "--config", str(config_file(tmp_path, None)))
    assert result.returncode == 2
    assert "asr.model_path is not set" in result.stderr
    assert "vosk-model-cn-0.22" in result.stderr


def test_a_wrong_model_folder_stops_the_worker_at_start(tmp_path: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    result = run_cli("asr-worker", "--config", str(config_file(tmp_path, tmp_path / "not-a-model")))
    assert result.returncode == 2
    assert "asr.model_path" in result.stderr
    assert "am/final.mdl" in result.stderr
    assert "Traceback" not in result.stderr


def test_transcribe_files_prints_text_and_a_summary(tmp_path: Path) -> None:
    speech = korean_speech_wav(tmp_path / "hello.wav", "안녕하세요")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not a wav")
    config = config_file(tmp_path, korean_model_folder(), grammar=["안녕하세요", "감사합니다", "[unk]"])
    result = run_cli("transcribe", "--config", str(config), str(speech), str(broken), timeout_s=120)
    assert result.returncode == 1  # one file failed
    assert "안녕하세요" in result.stdout
    assert "[2/2]" in result.stderr
    assert "1 transcribed, 1 failed" in result.stderr
