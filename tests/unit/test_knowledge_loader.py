"""Knowledge files: the shipped base is valid; every problem names file:line:column and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.loader import KnowledgeInvalid, check_path, load_base, parse_file
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
entries:
  - id: km-a
    question: 公积金提取
    answer: 到管理中心办理。
    matter_type: 住房公积金
    unit: kunming_housing_fund
    keywords: [取公积金]
    valid_from: 2026-01-01
    valid_until: "2026-12-31"
"""


def problems_of(text: str, known_unit: object = None) -> list[str]:
    parsed = parse_file(text, "km.yaml", "kunming", known_unit)  # type: ignore[arg-type]
    return [str(p) for p in parsed.problems]


def test_the_shipped_knowledge_base_is_valid() -> None:
    base = load_base(REPO / "knowledge_base")
    assert 10 <= len(base.entries) <= 20
    assert {e.platform for e in base.entries} == {"province", "kunming", "dali"}
    assert all(e.unit for e in base.entries)
    # prefectures load their own folder and the province's only
    assert {e.platform for e in load_base(REPO / "knowledge_base", {"kunming", "province"}).entries} == {
        "province",
        "kunming",
    }


def test_a_good_file() -> None:
    parsed = parse_file(GOOD, "km.yaml", "kunming")
    assert parsed.problems == ()
    (entry,) = parsed.entries
    assert (entry.id, entry.platform, entry.source) == ("km-a", "kunming", "km.yaml:2")
    assert str(entry.valid_until) == "2026-12-31"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("    unit: kunming_housing_fund\n", "    unit: kunming_housing_fund\n    owner: 张三\n"),
            "km.yaml:7:5: error: entries.0.owner: unknown key",
        ),
        (
            ("valid_from: 2026-01-01", "valid_from: 2026-13-01"),
            "km.yaml:8:17: error: (top level): invalid YAML: not a valid timestamp",
        ),
        (
            ("valid_from: 2026-01-01", "valid_from: 2026/01/01"),
            "km.yaml:8:5: error: entries.0.valid_from: Value error, not a date",
        ),
        (
            ("valid_from: 2026-01-01", "valid_from: 2026-01-01 10:00:00"),
            "km.yaml:8:5: error: entries.0.valid_from: Value error, a day",
        ),
        (
            ("valid_from: 2026-01-01", "valid_from: 20260101"),
            "km.yaml:8:5: error: entries.0.valid_from: Value error, a date",
        ),
        (
            ("valid_from: 2026-01-01", "valid_from: 2027-01-01"),
            "km.yaml:9:5: error: entries.0.valid_until: 2026-12-31 is before valid_from 2027-01-01",
        ),
        (("id: km-a", "id: KM A"), "km.yaml:2:5: error: entries.0.id: String should match pattern"),
        (("id: km-a", "id: km-a/../x"), "km.yaml:2:5: error: entries.0.id: String should match pattern"),
        (("id: km-a", "id: status"), "km.yaml:2:5: error: entries.0.id: 'status' is reserved"),
        (("    question: 公积金提取\n", ""), "km.yaml:2:5: error: entries.0.question: required key is missing"),
        (
            ("question: 公积金提取", 'question: "公积金\\n提取"'),
            "km.yaml:3:5: error: entries.0.question: Value error, control characters",
        ),
        (
            ("unit: kunming_housing_fund", "unit: ../etc"),
            "km.yaml:6:5: error: entries.0.unit: String should match pattern",
        ),
        (
            ("matter_type: 住房公积金", "matter_type: 123"),
            "km.yaml:5:5: error: entries.0.matter_type: Input should be a valid string",
        ),
        (
            ("keywords: [取公积金]", "keywords: 取公积金"),
            "km.yaml:7:5: error: entries.0.keywords: Input should be a valid tuple",
        ),
        (("entries:\n", "entries:\n  - 1\n"), "km.yaml:2:5: error: entries.0: Input should be a valid dictionary"),
        (
            ("  - id: km-a\n", "  - id: km-a\n    id: km-b\n"),
            "km.yaml:3:5: error: entries.0.id: key 'id' is given twice",
        ),
    ],
)
def test_problems_are_located(change: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    found = problems_of(text)
    assert any(p.startswith(expected) for p in found), found


def test_not_a_mapping_and_not_yaml() -> None:
    assert problems_of("- a\n") == ["km.yaml:1:1: error: (top level): a knowledge file is a mapping with `entries:`"]
    assert problems_of("entries: [\n")[0].startswith("km.yaml:2:1: error: (top level): invalid YAML")


def test_units_are_checked_when_the_directory_is_given() -> None:
    assert problems_of(GOOD, lambda unit: unit == "kunming_housing_fund") == []
    assert problems_of(GOOD, lambda unit: False) == [
        "km.yaml:6:5: error: entries.0.unit: unknown unit 'kunming_housing_fund' (not in the units directory)"
    ]


def test_ids_are_unique_across_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "kunming").mkdir()
    (tmp_path / "province").mkdir()
    (tmp_path / "kunming" / "a.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "province" / "b.yaml").write_text(GOOD.replace("km-a", "p-b") + GOOD.replace("entries:\n", ""), "utf-8")
    with pytest.raises(KnowledgeInvalid) as caught:
        load_base(tmp_path)
    (problem,) = caught.value.problems
    assert str(problem) == (
        f"{tmp_path}/province/b.yaml:10:5: error: entries.1.id: id 'km-a' is already used at "
        f"{tmp_path}/kunming/a.yaml:2"
    )


def test_folders_are_platforms(tmp_path: Path) -> None:
    (tmp_path / "Kun Ming").mkdir()
    with pytest.raises(KnowledgeInvalid, match="named after a platform id"):
        load_base(tmp_path)
    assert load_base(tmp_path / "nowhere").entries == ()


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "kunming").mkdir()
    (tmp_path / "kunming" / "a.yaml").write_bytes("entries: []\n# 中文".encode("gbk"))
    with pytest.raises(KnowledgeInvalid, match=r"a\.yaml: error: \(top level\): not UTF-8 text"):
        load_base(tmp_path)


def test_check_command(tmp_path: Path) -> None:
    folder = tmp_path / "kunming"
    folder.mkdir()
    bad = folder / "bad.yaml"
    bad.write_text(GOOD.replace("valid_from: 2026-01-01", "valid_from: 2027-01-01"), encoding="utf-8")
    result = run_cli("knowledge", "check", str(bad), "knowledge_base")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}:9:5: error: entries.0.valid_until: 2026-12-31 is before valid_from 2027-01-01" in result.stdout
    assert "knowledge_base: ok (" in result.stdout
    assert check_path(REPO / "knowledge_base" / "kunming").entries[0].platform == "kunming"
    ok = run_cli("knowledge", "check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
