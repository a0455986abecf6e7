"""The ASR bench's speech: Korean callers' requests synthesised once (espeak-ng + sox) as 8 kHz WAVs."""

from __future__ import annotations

import hashlib
import wave
from dataclasses import dataclass
from pathlib import Path

from tests.support.speech import korean_speech_wav

GRAMMAR = ("안녕하세요", "감사합니다", "전화", "도로")  # the tests' (tests/unit/test_asr.py)
SENTENCES = (  # callers' requests, 3-9 s each when espeak-ng speaks them
    "안녕하세요 도로에 큰 구멍이 있습니다",
    "우리 동네 가로등이 일주일째 꺼져 있어서 밤에 너무 어둡습니다",
    "버스 노선이 바뀌어서 출근하기가 불편합니다 다시 확인해 주세요",
    "아파트 앞 공사 소음 때문에 아이가 잠을 못 잡니다 공사 시간을 지켜 주시기 바랍니다",
    "감사합니다 지난번에 신고한 쓰레기 문제가 아직 해결되지 않았습니다",
    "전화 드렸는데 연결이 안 돼서 메시지를 남깁니다",
    "시장 근처에 불법 주차된 차들 때문에 소방차가 들어갈 수 없습니다 빨리 단속해 주세요",
    "수도 요금이 지난달보다 세 배나 많이 나왔습니다 계량기를 점검해 주시면 감사하겠습니다",
    "공원 화장실이 고장 나서 사용할 수 없습니다",
    "학교 앞 횡단보도에 신호등이 없어서 아이들이 위험합니다 신호등 설치를 요청드립니다 연락 부탁드립니다",
)


@dataclass(frozen=True)
class Speech:
    path: Path
    text: str
    seconds: float


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes() / float(reader.getframerate())


def speech_files(cache: Path) -> list[Speech]:
    """The sentences as 8 kHz 16-bit mono WAVs, synthesised once into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    speeches = []
    for text in SENTENCES:
        path = cache / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.wav"
        if not path.exists():
            partial = path.with_name(f"partial-{path.name}")
            korean_speech_wav(partial, text)
            partial.replace(path)
        speeches.append(Speech(path, text, wav_seconds(path)))
    return speeches
