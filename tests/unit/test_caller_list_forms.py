"""Caller lists against the forms a network presents one number in (session 5's review): a
landline on the blocklist in national form (0871…) was not matched when the trunk presented it
internationally (+86 871…, 0086 871…, 86 871…): the nuisance caller got through, and an
elderly caller's landline lost its priority."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ivr.dialplan.caller_lists import normal_number, parse_caller_lists
from ivr.dialplan.schema import CallerListAction

LISTS = """
lists:
  nuisance: {name: 骚扰来电, action: block, numbers: ["087165123456", "13800000001"]}
  elderly: {name: 老年人, action: priority, priority: 5, numbers: ["+861012345678"]}
"""

mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
# an area code without its trunk 0 (10, 2x, 3xx–9xx) and a 7- or 8-digit local number
landlines = st.from_regex(r"(10|2[0-9]|[3-9][0-9]{2})[2-8][0-9]{6,7}", fullmatch=True).filter(
    lambda n: len(n) in (10, 11)
)


def _forms(international: str) -> list[str]:
    return [f"+86{international}", f"0086{international}", f"86{international}"]


@given(mobiles)
def test_a_mobile_number_is_one_number_in_every_form(number: str) -> None:
    assert {normal_number(form) for form in [number, *_forms(number)]} == {number}


@given(landlines)
def test_a_landline_is_one_number_in_every_form(number: str) -> None:
    national = "0" + number
    assert {normal_number(form) for form in [national, *_forms(number)]} == {national}


def test_a_blocked_landline_presented_internationally_is_blocked() -> None:
    lists = parse_caller_lists(LISTS, "caller_lists.yaml")
    for form in ("087165123456", "+8687165123456", "008687165123456", "8687165123456"):
        [match] = lists.matches(form)
        assert match.action is CallerListAction.BLOCK, form
    [elderly] = lists.matches("01012345678")  # listed as +86 10 …, calling in national form
    assert elderly.list_id == "elderly"
    assert lists.matches("87165123456") == []  # 11 digits without 86: not this landline
    assert normal_number("95588") == "95588" and normal_number("12345") == "12345"
