"""ASR bench part 1: one transcriber, one stream — real-time factor and CPU per audio second."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import vosk

from bench.asr_speech import Speech
from tests.support.speech import korean_model_folder
from voicemail.asr import VoskTranscriber


@dataclass(frozen=True)
class StreamResult:
    mode: str
    files: int
    audio_s: float
    wall_s: float
    cpu_s: float
    load_s: float
    recognised: int  # files with some text
    confidence: float

    @property
    def speed(self) -> float:
        return self.audio_s / self.wall_s

    @property
    def cpu_per_audio(self) -> float:
        return self.cpu_s / self.audio_s


def one_stream(mode: str, grammar: tuple[str, ...] | None, speeches: list[Speech], repeats: int) -> StreamResult:
    started = time.perf_counter()
    transcriber = VoskTranscriber(korean_model_folder(), grammar=grammar, workers=1)
    load_s = time.perf_counter() - started
    vosk.SetLogLevel(-2)  # the transcriber's -1 still prints kaldi warnings (a grammar word missing)
    try:
        transcriber.transcribe_file(speeches[0].path)  # warm-up (first recognizer, page faults)
        files = [speech for _ in range(repeats) for speech in speeches]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        transcripts = [transcriber.transcribe_file(speech.path) for speech in files]
        wall_s, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        transcriber.close()
    return StreamResult(
        mode=mode,
        files=len(files),
        audio_s=sum(speech.seconds for speech in files),
        wall_s=wall_s,
        cpu_s=cpu_s,
        load_s=load_s,
        recognised=sum(1 for transcript in transcripts if transcript.text),
        confidence=statistics.fmean(transcript.confidence for transcript in transcripts),
    )


def print_streams(results: list[StreamResult], speeches: list[Speech]) -> None:
    lengths = [speech.seconds for speech in speeches]
    print(
        f"\nOne VoskTranscriber, one stream (sequential, in-process); {len(speeches)} sentences, "
        f"{min(lengths):.1f}-{max(lengths):.1f} s, {sum(lengths):.1f} s of 8 kHz audio per pass"
    )
    print(
        f"{'mode':<28}{'files':>6}{'audio s':>9}{'wall s':>8}{'× real time':>13}{'CPU s/audio s':>15}"
        f"{'load s':>8}{'with text':>11}{'mean conf':>11}"
    )
    for r in results:
        print(
            f"{r.mode:<28}{r.files:>6}{r.audio_s:>9.1f}{r.wall_s:>8.2f}{r.speed:>13.1f}{r.cpu_per_audio:>15.3f}"
            f"{r.load_s:>8.2f}{r.recognised:>11}{r.confidence:>11.2f}"
        )
