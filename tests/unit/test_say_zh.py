"""The Mandarin sound set case numbers and times are read with (telephony/say_zh.py), built
with the real espeak-ng and sox (ivr/prompts.py): complete for every character a case number
may hold, Mandarin throughout (espeak-ng never switches to English), a recording wins, a
missing file is named and nothing is played in its place."""

from __future__ import annotations

import shutil
import string
import subprocess
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from hotline.config import PromptsConfig
from ivr.prompts import VOICE, PromptBuildError, build_sound_set
from outbound.config import OutboundConfig
from telephony import say_zh
from telephony.say_zh import SOUND_SET, SoundSetError, check_sound_set, clock_time, number, spell
from tickets.model import PLATFORM_CODES, ticket_id

SHANGHAI = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zh")
    assert sorted(build_sound_set(tmp_path_factory.mktemp("recorded"), out)) == sorted(SOUND_SET)
    return out


def test_every_character_a_case_number_may_hold_has_a_sound() -> None:
    for ch in string.ascii_letters + string.digits:
        (name,) = spell(ch)
        assert name in SOUND_SET, ch
    assert spell("Km7") == ("char_k", "char_m", "char_7")


@pytest.mark.parametrize("platform", [*PLATFORM_CODES, "a-new-platform"])
def test_every_platform_s_case_numbers_can_be_spelled(platform: str) -> None:
    spoken = "".join(ch for ch in ticket_id(platform, date(2026, 12, 31), 9999) if ch.isalnum())
    assert set(spell(spoken)) <= set(SOUND_SET)


@pytest.mark.parametrize("text", ["", "KM-1", "KM\n1", "一二", "A" * 33, "k m"])
def test_only_letters_and_digits_are_spelled(text: str) -> None:
    with pytest.raises(ValueError, match="letters and digits"):
        spell(text)


@pytest.mark.parametrize(
    ("moment", "words"),
    [
        (datetime(2026, 3, 9, 14, 5, tzinfo=SHANGHAI), "三月九日十四点零五分"),
        (datetime(2026, 12, 21, 2, 0, tzinfo=SHANGHAI), "十二月二十一日两点整"),
        (datetime(2026, 10, 30, 20, 30, tzinfo=SHANGHAI), "十月三十日二十点三十分"),
        (datetime(2026, 1, 1, 0, 59, tzinfo=SHANGHAI), "一月一日零点五十九分"),
    ],
)
def test_a_time_is_said_as_chinese_speakers_say_it(moment: datetime, words: str) -> None:
    assert "".join(SOUND_SET[name] for name in clock_time(moment)) == words


def test_numbers_outside_a_clock_are_refused() -> None:
    assert [SOUND_SET[n] for n in number(2)] == ["二"]
    with pytest.raises(ValueError):
        number(100)


def test_the_built_set_is_complete_8khz_and_mandarin(built: Path) -> None:
    check_sound_set(built)
    for name in SOUND_SET:
        info = subprocess.run(["soxi", str(built / f"{name}.wav")], capture_output=True, text=True, check=True)
        assert "Sample Rate    : 8000" in info.stdout and "Channels       : 1" in info.stdout, name


def _phonemes(voice: tuple[str, ...], text: str) -> str:
    return subprocess.run([*voice, "-q", "-x", "--", text], capture_output=True, text=True, check=True).stdout


def test_no_prompt_text_is_read_as_english() -> None:
    """espeak-ng's "cmn" voice read 一 as "yi one" and 您好 as "nin two hao three": the sound set,
    the default system and outbound prompts and every shipped dialplan's prompts stay Mandarin."""
    texts = [*SOUND_SET.values(), *PromptsConfig().model_dump().values()]
    texts += OutboundConfig().prompts.model_dump().values()
    for plan in sorted((REPO / "dialplans").glob("*.yaml")):
        data = yaml.safe_load(plan.read_text(encoding="utf-8"))
        texts += (data.get("prompts") or {}).values() if isinstance(data, dict) else ()
    assert len(texts) > 200
    if "(en)" in _phonemes(VOICE, "\n".join(str(text) for text in texts)):  # one run; then name them
        assert [text for text in texts if "(en)" in _phonemes(VOICE, str(text))] == []
    assert "(en)" in _phonemes(("espeak-ng", "-v", "cmn"), "一")  # the voice this replaced: the check can fail


def test_a_recording_wins_and_a_missing_file_is_named(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "zh"
    shutil.copytree(built, out)
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    tone = ["sox", "-n", "-r", "16000", str(recorded / "char_1.wav"), "synth", "0.3", "sine", "440"]
    subprocess.run(tone, check=True)
    assert build_sound_set(recorded, out) == ["char_1"]  # only the recorded one is rebuilt
    length = subprocess.run(["soxi", "-D", str(out / "char_1.wav")], capture_output=True, text=True, check=True)
    assert length.stdout.startswith("0.3")

    (out / "word_fen.wav").unlink()
    (out / "char_z.wav").unlink()
    with pytest.raises(SoundSetError, match=r"word_fen\.wav.*char_z\.wav|char_z\.wav.*word_fen\.wav"):
        check_sound_set(out)
    (recorded / "char_1.wav").write_bytes(b"not a wav")
    with pytest.raises(PromptBuildError, match="sox"):
        build_sound_set(recorded, out)


class Played:
    def __init__(self) -> None:
        self.paths: list[str] = []

    async def stream_file(self, path: str) -> str:
        self.paths.append(path)
        return ""


async def test_the_number_is_played_from_the_set_or_not_at_all(built: Path, tmp_path: Path) -> None:
    session = Played()
    assert await say_zh.say(session, built, spell("KM20261209"))
    assert session.paths == [str(built / f"char_{ch}") for ch in "km20261209"]

    partial = tmp_path / "partial"
    shutil.copytree(built, partial)
    (partial / "char_9.wav").unlink()
    session = Played()
    assert not await say_zh.say(session, partial, spell("KM20261209"))
    assert not await say_zh.say(session, None, spell("KM1"))
    assert not await say_zh.say(session, built, ("digits/1",))  # only names of the set
    assert session.paths == []  # nothing, rather than half a number or another language
