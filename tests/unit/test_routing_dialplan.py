"""Routing from the dialplan: skills and priority from the call's tags, the checker's warning
about tags nothing reads, and the caller lists (blocklist, priority lists by number)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivr.dialplan.caller_lists import CALLER_LISTS_FILE, normal_number, parse_caller_lists
from ivr.dialplan.directory import load_platform_dialplan
from ivr.dialplan.loader import DialplanInvalid, parse_dialplan
from ivr.dialplan.schema import CallerListAction, QueueNode
from ivr.routing import list_tags, queue_priority, queue_skills

PLAN = """\
platform: kunming
name: 昆明市12345
area_code: "0871"
prompts: {menu: 请按键, bye: 再见, blocked: 暂时无法受理}
start: check
nodes:
  check: {kind: caller_list, blocked_prompt: blocked, next: menu}
  menu: {kind: menu, prompt: menu, options: {0: seat, 9: dialect}, default: seat}
  dialect: {kind: set, tags: {language: dialect, topic: water}, next: seat}
  seat: {kind: queue, skills: [language], next: bye}
  bye: {kind: hangup, prompt: bye}
"""

LISTS = """\
lists:
  nuisance: {name: 骚扰来电, action: block, numbers: ["13800000001"]}
  elderly: {name: 老年人, action: priority, priority: 5, numbers: ["13800000002", "+8613800000003"]}
  vip: {name: VIP, action: priority, priority: 7, numbers: ["13800000002"], platforms: [dali]}
"""


def parse(text: str, lists: tuple[str, ...] = ("nuisance", "elderly")) -> list[str]:
    plan = parse_dialplan(textwrap.dedent(text), "kunming.yaml", lambda name: False, caller_lists=lists)
    return [str(w) for w in plan.warnings]


def problems(text: str, lists: tuple[str, ...] = ("nuisance",)) -> list[str]:
    with pytest.raises(DialplanInvalid) as caught:
        parse_dialplan(text, "kunming.yaml", lambda name: False, caller_lists=lists)
    return [str(p) for p in caught.value.problems]


def list_problems(text: str) -> list[str]:
    with pytest.raises(DialplanInvalid) as caught:
        parse_caller_lists(text, "caller_lists.yaml")
    return [str(p) for p in caught.value.problems]


# skills and priority from tags


def test_a_skills_entry_naming_a_tag_stands_for_the_callers_value() -> None:
    node = QueueNode(kind="queue", skills=("language", "yi"), next="bye")
    assert queue_skills(node, {"language": "dialect", "category": "complaint"}) == ("dialect", "yi")
    assert queue_skills(node, {}) == ("yi",)  # untagged: only the literal skill is needed


def test_the_queue_takes_the_higher_of_its_priority_and_the_callers_tag() -> None:
    node = QueueNode(kind="queue", priority=2, next="bye")
    assert queue_priority(node, {}) == 2
    assert queue_priority(node, {"priority": "5"}) == 5
    assert queue_priority(node, {"priority": "1"}) == 2
    assert queue_priority(node, {"priority": "55"}) == 2  # not a tag a set node can give: ignored


def test_a_set_nodes_priority_must_be_one_digit() -> None:
    bad = PLAN.replace("tags: {language: dialect, topic: water}", "tags: {priority: high}")
    [problem] = problems(bad)
    assert problem.startswith("kunming.yaml:9:")
    assert "priority 'high' is not one digit 0-9" in problem


def test_tag_values_are_plain_names() -> None:
    bad = PLAN.replace("language: dialect", "language: 'dia,lect'")
    [problem] = problems(bad)
    assert "nodes.dialect.tags.language" in problem


# the checker's warning


def test_a_tag_nothing_reads_is_warned_about_where_it_is_set() -> None:
    [warning] = parse(PLAN)
    assert warning.startswith("kunming.yaml:9:")
    assert "warning: nodes.dialect.tags.topic: tag 'topic' is read by nothing" in warning


def test_a_tag_a_queue_names_in_its_skills_is_read() -> None:
    assert parse(PLAN.replace("skills: [language]", "skills: [language, topic]")) == []
    warnings = parse(PLAN.replace("skills: [language]", "skills: []"))
    assert [w.split(": ")[2] for w in warnings] == ["nodes.dialect.tags.language", "nodes.dialect.tags.topic"]


def test_the_shipped_dialect_option_is_routed_on() -> None:
    plan = load_platform_dialplan(Path(__file__).resolve().parents[2] / "dialplans" / "kunming.yaml")
    assert plan.warnings == ()
    seat = plan.node("to_seat")
    assert isinstance(seat, QueueNode) and queue_skills(seat, {"language": "dialect"}) == ("dialect",)


def test_a_caller_list_node_names_existing_lists() -> None:
    bad = PLAN.replace("{kind: caller_list,", "{kind: caller_list, lists: [nuisance, vipp],")
    [problem, warning] = problems(bad)
    assert "tag 'topic' is read by nothing" in warning
    assert problem.startswith("kunming.yaml:7:")
    assert "nodes.check.lists.1: caller list 'vipp' does not exist (nuisance)" in problem


# caller lists


def test_caller_lists_match_by_number_in_any_prefix_form() -> None:
    lists = parse_caller_lists(LISTS, "caller_lists.yaml")
    assert [m.list_id for m in lists.matches("13800000002")] == ["elderly", "vip"]
    assert [m.list_id for m in lists.matches("008613800000003")] == ["elderly"]
    assert lists.matches("13800000009") == [] and lists.matches("") == []
    assert [m.list_id for m in lists.matches("13800000002", only=("vip",))] == ["vip"]
    kunming = lists.for_platform("kunming")  # vip is 大理's only
    assert [m.list_id for m in kunming.matches("13800000002")] == ["elderly"]
    [blocked] = kunming.matches("+8613800000001")
    assert blocked.action is CallerListAction.BLOCK and blocked.name == "骚扰来电"
    assert normal_number("8613800000001") == "13800000001" and normal_number("087112345") == "087112345"


def test_list_tags_raise_the_priority_never_lower_it() -> None:
    lists = parse_caller_lists(LISTS, "caller_lists.yaml")
    matches = lists.matches("13800000002")
    assert list_tags(matches, {}) == {"caller_list": "elderly,vip", "priority": "7"}
    assert list_tags(matches, {"priority": "9"}) == {"caller_list": "elderly,vip"}


@pytest.mark.parametrize(
    ("bad", "where", "message"),
    [
        ('numbers: ["13800000001"]}', 'numbers: ["138-0000-0001"]}', "caller_lists.yaml:2:"),
        ('numbers: ["13800000001"]}', 'numbers: ["13800000001\\n"]}', "caller_lists.yaml:2:"),
        ("action: priority, priority: 5,", "action: priority,", "a priority list needs a priority"),
        ("action: block,", "action: block, priority: 3,", "a block list has no priority"),
        ("action: block,", "action: ban,", "caller_lists.yaml:2:"),
        ("name: VIP,", "name: VIP, colour: red,", "lists.vip.colour: unknown key"),
        ('"+8613800000003"', '"13800000001"', "both blocked and served first (also in list 'nuisance')"),
        ('"+8613800000003"', '"13800000002"', "number given twice in this list"),
    ],
)
def test_bad_caller_lists_are_refused_with_file_and_line(bad: str, where: str, message: str) -> None:
    assert bad in LISTS
    found = list_problems(LISTS.replace(bad, where))
    assert any(message in problem for problem in found), found
    assert all(problem.startswith("caller_lists.yaml:") for problem in found)
    assert not any("1380000000" in problem for problem in found)  # no caller's number echoed


def test_a_number_on_both_lists_is_located_at_its_second_place() -> None:
    [problem] = list_problems(LISTS.replace('"+8613800000003"', '"13800000001"'))
    assert problem.startswith("caller_lists.yaml:3:")
    assert "lists.elderly.numbers.1" in problem


def test_a_platforms_dialplan_loads_the_lists_beside_it(tmp_path: Path) -> None:
    (tmp_path / "kunming.yaml").write_text(PLAN.replace("skills: [language]", "skills: [language, topic]"))
    [warning] = load_platform_dialplan(tmp_path / "kunming.yaml").warnings  # no file: no lists at all
    assert "no caller lists for this platform" in str(warning)
    (tmp_path / CALLER_LISTS_FILE).write_text(LISTS)
    plan = load_platform_dialplan(tmp_path / "kunming.yaml")
    assert plan.caller_lists is not None and set(plan.caller_lists.lists) == {"nuisance", "elderly"}
    before = plan.version
    (tmp_path / CALLER_LISTS_FILE).write_text(LISTS.replace("13800000001", "13800000011"))
    assert load_platform_dialplan(tmp_path / "kunming.yaml").version != before  # a list change is a new version
    (tmp_path / CALLER_LISTS_FILE).write_text(LISTS.replace("priority: 5", "priority: 15"))
    with pytest.raises(DialplanInvalid) as caught:
        load_platform_dialplan(tmp_path / "kunming.yaml")
    assert str(caught.value).startswith(f"{tmp_path / CALLER_LISTS_FILE}:3:")
