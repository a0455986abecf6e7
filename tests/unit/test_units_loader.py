"""The units directory and desk codes checker: every problem names file:line; lookups and the
province-wide defaults."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from units.loader import DeskDirectory, DeskFilesInvalid, Source, load_desk, parse_desk

REPO = Path(__file__).resolve().parents[2]
CODES = """\
dispositions:
  - {id: answered_directly, label: 直接答复, requires_case: true}
  - {id: nuisance, label: 骚扰电话}
pause_reasons:
  - {id: meal, label: 用餐, key: "2"}
  - {id: training, label: 培训, counts_as_productive: true}
matter_types:
  - {id: housing_fund, label: 住房公积金}
  - {id: tourism, label: 旅游投诉}
"""
PROVINCE_UNITS = """\
units:
  - id: yn_tourism
    name: 云南省文化和旅游厅
    contacts: [{number: "087100009131"}]
    matter_types: [tourism]
"""
KUNMING_UNITS = """\
units:
  - id: km_housing_fund
    name: 昆明市住房公积金管理中心
    contacts:
      - {number: "087100000101", label: 业务咨询}
    matter_types: [housing_fund]
  - id: km_branch
    name: 昆明市住房公积金管理中心五华分中心
    parent: km_housing_fund
    contacts: [{number: "+8687100000102"}]
    matter_types: [housing_fund]
"""


def desk(
    kunming: str = KUNMING_UNITS, province: str = PROVINCE_UNITS, codes: str = CODES, **more: str
) -> DeskDirectory:
    units = [Source("units/province.yaml", province), Source("units/kunming.yaml", kunming)]
    codes_sources = [Source("codes/province.yaml", codes)]
    for name, text in more.items():
        kind, _, platform = name.partition("_")
        (units if kind == "units" else codes_sources).append(Source(f"{kind}/{platform}.yaml", text))
    return parse_desk(units, codes_sources)


def problems(**texts: str) -> list[str]:
    with pytest.raises(DeskFilesInvalid) as caught:
        desk(**texts)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_directory_is_valid_and_looks_up_by_platform() -> None:
    shipped = load_desk(REPO / "directory")
    units = shipped.units
    assert units.lookup("kunming", "km_housing_fund") is not None
    assert units.lookup("kunming", "km_housing_fund").name == "昆明市住房公积金管理中心"  # type: ignore[union-attr]
    assert units.lookup("kunming", "yn_medical_insurance") is not None  # province-wide: seen by everyone
    assert units.lookup("dali", "km_housing_fund") is None  # another platform's unit is not 大理's
    assert units.lookup("province", "km_housing_fund") is None
    market = [u.id for u in units.for_matter_type("dali", "market_supervision")]
    assert market == ["dl_market_supervision", "yn_market_supervision"]  # its own first
    assert shipped.codes.disposition("dali", "dispatched").requires_case  # type: ignore[union-attr]
    assert shipped.codes.disposition("kunming", "callback_scheduled") is not None  # 昆明's own
    assert shipped.codes.disposition("dali", "callback_scheduled") is None
    assert shipped.codes.pause_reason("kunming", "coaching") is None  # 昆明 omits it
    assert shipped.codes.pause_reason("dali", "coaching") is not None
    assert shipped.codes.pause_reason("lijiang", "meal") is not None  # no file: the province's
    every = [c.number for p in units.by_platform.values() for u in p.values() for c in u.unit.contacts]
    assert every and all(n.startswith(("08710000", "08720000")) for n in every)  # fictional demo numbers


def test_lookups_and_parents() -> None:
    checked = desk()
    assert checked.units.lookup("kunming", "km_branch").parent == "km_housing_fund"  # type: ignore[union-attr]
    assert checked.units.placed("kunming", "yn_tourism").platform == "province"  # type: ignore[union-attr]
    assert [u.id for u in checked.units.for_matter_type("kunming", "tourism")] == ["yn_tourism"]
    assert checked.codes.pause_reason("kunming", "meal").key == "2"  # type: ignore[union-attr]
    assert checked.codes.for_platform("kunming").pause_reason_for_key("2").id == "meal"  # type: ignore[union-attr]
    assert checked.version and checked.version != desk(kunming=KUNMING_UNITS + "\n").version


@pytest.mark.parametrize(
    ("kunming", "expected"),
    [
        (
            KUNMING_UNITS.replace("    parent: km_housing_fund\n", "    phone: x\n"),
            "units/kunming.yaml:9:5: error: units.1.phone: unknown key",
        ),
        (
            KUNMING_UNITS.replace("id: km_branch", "id: km_housing_fund"),
            "units/kunming.yaml:7:5: error: units.1.id: unit id 'km_housing_fund' is already used "
            "(units/kunming.yaml:2)",
        ),
        (
            KUNMING_UNITS.replace("id: km_branch", "id: yn_tourism"),
            "units/kunming.yaml:7:5: error: units.1.id: unit id 'yn_tourism' is already used (units/province.yaml:2)",
        ),
        (
            KUNMING_UNITS.replace("087100000101", "0871-0000-0101"),
            "units/kunming.yaml:5:10: error: units.0.contacts.0.number: a number to dial is 2-32",
        ),
        (
            KUNMING_UNITS.replace("087100000101", "110\\n"),
            "units/kunming.yaml:5:10: error: units.0.contacts.0.number: a number to dial is",
        ),
        (
            KUNMING_UNITS.replace('"+8687100000102"', '"12"'),
            "units/kunming.yaml:10:17: error: units.1.contacts.0.number: a contact number is 3-20",
        ),
        (
            KUNMING_UNITS.replace('"+8687100000102"', '"1234567890123456789012"'),
            "units/kunming.yaml:10:17: error: units.1.contacts.0.number: a contact number is 3-20 digits",
        ),
        (
            KUNMING_UNITS.replace("matter_types: [housing_fund]\n  - id", "matter_types: []\n  - id"),
            "units/kunming.yaml:6:5: error: units.0.matter_types: Tuple should have at least 1 item",
        ),
        (
            KUNMING_UNITS.replace("matter_types: [housing_fund]\n  - id", "matter_types: [housing]\n  - id"),
            "units/kunming.yaml:6:20: error: units.0.matter_types.0: unknown matter type 'housing'",
        ),
        (
            KUNMING_UNITS.replace("parent: km_housing_fund", "parent: km_nowhere"),
            "units/kunming.yaml:9:5: error: units.1.parent: no unit 'km_nowhere' of kunming or province-wide",
        ),
        (
            KUNMING_UNITS.replace("name: 昆明市住房公积金管理中心\n", "name: Kunming Fund\n"),
            "units/kunming.yaml:3:5: error: units.0.name: a unit's name is its Chinese name",
        ),
        (
            KUNMING_UNITS.replace("  - id: km_branch", "  - id: Km Branch"),
            "units/kunming.yaml:7:5: error: units.1.id: an id is 1-64 of a-z",
        ),
        (
            KUNMING_UNITS.replace("    contacts: [{number", "    contacts: []\n    x: [{number"),
            "units/kunming.yaml:10:5: error: units.1.contacts: Tuple should have at least 1 item",
        ),
        ("units:\n  - id: a\n    id: b\n", "units/kunming.yaml:3:5: error: units.0.id: key 'id' is given twice"),
        ("units: [\n", "units/kunming.yaml:2:1: error: (top level): invalid YAML"),
        ("- a\n", "units/kunming.yaml:1:1: error: (top level): the file is a mapping of keys"),
        ("unit: []\n", "units/kunming.yaml:1:1: error: unit: unknown key"),
    ],
)
def test_each_unit_error_names_file_line_and_key(kunming: str, expected: str) -> None:
    found = problems(kunming=kunming)
    assert any(p.startswith(expected) for p in found), found


def test_a_parent_cycle_is_an_error() -> None:
    text = KUNMING_UNITS.replace(
        '    contacts:\n      - {number: "087100000101"',
        '    parent: km_branch\n    contacts:\n      - {number: "087100000101"',
    )
    found = problems(kunming=text)
    assert any(
        "units/kunming.yaml:4:5: error: units.0.parent: the parents of 'km_housing_fund' go round" in p for p in found
    ), found


def test_a_province_unit_may_not_hang_under_a_platform_unit() -> None:
    text = PROVINCE_UNITS.replace("    contacts:", "    parent: km_housing_fund\n    contacts:")
    assert any(
        "units/province.yaml:4:5: error: units.0.parent: no unit 'km_housing_fund' province-wide" in p
        for p in problems(province=text)
    )


def test_same_unit_id_on_two_prefectures_is_allowed() -> None:
    checked = desk(units_dali=KUNMING_UNITS)
    assert checked.units.lookup("dali", "km_branch") is not None


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (
            CODES.replace("{id: nuisance", "{id: answered_directly"),
            "codes/province.yaml:3:6: error: dispositions.1.id: id 'answered_directly' is given twice "
            "(first at codes/province.yaml:2)",
        ),
        (
            CODES.replace("{id: meal, label: 用餐,", "{id: meal, label: '',"),
            "codes/province.yaml:5:16: error: pause_reasons.0.label: String should have at least 1 character",
        ),
        (
            CODES.replace('key: "2"', 'key: "2a"'),
            "codes/province.yaml:5:27: error: pause_reasons.0.key: a pause key is 1-4 digits",
        ),
        (
            CODES.replace("counts_as_productive: true", 'key: "2"'),
            "codes/province.yaml:6:31: error: pause_reasons.1.key: key '2' is already the key of pause reason 'meal'",
        ),
        (
            CODES.replace("requires_case: true", "needs_case: true"),
            "codes/province.yaml:2:42: error: dispositions.0.needs_case: unknown key",
        ),
        (
            CODES + "omit: {dispositions: [nuisance]}\n",
            "codes/province.yaml:10:1: error: omit: the province-wide file has nothing to omit",
        ),
        (
            CODES.replace("label: 骚扰电话", 'label: "骚扰\\n电话"'),
            "codes/province.yaml:3:20: error: dispositions.1.label: no line breaks",
        ),
    ],
)
def test_each_codes_error_names_file_line_and_key(codes: str, expected: str) -> None:
    found = problems(codes=codes)
    assert any(p.startswith(expected) for p in found), found


def test_a_platform_codes_file_adds_omits_and_may_not_redefine() -> None:
    own = "dispositions:\n  - {id: callback, label: 约定回电}\nomit:\n  pause_reasons: [training]\n"
    checked = desk(codes_kunming=own)
    assert [d.id for d in checked.codes.for_platform("kunming").dispositions] == [
        "answered_directly",
        "nuisance",
        "callback",
    ]
    assert checked.codes.pause_reason("kunming", "training") is None
    assert checked.codes.pause_reason("province", "training") is not None
    found = problems(codes_kunming="dispositions:\n  - {id: nuisance, label: 骚扰}\nomit: {matter_types: [nothing]}\n")
    assert any(
        p.startswith(
            "codes/kunming.yaml:2:6: error: dispositions.0.id: id 'nuisance' is already province-wide "
            "(codes/province.yaml:3)"
        )
        for p in found
    ), found
    assert any(
        p.startswith(
            "codes/kunming.yaml:3:23: error: omit.matter_types.0: 'nothing' is not among the province-wide matter_types"
        )
        for p in found
    ), found
    # an omitted code may be defined again by the platform, its own way
    checked = desk(
        codes_kunming="omit: {dispositions: [nuisance]}\n"
        "dispositions:\n  - {id: nuisance, label: 骚扰来电, requires_case: true}\n"
    )
    assert checked.codes.disposition("kunming", "nuisance").requires_case  # type: ignore[union-attr]


def test_a_pause_key_clashing_with_a_province_key_is_named_in_the_platform_file() -> None:
    found = problems(codes_kunming='pause_reasons:\n  - {id: smoke, label: 吸烟, key: "2"}\n')
    assert any(
        p.startswith(
            "codes/kunming.yaml:2:28: error: pause_reasons.0.key: key '2' is already the key of pause reason 'meal'"
        )
        for p in found
    ), found


def test_a_platform_units_file_checks_matter_types_against_its_own_codes() -> None:
    text = KUNMING_UNITS.replace("matter_types: [housing_fund]\n  - id", "matter_types: [dianchi]\n  - id")
    desk(kunming=text, codes_kunming="matter_types:\n  - {id: dianchi, label: 滇池保护}\n")
    assert any("unknown matter type 'dianchi'" in p for p in problems(kunming=text, units_dali=text))


def test_a_file_name_that_is_no_platform_is_an_error() -> None:
    found = problems(**{"units_Bad-Name": "units: []\n"})
    assert any(
        p.startswith("units/Bad-Name.yaml: error: (top level): the file's name is its platform") for p in found
    ), found


def test_load_desk_reads_folders_and_refuses_bad_bytes(tmp_path: Path) -> None:
    assert load_desk(tmp_path / "missing").files == ()
    shutil.copytree(REPO / "directory", tmp_path / "directory")
    (tmp_path / "directory" / "units" / "dali.yaml").write_bytes(b"units: [\xff]\n")
    with pytest.raises(DeskFilesInvalid) as caught:
        load_desk(tmp_path / "directory")
    assert str(caught.value).endswith("dali.yaml: error: (top level): not UTF-8 text")
