"""Read an Asterisk config file back the way Asterisk's config parser (main/config.c) does, for
tests that check what a rendered file means: comments (``;``, ``;-- … --;``), the escaped
``\\;``, ``[section]`` headers, ``key = value`` and ``key => value`` lines, and ``#`` directives
(``#include``, ``#exec``), which we never write."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """One meaningful line: a section header (``key`` is empty), an entry, a directive or junk."""

    kind: str  # "section", "entry", "directive", "junk" (no '=': Asterisk refuses the file)
    section: str
    key: str = ""
    value: str = ""


def _uncomment(text: str) -> list[str]:
    """The lines with comments removed and ``\\;`` read as ``;``."""
    lines: list[str] = []
    in_block = False
    for raw in text.split("\n"):
        out = ""
        i = 0
        while i < len(raw):
            if in_block:
                end = raw.find("--;", i)
                if end == -1:
                    i = len(raw)
                    continue
                in_block = False
                i = end + 3
                continue
            c = raw[i]
            if c == ";":
                if out.endswith("\\"):
                    out = out[:-1] + ";"
                    i += 1
                    continue
                if raw.startswith(";--", i):
                    in_block = True
                    i += 3
                    continue
                break
            out += c
            i += 1
        lines.append(out)
    return lines


def parse_asterisk_config(text: str) -> list[Line]:
    """Every meaningful line of an Asterisk config file, in order."""
    parsed: list[Line] = []
    section = ""
    for line in _uncomment(text):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            parsed.append(Line("directive", section, value=stripped))
        elif stripped.startswith("["):
            close = stripped.find("]")
            section = stripped[1:close] if close != -1 else stripped[1:]
            parsed.append(Line("section", section, value=stripped[close + 1 :] if close != -1 else ""))
        elif "=" in stripped:
            key, _, value = stripped.partition("=")
            parsed.append(Line("entry", section, key.strip(), value.removeprefix(">").strip()))
        else:
            parsed.append(Line("junk", section, value=stripped))
    return parsed
