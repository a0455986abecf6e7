"""Fuzz the knowledge file loader (knowledge/loader.py) from a shipped file: values replaced, keys
dropped or added, YAML tokens spliced into its lines. Whatever the file says, it loads or its
problems are returned, each naming the file; what loads is searchable."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from knowledge.index import JiebaSegmenter, SearchIndex
from knowledge.loader import parse_file
from tests.fuzz.harness import example, fuzz_target
from tests.fuzz.test_fuzz_yaml import _dump, _mutate, spliced

ROOT = Path(__file__).resolve().parents[2]
SEGMENTER = JiebaSegmenter()
KNOWLEDGE_TEXT = (ROOT / "knowledge_base" / "kunming" / "housing_fund.yaml").read_text(encoding="utf-8")


def _knowledge(text: str) -> None:
    parsed = parse_file(text, "kunming.yaml", "kunming", lambda unit: unit != "gone")
    assert all(str(problem).startswith("kunming.yaml") for problem in parsed.problems)
    if not parsed.problems:
        for entry in parsed.entries:
            assert entry.question and entry.answer and entry.matter_type
            assert entry.valid_from is None or entry.valid_until is None or entry.valid_from <= entry.valid_until
        index = SearchIndex(parsed.entries, SEGMENTER)
        for entry in parsed.entries:
            index.search(entry.question, ("kunming",), entry.matter_type, entry.valid_from or date(2026, 1, 1))


@fuzz_target("knowledge.yaml")
@given(st.data(), st.booleans())
def test_knowledge_file_loads_or_is_refused(data: st.DataObject, as_text: bool) -> None:
    if as_text:
        text = data.draw(spliced(KNOWLEDGE_TEXT))
    else:
        mutated: Any = _mutate(yaml.safe_load(KNOWLEDGE_TEXT), data.draw)
        text = _dump(mutated)
    with example("knowledge.yaml"):
        _knowledge(text)
