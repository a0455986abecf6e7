"""``hotline12345 units check``: check a units directory, or single files, and say what is wrong.

A folder is checked as the set it holds (``units/`` and ``codes/``); a file inside such a
folder with the rest of its set (a unit's parent and matter types are in the other files).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from common.yamlcheck import Problem
from units.loader import (
    CODES_DIR,
    UNITS_DIR,
    DeskDirectory,
    DeskFilesInvalid,
    load_desk,
)
from units.model import PROVINCE


def _check_file(path: Path) -> DeskDirectory:
    if path.parent.name in (UNITS_DIR, CODES_DIR):
        return load_desk(path.parent.parent)
    message = (
        f"a file is checked with its set: put it in a folder's {UNITS_DIR}/ or {CODES_DIR}/ "
        "(its matter types and parents are in the other files)"
    )
    raise DeskFilesInvalid([Problem(str(path), None, (), message)])


def check_paths(paths: list[Path], out: TextIO) -> int:
    """Check each path; print the problems or a summary line; 0 when all are fine, else 1."""
    failed = 0
    for path in paths:
        if not path.exists():
            print(f"{path}: no such file or folder", file=out)
            failed += 1
            continue
        try:
            directory = load_desk(path) if path.is_dir() else _check_file(path)
        except DeskFilesInvalid as exc:
            failed += 1
            print(exc, file=out)
            continue
        if not directory.files:
            print(f"{path}: no units/*.yaml or codes/*.yaml files", file=out)
            failed += 1
            continue
        units = sum(len(found) for found in directory.units.by_platform.values())
        codes = directory.codes.for_platform(PROVINCE)
        print(
            f"{path}: ok ({len(directory.files)} files, {units} units, {len(codes.dispositions)} dispositions, "
            f"{len(codes.pause_reasons)} pause reasons province-wide, version {directory.version})",
            file=out,
        )
    return 1 if failed else 0
