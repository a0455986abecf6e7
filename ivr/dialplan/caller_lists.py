"""Caller lists: blocklist and priority lists by caller number, shared by every platform.

``dialplans/caller_lists.yaml`` (beside the dialplans and the directory) names lists — a
nuisance list to block, 老年人 and VIP lists served first — each for every platform or some.
A ``caller_list`` node of a dialplan looks the caller up in them. The file is checked like a
dialplan (file:line:column, numbers validated, a number both blocked and prioritised refused)
and is part of every dialplan's version, so a reload takes a changed list.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from common.yamlcheck import Problem
from ivr.dialplan.loader import DialplanInvalid, read_mapping, read_source, schema_problems
from ivr.dialplan.schema import CallerList, CallerListAction, CallerListsSpec

CALLER_LISTS_FILE = "caller_lists.yaml"
_MOBILE = re.compile(r"1[3-9][0-9]{9}")


def normal_number(number: str) -> str:
    """The form numbers are compared in: China's national form, whatever form the caller's
    network presents. ``+86``/``0086``/``86`` + a mobile number is the mobile number;
    ``+86``/``0086``/``86`` + an area code and a landline number (the area code without its
    trunk ``0``: +86 871 6512 3456) is ``0871 6512 3456`` — else a blocked landline would pass as
    ``+868716…`` and an elderly caller's landline lose its priority."""
    digits = number.strip().removeprefix("+")
    if digits.startswith("0086"):
        national = digits[4:]
    elif digits.startswith("86") and len(digits) in (12, 13):  # 86 + 10 or 11 digits: international
        national = digits[2:]
    else:
        return digits
    if national.startswith("0") or _MOBILE.fullmatch(national):  # the trunk 0 written anyway, or a mobile
        return national
    return "0" + national  # an area code (10 Beijing, 871 Kunming …) and the number


@dataclass(frozen=True)
class ListMatch:
    """The caller is on this list."""

    list_id: str
    name: str
    action: CallerListAction
    priority: int


@dataclass(frozen=True)
class CallerLists:
    """The lists one platform sees, indexed by number."""

    lists: Mapping[str, CallerList] = field(default_factory=dict)
    version: str = ""  # of the file's text; "" with no file
    _by_number: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, lists: Mapping[str, CallerList], version: str = "") -> CallerLists:
        by_number: dict[str, list[str]] = {}
        for list_id, entry in lists.items():
            for number in entry.numbers:
                by_number.setdefault(normal_number(number), []).append(list_id)
        return cls(dict(lists), version, {n: tuple(ids) for n, ids in by_number.items()})

    def for_platform(self, platform: str) -> CallerLists:
        mine = {k: v for k, v in self.lists.items() if not v.platforms or platform in v.platforms}
        return CallerLists.of(mine, self.version)

    def matches(self, caller: str, only: Iterable[str] = ()) -> list[ListMatch]:
        """The lists ``caller`` is on (of ``only``, or all), in file order."""
        wanted = set(only)
        found = self._by_number.get(normal_number(caller), ()) if caller else ()
        return [
            ListMatch(list_id, self.lists[list_id].name, self.lists[list_id].action, self.lists[list_id].priority or 0)
            for list_id in found
            if not wanted or list_id in wanted
        ]


NO_CALLER_LISTS = CallerLists()


def parse_caller_lists(text: str, filename: str) -> CallerLists:
    """Validate the caller lists' text; raise DialplanInvalid with every located error."""
    document, problems = read_mapping(text, filename, "the caller lists")
    try:
        spec = CallerListsSpec.model_validate(document.data)
    except ValidationError as exc:
        raise DialplanInvalid(problems + schema_problems(document, exc)) from None
    seen: dict[str, tuple[str, int]] = {}  # number → (list, index) where first given
    for list_id, entry in spec.lists.items():
        for index, number in enumerate(entry.numbers):
            key = normal_number(number)
            path = ("lists", list_id, "numbers", index)
            if key not in seen:
                seen[key] = (list_id, index)
                continue
            first_list, first_index = seen[key]
            first = spec.lists[first_list]
            if first_list == list_id:
                message = f"number given twice in this list (first at numbers.{first_index})"
            elif CallerListAction.BLOCK in (first.action, entry.action) and first.action is not entry.action:
                message = f"number is both blocked and served first (also in list {first_list!r})"
            else:
                continue  # on two priority lists (elderly and VIP): the higher priority counts
            problems.append(Problem(filename, document.position_of(path), path, message))
    if problems:
        raise DialplanInvalid(problems)
    return CallerLists.of(spec.lists, hashlib.sha256(text.encode("utf-8")).hexdigest()[:12])


def load_caller_lists(path: Path) -> CallerLists:
    """The caller lists at ``path``; none when there is no file."""
    if not path.exists():
        return NO_CALLER_LISTS
    return parse_caller_lists(read_source(path), str(path))
