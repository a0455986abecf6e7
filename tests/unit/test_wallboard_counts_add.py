"""Counts.add spells its fields out (a hot loop of the wallboard): it must cover every field."""

from __future__ import annotations

from dataclasses import fields

from wallboard.today import Counts


def test_add_sums_every_field_of_counts() -> None:
    names = [f.name for f in fields(Counts)]
    one = Counts(**{name: index + 1 for index, name in enumerate(names)})
    total = Counts()
    total.add(one)
    total.add(one)
    assert [getattr(total, name) for name in names] == [2 * (index + 1) for index in range(len(names))]
