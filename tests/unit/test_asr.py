"""vosk transcription with the real Korean model: 8 kHz speech, resampling, bad files, bad folders."""

from __future__ import annotations

import math
import shutil
import wave
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import korean_model_folder, korean_speech_wav
from voicemail.asr import (
    AudioUnreadable,
    FeatureRates,
    ModelUnavailable,
    Pcm,
    VoskTranscriber,
    read_feature_rates,
    read_wav,
    resample,
    resample_linear,
)

GRAMMAR = ["안녕하세요", "감사합니다", "전화", "도로"]


@pytest.fixture(scope="module")
def transcriber() -> Iterator[VoskTranscriber]:
    engine = VoskTranscriber(korean_model_folder(), grammar=GRAMMAR, workers=2)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def greeting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return korean_speech_wav(tmp_path_factory.mktemp("speech") / "greeting.wav", "안녕하세요 감사합니다")


async def test_8khz_speech_with_a_grammar(transcriber: VoskTranscriber, greeting: Path) -> None:
    assert read_wav(greeting).rate == 8000
    assert transcriber.rates.accepts(8000)  # this model's mfcc.conf has --allow-upsample=true
    transcript = await transcriber.transcribe(greeting)
    assert "안녕하세요" in transcript.text and "감사합니다" in transcript.text
    assert [word.word for word in transcript.words] == transcript.text.split()
    assert all(0 <= word.start < word.end for word in transcript.words)
    assert 0 < transcript.confidence <= 1


def test_a_model_that_refuses_8khz_gets_resampled_audio(tmp_path: Path, greeting: Path) -> None:
    # the shape of vosk-model-small-cn: a 16 kHz model whose mfcc.conf has no --allow-upsample
    source = korean_model_folder()
    strict = tmp_path / "strict-model"
    strict.mkdir()
    for part in source.iterdir():
        if part.name != "conf":
            (strict / part.name).symlink_to(part)
    shutil.copytree(source / "conf", strict / "conf")
    mfcc = strict / "conf/mfcc.conf"
    mfcc.write_text("".join(line for line in mfcc.read_text().splitlines(True) if "allow-upsample" not in line))
    engine = VoskTranscriber(strict, grammar=GRAMMAR, workers=1)
    try:
        assert not engine.rates.accepts(8000)
        assert "감사합니다" in engine.transcribe_file(greeting).text
    finally:
        engine.close()


def test_feature_rates_from_mfcc_conf(tmp_path: Path) -> None:
    conf = tmp_path / "mfcc.conf"
    conf.write_text("--sample-frequency=8000 # telephone model\n--use-energy=false\n")
    assert read_feature_rates(conf) == FeatureRates(sample_rate=8000)
    assert not FeatureRates(sample_rate=8000).accepts(16000)
    assert FeatureRates(allow_downsample=True).accepts(44100)


def tone(hz: float, rate: int, count: int) -> array[int]:
    return array("h", (int(10000 * math.sin(2 * math.pi * hz * n / rate)) for n in range(count)))


def test_linear_resampling_keeps_the_signal() -> None:
    source = tone(400, 8000, 800)
    doubled = resample_linear(Pcm(8000, source.tobytes()), 16000)
    samples = array("h", doubled.data)
    assert doubled.rate == 16000 and len(samples) == 1600
    assert samples[::2][:799] == source[:799]  # every other sample is an original one
    assert max(samples) <= 10000


def test_soxr_resampling_keeps_the_tone_in_place_and_the_length() -> None:
    doubled = resample(Pcm(8000, tone(400, 8000, 8000).tobytes()), 16000)
    samples = np.frombuffer(doubled.data, dtype="<i2").astype(float)
    assert doubled.rate == 16000 and len(samples) == 16000
    ideal = np.array(tone(400, 16000, 16000), dtype=float)
    middle = slice(800, 15200)  # away from the edges the filter has to start and stop
    assert np.max(np.abs(samples[middle] - ideal[middle])) < 200  # 2 % of the amplitude, no delay
    assert resample(Pcm(16000, doubled.data), 16000).data == doubled.data  # the model's rate: untouched
    assert resample(Pcm(8000, b""), 16000) == Pcm(16000, b"")


def high_band_share(pcm: Pcm) -> float:
    """The share of the signal's energy above 4.2 kHz (telephone speech has none)."""
    spectrum = np.abs(np.fft.rfft(np.frombuffer(pcm.data, dtype="<i2").astype(float))) ** 2
    frequencies = np.fft.rfftfreq(len(pcm.data) // 2, 1 / pcm.rate)
    return float(spectrum[frequencies > 4200].sum() / spectrum.sum())


def test_soxr_leaves_no_image_above_the_telephone_band_where_linear_did() -> None:
    source = Pcm(8000, tone(3000, 8000, 8000).tobytes())  # a 3 kHz tone: its image sits at 5 kHz
    linear, soxr_ = high_band_share(resample_linear(source, 16000)), high_band_share(resample(source, 16000))
    assert linear > 0.05  # linear interpolation leaves a strong image
    assert soxr_ < 0.001


def write_wav(path: Path, channels: int, width: int, frames: bytes) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(8000)
        wav.writeframes(frames)
    return path


def corrupt_files(folder: Path, good: Path) -> list[Path]:
    garbage = folder / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x01junk" * 10)
    truncated = folder / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    return [garbage, truncated, empty, folder / "gone.wav"]


async def test_corrupt_files_are_a_typed_error(transcriber: VoskTranscriber, tmp_path: Path, greeting: Path) -> None:
    for bad in corrupt_files(tmp_path, greeting):
        with pytest.raises(AudioUnreadable, match=bad.name):
            await transcriber.transcribe(bad)
    with pytest.raises(AudioUnreadable, match="expected 16-bit PCM mono"):
        read_wav(write_wav(tmp_path / "stereo.wav", 2, 2, b"\x00" * 400))
    with pytest.raises(AudioUnreadable, match="8-bit"):
        read_wav(write_wav(tmp_path / "eight.wav", 1, 1, b"\x80" * 400))
    # the pool survived: the next good file decodes
    assert "감사합니다" in (await transcriber.transcribe(greeting)).text


def test_silence_gives_an_empty_transcript(transcriber: VoskTranscriber, tmp_path: Path) -> None:
    transcript = transcriber.transcribe_file(write_wav(tmp_path / "quiet.wav", 1, 2, b"\x00\x00" * 8000))
    assert transcript.text == "" and transcript.words == () and transcript.confidence == 0.0


def test_a_missing_or_wrong_model_folder_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"does not exist; expected a vosk model folder.*am/final\.mdl"):
        VoskTranscriber(tmp_path / "vosk-model-small-cn-0.22")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/mfcc.conf").write_text("--use-energy=false\n")
    with pytest.raises(ModelUnavailable, match=r"missing am/final\.mdl, graph/HCLG\.fst"):
        VoskTranscriber(tmp_path)


def test_free_speech_decodes_a_file_the_same_every_time_even_two_at_once(tmp_path: Path) -> None:
    """kaldi's default dither (noise from the process-wide rand()) made the same message come
    out as different texts; the model is loaded without it, its folder left as it was."""
    words = "우리 동네 가로등이 일주일째 꺼져 있어서 밤에 너무 어둡습니다"
    message = korean_speech_wav(tmp_path / "message.wav", words)
    mfcc = korean_model_folder() / "conf/mfcc.conf"
    shipped = mfcc.read_text()
    engine = VoskTranscriber(korean_model_folder(), grammar=None, workers=2)
    try:
        one = engine.transcribe_file(message)
        assert len(one.text.split()) >= 4
        # two at once (their frames' noise drew from one rand() in turns), then once more alone;
        # the whole transcript, each word's times and confidence too (with dither none matched)
        again = list(engine._pool.map(engine.transcribe_file, [message, message]))
        assert [*again, engine.transcribe_file(message)] == [one] * 3
        view_conf = Path(engine._view.name) / "model/conf/mfcc.conf"
        assert view_conf.read_text().splitlines()[-1] == "--dither=0"
    finally:
        engine.close()
    assert mfcc.read_text() == shipped
    assert not Path(engine._view.name).exists()  # close() removed the view
