"""Fuzz the units directory and desk codes checker (units/loader.py) from the shipped files:
values replaced, keys dropped or added, YAML tokens spliced into lines. Whatever a file says,
the set loads or is refused with problems that name one of its files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.harness import example, fuzz_target
from tests.fuzz.test_fuzz_yaml import _dump, _mutate, spliced
from units.loader import DeskFilesInvalid, Source, parse_desk

ROOT = Path(__file__).resolve().parents[2] / "directory"
TEXTS = {
    name: (ROOT / name).read_text(encoding="utf-8")
    for name in ("units/province.yaml", "units/kunming.yaml", "codes/province.yaml", "codes/kunming.yaml")
}


def _check(changed: str, text: str) -> None:
    texts = {**TEXTS, changed: text}
    units = [Source(name, body) for name, body in texts.items() if name.startswith("units/")]
    codes = [Source(name, body) for name, body in texts.items() if name.startswith("codes/")]
    try:
        checked = parse_desk(units, codes)
    except DeskFilesInvalid as exc:
        assert exc.problems
        assert all(problem.filename in TEXTS for problem in exc.problems)
    else:
        for platform in ("kunming", "province", "dali"):
            checked.units.visible(platform)
            checked.codes.for_platform(platform)


@fuzz_target("units.yaml")
@given(st.data(), st.sampled_from(sorted(TEXTS)), st.booleans())
def test_units_and_codes_load_or_are_refused(data: st.DataObject, name: str, as_text: bool) -> None:
    original: Any = yaml.safe_load(TEXTS[name])
    text = data.draw(spliced(TEXTS[name])) if as_text else _dump(_mutate(original, data.draw))
    with example("units.yaml"):
        _check(name, text)
