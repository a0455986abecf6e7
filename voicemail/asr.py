"""Speech to text for callers' messages with vosk (offline; the model is a folder on disk).

One ``vosk.Model`` per process, shared by every message (loading takes seconds and hundreds of
MB); one ``KaldiRecognizer`` per message (they are not thread-safe). vosk's C calls release the
GIL, so decoding runs in a thread pool sized to the cores and the event loop stays free.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import wave
from array import array
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog
import vosk

from tickets.model import Transcript, Word

log = structlog.get_logger(__name__)

CHUNK_FRAMES = 4000
KALDI_DEFAULT_RATE = 16000  # what kaldi assumes when mfcc.conf names no --sample-frequency


class ModelUnavailable(RuntimeError):
    """The configured folder is not a vosk model we can load."""


class AudioUnreadable(ValueError):
    """The message is not a WAV we can decode (truncated, not PCM, not 16-bit mono …).

    Permanent: retrying the same file cannot help, so the job queue parks it at once.
    """


@dataclass(frozen=True)
class FeatureRates:
    """What the model's ``conf/mfcc.conf`` says about input sample rates."""

    sample_rate: int = KALDI_DEFAULT_RATE
    allow_upsample: bool = False
    allow_downsample: bool = False

    def accepts(self, rate: int) -> bool:
        if rate == self.sample_rate:
            return True
        return self.allow_upsample if rate < self.sample_rate else self.allow_downsample


def read_feature_rates(mfcc_conf: Path) -> FeatureRates:
    """Parse the options that decide whether kaldi takes a rate (it aborts on a refused one)."""
    options: dict[str, str] = {}
    for line in mfcc_conf.read_text().splitlines():
        name, _, value = line.split("#", 1)[0].strip().partition("=")
        options[name] = value.strip()
    return FeatureRates(
        sample_rate=int(float(options.get("--sample-frequency", KALDI_DEFAULT_RATE))),
        allow_upsample=options.get("--allow-upsample", "false").lower() == "true",
        allow_downsample=options.get("--allow-downsample", "false").lower() == "true",
    )


def check_model_folder(path: Path) -> None:
    """Refuse anything that is not an unpacked vosk model, saying what was expected."""
    expected = (
        "a vosk model folder such as vosk-model-small-cn-0.22 unpacked: am/final.mdl, conf/mfcc.conf "
        "and graph/ (HCLG.fst, or HCLr.fst with Gr.fst)"
    )
    if not path.is_dir():
        raise ModelUnavailable(f"ASR model folder {path} does not exist; expected {expected}")
    has_am = (path / "am/final.mdl").is_file() or (path / "final.mdl").is_file()
    graph = path / "graph"
    has_graph = (graph / "HCLG.fst").is_file() or ((graph / "HCLr.fst").is_file() and (graph / "Gr.fst").is_file())
    missing = [
        name
        for name, present in (
            ("am/final.mdl", has_am),
            ("conf/mfcc.conf", (path / "conf/mfcc.conf").is_file()),
            ("graph/HCLG.fst or graph/HCLr.fst+Gr.fst", has_graph),
        )
        if not present
    ]
    if missing:
        raise ModelUnavailable(f"{path} is not a vosk model folder (missing {', '.join(missing)}); expected {expected}")


NO_DITHER = "--dither=0"


def deterministic_view(model_path: Path, into: Path) -> Path:
    """A view of the model folder in ``into`` whose features add no dither: every entry a
    symlink to the original except the MFCC config, copied with ``--dither=0`` appended (kaldi
    takes the last value of an option). Kaldi's default dither (1.0) adds Gaussian noise to each
    frame from the process-wide ``rand()``: the same message decoded twice, or two decoded at
    once, came out as different texts (a Korean test message: 3 texts in 6 decodes)."""
    view = into / "model"
    view.mkdir()
    for part in model_path.iterdir():
        if part.name == "conf" and part.is_dir():
            (view / "conf").mkdir()
            for conf in part.iterdir():
                _copy_conf(conf, view / "conf" / conf.name)
        elif part.name == "mfcc.conf":  # the older flat layout
            _copy_conf(part, view / part.name)
        else:
            (view / part.name).symlink_to(part.resolve())
    return view


def _copy_conf(source: Path, target: Path) -> None:
    if source.name != "mfcc.conf":
        target.symlink_to(source.resolve())
        return
    text = source.read_text()
    target.write_text(text + ("" if text.endswith("\n") or not text else "\n") + NO_DITHER + "\n")


@dataclass(frozen=True)
class Pcm:
    """Signed 16-bit little-endian mono samples at ``rate`` Hz."""

    rate: int
    data: bytes


def read_wav(path: Path) -> Pcm:
    """The samples of a 16-bit PCM mono WAV (Asterisk writes 8 kHz); anything else is refused."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate, frames = wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()
            data = wav.readframes(frames)
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioUnreadable(f"{path.name}: not a readable WAV ({exc})") from exc
    if width != 2 or channels != 1:
        raise AudioUnreadable(f"{path.name}: expected 16-bit PCM mono, got {width * 8}-bit with {channels} channel(s)")
    if rate <= 0 or len(data) < frames * 2:
        raise AudioUnreadable(f"{path.name}: truncated ({len(data)} bytes for {frames} frames at {rate} Hz)")
    return Pcm(rate, data)


def resample(pcm: Pcm, rate: int) -> Pcm:
    """Resample to ``rate`` with libsoxr (the ``soxr`` package; "HQ": a proper anti-imaging
    low-pass, a few ms per second of audio in C). Telephone speech (8 kHz) goes up to a 16 kHz
    model this way; the output has ``len * rate // pcm.rate`` samples, like the linear one."""
    if pcm.rate == rate or not pcm.data:
        return Pcm(rate, pcm.data)
    # imported here: only an asr-worker with a model that refuses 8 kHz pays for numpy, not the controller
    import numpy as np
    import soxr

    source = np.frombuffer(pcm.data, dtype="<i2")
    out = soxr.resample(source, pcm.rate, rate, quality="HQ")
    return Pcm(rate, np.asarray(out, dtype="<i2").tobytes())


def resample_linear(pcm: Pcm, rate: int) -> Pcm:
    """The former resampler, pure Python linear interpolation (kept as the benches' reference:
    ``bench/asr_resample.py`` measures both). No low-pass: images above 4 kHz stay."""
    if pcm.rate == rate or not pcm.data:
        return Pcm(rate, pcm.data)
    source = array("h", pcm.data)
    if sys.byteorder == "big":
        source.byteswap()
    count = len(source) * rate // pcm.rate
    step = pcm.rate / rate
    last = len(source) - 1
    out = array("h", bytes(2 * count))
    for index in range(count):
        position = index * step
        left = int(position)
        right = min(left + 1, last)
        fraction = position - left
        out[index] = int(source[left] + (source[right] - source[left]) * fraction)
    if sys.byteorder == "big":
        out.byteswap()
    return Pcm(rate, out.tobytes())


class VoskTranscriber:
    """Transcribes message files with one shared model. Construct once per process (blocking:
    loading takes seconds), e.g. in a thread at start-up. Decoding is repeatable: the same file
    gives the same text every time, however many are decoded at once (``deterministic_view``)."""

    def __init__(self, model_path: Path, grammar: Sequence[str] | None = None, workers: int | None = None) -> None:
        check_model_folder(model_path)
        self.rates = read_feature_rates(model_path / "conf/mfcc.conf")
        vosk.SetLogLevel(-1)  # kaldi logs to stderr, past structlog; failures still raise
        try:  # kept while the model lives (a full or read-only temp folder: said as such)
            self._view = tempfile.TemporaryDirectory(prefix="hotline-asr-model-")
        except OSError as exc:
            raise ModelUnavailable(
                f"no temporary folder for the model's view ({tempfile.gettempdir()}): {exc}"
            ) from exc
        try:
            view = deterministic_view(model_path, Path(self._view.name))
        except OSError as exc:  # a full disk: nothing left behind
            self._view.cleanup()
            raise ModelUnavailable(f"the model's view in the temporary folder failed: {exc}") from exc
        try:
            self._model = vosk.Model(str(view))  # a path, never Model(lang=…): that downloads
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            self._view.cleanup()
            raise ModelUnavailable(f"vosk could not load the model in {model_path}: {exc}") from exc
        self._grammar = json.dumps(list(grammar), ensure_ascii=False) if grammar else None
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1, thread_name_prefix="asr")
        mode = f"grammar of {len(grammar)}" if grammar else "free speech"
        log.info("asr.model_loaded", model=model_path.name, rate=self.rates.sample_rate, mode=mode)

    async def transcribe(self, path: Path) -> Transcript:
        """Decode off the event loop; ``AudioUnreadable`` for a file that is not usable audio."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.transcribe_file, path)

    def transcribe_file(self, path: Path) -> Transcript:
        """Decode one file in the calling thread."""
        pcm = read_wav(path)
        if not self.rates.accepts(pcm.rate):
            # kaldi aborts on a rate its features refuse, e.g. 8 kHz into vosk-model-small-cn
            pcm = resample(pcm, self.rates.sample_rate)
        if self._grammar is None:
            recognizer = vosk.KaldiRecognizer(self._model, float(pcm.rate))
        else:
            recognizer = vosk.KaldiRecognizer(self._model, float(pcm.rate), self._grammar)
        recognizer.SetWords(True)
        results = []
        step = CHUNK_FRAMES * 2
        for offset in range(0, len(pcm.data), step):
            if recognizer.AcceptWaveform(pcm.data[offset : offset + step]):
                results.append(json.loads(recognizer.Result()))
        results.append(json.loads(recognizer.FinalResult()))
        return _transcript(results)

    def close(self) -> None:
        """Stop the decoding threads (after they finish their current message)."""
        self._pool.shutdown(wait=True)
        self._view.cleanup()


def _transcript(results: list[dict[str, object]]) -> Transcript:
    words: list[Word] = []
    texts: list[str] = []
    for result in results:
        text = str(result.get("text", "")).strip()
        if text:
            texts.append(text)
        raw_words = result.get("result", [])
        if isinstance(raw_words, list):
            words.extend(
                Word(word=str(w["word"]), start=float(w["start"]), end=float(w["end"]), conf=float(w["conf"]))
                for w in raw_words
            )
    confidence = sum(word.conf for word in words) / len(words) if words else 0.0
    return Transcript(text=" ".join(texts), words=tuple(words), confidence=round(confidence, 4))


class NoTranscription:
    """Transcription is off (no model configured): messages become tickets with an empty
    transcript, for a person to listen to. Nothing waits for a worker that is not there."""

    async def transcribe(self, path: Path) -> Transcript:
        del path
        return Transcript()
