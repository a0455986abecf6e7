"""Case numbers, digits and times read out in Mandarin, from our own sound set.

Asterisk's SAY ALPHA / SAY DIGITS / SayUnixTime play its ``digits/…`` and ``letters/…`` files
in the channel's language and, when a file is missing there, fall back to English without a
word. Only English core sounds are installed, so a caller heard "one two three". Instead the
IVR plays a sequence of files of its own Mandarin sound set (``SOUND_SET``: name → text),
built at start like every prompt (an administrator's recording of the same name wins, else
espeak-ng) into ``zh_sounds_dir`` and played by absolute path: no language lookup, no English
fallback. A missing file is named in an error and the number is not read at all.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

# a case number, digits: what may be spelled (ticket ids are KM-20261128-0001 minus the dashes)
SPELLABLE = re.compile(r"[A-Za-z0-9]{1,32}")

# digits of a code, as Chinese service lines read them: 1 is 幺 (one 一 and seven 七 sound alike)
_CHAR_DIGITS = ("零", "幺", "二", "三", "四", "五", "六", "七", "八", "九")
# digits of a quantity (an hour, a day): 一 … 十, 两 for two of a clock hour
_NUMBER_DIGITS = ("零", "一", "二", "三", "四", "五", "六", "七", "八", "九")
_WORDS = {"ten": "十", "liang": "两", "dian": "点", "fen": "分", "zheng": "整", "yue": "月", "ri": "日"}


def _sound_set() -> dict[str, str]:
    sounds = {f"char_{d}": text for d, text in enumerate(_CHAR_DIGITS)}
    # a capital letter alone is spoken as its letter name by the Mandarin voice (K: kei)
    sounds.update({f"char_{c}": c.upper() for c in string.ascii_lowercase})
    sounds.update({f"num_{d}": text for d, text in enumerate(_NUMBER_DIGITS)})
    sounds.update({f"word_{name}": text for name, text in _WORDS.items()})
    return sounds


SOUND_SET: Mapping[str, str] = _sound_set()


class SoundSetError(RuntimeError):
    """The sound set lacks a file the IVR would play."""


def zh_sounds_dir(runtime_dir: Path) -> Path:
    """Where the built Mandarin sound set lives (next to the other built prompts)."""
    return runtime_dir / "prompts" / "zh"


def missing_sounds(folder: Path) -> list[Path]:
    """The files of ``SOUND_SET`` not in ``folder`` (as 8 kHz WAVs); [] when it is complete."""
    return [folder / f"{name}.wav" for name in SOUND_SET if not (folder / f"{name}.wav").is_file()]


def check_sound_set(folder: Path) -> None:
    """Raise ``SoundSetError`` naming every missing file."""
    missing = missing_sounds(folder)
    if missing:
        names = ", ".join(str(path) for path in missing[:10])
        more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
        raise SoundSetError(f"the Mandarin sound set is incomplete: missing {names}{more}")


def spell(text: str) -> tuple[str, ...]:
    """The sounds that read ``text`` (letters and digits) one character at a time."""
    if not SPELLABLE.fullmatch(text):
        raise ValueError(f"only 1-32 ASCII letters and digits can be spelled, not {text[:40]!r}")
    return tuple(f"char_{ch.lower()}" for ch in text)


def number(value: int, *, clock_hour: bool = False) -> tuple[str, ...]:
    """A quantity 0-99 in words: 十五, 二十, 二十三; 两 for a clock hour of two (两点)."""
    if not 0 <= value <= 99:
        raise ValueError(f"only 0-99 can be said, not {value}")
    if value == 2 and clock_hour:
        return ("word_liang",)
    if value < 10:
        return (f"num_{value}",)
    tens, ones = divmod(value, 10)
    words = () if tens == 1 else (f"num_{tens}",)  # 十五, not 一十五
    return (*words, "word_ten", *((f"num_{ones}",) if ones else ()))


def clock_time(moment: datetime) -> tuple[str, ...]:
    """``moment`` (already in the caller's time zone) as 3月9日 14点05分 (整 on the hour)."""
    words = (*number(moment.month), "word_yue", *number(moment.day), "word_ri")
    words += (*number(moment.hour, clock_hour=True), "word_dian")
    if moment.minute == 0:
        return (*words, "word_zheng")
    zero = ("num_0",) if moment.minute < 10 else ()  # 五点零五分
    return (*words, *zero, *number(moment.minute), "word_fen")


class Player(Protocol):
    """What plays a sound file by path without extension (telephony/agi_server.AgiSession)."""

    async def stream_file(self, path: str) -> object: ...


async def say(session: Player, folder: Path | None, names: Sequence[str]) -> bool:
    """Play ``names`` from ``folder`` in order; False (and an error logged naming the files)
    when the set is missing any of them: nothing is played then, never another language."""
    missing = _missing(folder, names)
    if folder is None or missing:
        log.error("say_zh.missing_sounds", folder=str(folder), missing=missing[:5])
        return False
    for name in names:
        await session.stream_file(str(folder / name))
    return True


def _missing(folder: Path | None, names: Iterable[str]) -> list[str]:
    if folder is None:
        return list(names)
    return [name for name in names if name not in SOUND_SET or not (folder / f"{name}.wav").is_file()]
