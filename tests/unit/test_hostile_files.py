"""Operators' files that are not files (session 5's review): a FIFO named ``kunming.yaml`` in
the units directory, a link to ``/dev/zero`` as ``caller_lists.yaml``, a stray huge file. Each
is a checker problem naming the file, at once — before, a FIFO blocked the loader for ever
(holding the reload lock: every later reload waited) and ``/dev/zero`` was read without end."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from common.textfiles import MAX_TEXT_BYTES, read_text_file
from ivr.dialplan.caller_lists import load_caller_lists
from ivr.dialplan.loader import DialplanInvalid
from knowledge.loader import KnowledgeInvalid, load_base
from units.loader import CODES_DIR, UNITS_DIR, DeskFilesInvalid, load_desk

HANG_GUARD_S = 30.0  # a loader blocked on a FIFO would wait for ever: this ends the test instead


async def _bounded(function: object, *args: object) -> BaseException:
    """What ``function(*args)`` raised, run in a thread under the hang guard."""
    try:
        await asyncio.wait_for(asyncio.to_thread(function, *args), HANG_GUARD_S)  # type: ignore[arg-type]
    except (DeskFilesInvalid, DialplanInvalid, KnowledgeInvalid) as exc:
        return exc
    raise AssertionError("the hostile file was accepted")


def _unblock(fifo: Path) -> None:
    """Let a reader blocked on ``fifo`` go (it sees end of file), so a failing test ends."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no reader waits
    os.close(fd)


async def test_a_fifo_in_the_units_directory_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / UNITS_DIR).mkdir()
    (tmp_path / CODES_DIR).mkdir()
    fifo = tmp_path / UNITS_DIR / "kunming.yaml"
    os.mkfifo(fifo)
    try:
        problem = await _bounded(load_desk, tmp_path)
    finally:
        _unblock(fifo)
    assert "kunming.yaml" in str(problem) and "not a regular file" in str(problem)


async def test_a_fifo_or_dev_zero_as_the_caller_lists_is_a_problem(tmp_path: Path) -> None:
    fifo = tmp_path / "caller_lists.yaml"
    os.mkfifo(fifo)
    try:
        problem = await _bounded(load_caller_lists, fifo)
    finally:
        _unblock(fifo)
    assert "caller_lists.yaml" in str(problem) and "not a regular file" in str(problem)
    zero = tmp_path / "zero" / "caller_lists.yaml"
    zero.parent.mkdir()
    zero.symlink_to("/dev/zero")
    assert "not a regular file" in str(await _bounded(load_caller_lists, zero))


async def test_a_huge_knowledge_file_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    folder = tmp_path / "kunming"
    folder.mkdir()
    huge = folder / "big.yaml"
    with huge.open("wb") as handle:  # sparse: no disk used
        handle.truncate(64 * 1024 * 1024)
    problem = await _bounded(load_base, tmp_path)
    assert "big.yaml" in str(problem) and "larger than" in str(problem)


def test_read_text_file_bounds_and_encoding(tmp_path: Path) -> None:
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(b"a" * MAX_TEXT_BYTES)
    assert len(read_text_file(exact)) == MAX_TEXT_BYTES
    exact.write_bytes(b"a" * (MAX_TEXT_BYTES + 1))
    with pytest.raises(OSError, match="larger than"):
        read_text_file(exact)
    exact.write_bytes("名称: 五华区".encode("gbk"))
    with pytest.raises(UnicodeDecodeError):
        read_text_file(exact)
    with pytest.raises(OSError):  # a folder: "Is a directory"
        read_text_file(tmp_path)
