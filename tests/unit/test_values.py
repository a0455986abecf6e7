"""Values that reach Asterisk are checked where they are loaded (config.yaml, the dialplans, the
hotline directory): each injection vector is refused with the file, the line and the key."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from hotline.config import ConfigError, parse_config
from ivr.dialplan.directory import DIRECTORY_FILE, parse_directory
from ivr.dialplan.loader import DialplanInvalid, parse_dialplan
from ivr.dialplan.schema import Destination
from telephony import values
from tests.support.cli import run_cli

# the characters an injection needs; \w-free so hypothesis finds them fast
INTERESTING = [*"abz019 \n\r\t\x00\x85\u2028;,&|()[]{}$=\"'<>\\#:@./-_%~+^*", "张", "·", "٨"]
ADVERSARIAL = st.one_of(st.text(alphabet=st.sampled_from(INTERESTING), max_size=24), st.text(max_size=24))


def config_errors(text: str, base: Path = Path("/srv/hotline")) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), "config.yaml", base)
    return str(caught.value)


# each: (config.yaml text, what the error must say: file:line: key path)
CONFIG_VECTORS = {
    "seat name adds pjsip.conf lines": (
        r"""
        seats:
          - id: "1001"
            name: "张敏\n[trunk]\nmatch = 0.0.0.0/0"
            secret: change-me-1001
        """,
        "config.yaml:4: seats[0].name:",
    ),
    "seat secret adds pjsip.conf lines": (
        r"""
        seats:
          - id: "1001"
            secret: "change-me\n[trunk]\nmatch = 0.0.0.0/0"
        """,
        "config.yaml:4: seats[0].secret:",
    ),
    "seat contact adds a second contact": (
        """
        seats:
          - {id: "1002", contact: "sip:1002@192.0.2.30:5060,sip:x@203.0.113.9"}
        """,
        "config.yaml:3: seats[0].contact:",
    ),
    "seat contact with a comment": (
        """
        seats:
          - {id: "1002", contact: "sip:1002@192.0.2.30;x=y"}
        """,
        "config.yaml:3: seats[0].contact:",
    ),
    "area code with a final newline": ('platform: {area_code: "0871\\n"}\n', "config.yaml:1: platform.area_code:"),
    "area code in other digits": ('platform: {area_code: "0٨٧١"}\n', "config.yaml:1: platform.area_code:"),
    "platform id with a final newline": ('platform: {id: "kunming\\n"}\n', "config.yaml:1: platform.id:"),
    "trunk peer with a scope id that hides lines": (
        r"""
        sip:
          trunk_peers: ["fe80::1%x\n[trunk]\nmatch=0.0.0.0/0"]
        """,
        "config.yaml:3: sip.trunk_peers[0]:",
    ),
    "trunk name with a comma": (
        """
        sip:
          trunks:
            "carrier,x": {host: 192.0.2.10}
        """,
        "config.yaml:4: sip.trunks.carrier,x",
    ),
    "trunk named like the carrier's endpoint": (
        """
        sip:
          trunks:
            trunk: {host: 192.0.2.10}
        """,
        "config.yaml:4: sip.trunks.trunk",
    ),
    "trunk host with a line": (
        r"""
        sip:
          trunks:
            carrier: {host: "192.0.2.10\n[x]"}
        """,
        "config.yaml:4: sip.trunks.carrier.host:",
    ),
    "trunk area code in other digits": (
        """
        sip:
          trunks:
            dali: {host: 192.0.2.30, platform: dali, area_code: "0٨٧٢"}
        """,
        "config.yaml:4: sip.trunks.dali.area_code:",
    ),
    "SIP bind address with a line": ('sip: {bind_host: "0.0.0.0\\n[x]"}\n', "config.yaml:1: sip.bind_host:"),
    "AMI user adds a section": (
        'asterisk:\n  ami_username: "hotline]\\n[evil"\n',
        "config.yaml:2: asterisk.ami_username:",
    ),
    "AMI user named general": ("asterisk:\n  ami_username: General\n", "config.yaml:2: asterisk.ami_username:"),
    "AMI secret with a line": (
        'asterisk:\n  ami_secret: "long-enough\\n[evil]\\nsecret = x"\n',
        "config.yaml:2: asterisk.ami_secret:",
    ),
    "FastAGI host with a path": ('agi:\n  host: "127.0.0.1/x?y=1"\n', "config.yaml:2: agi.host:"),
    "prompt text that is an espeak-ng option": (
        'prompts:\n  fallback: "-f/etc/shadow"\n',
        "config.yaml:2: prompts.fallback:",
    ),
    "prompt text with a control character": ('prompts:\n  goodbye: "再见\\x01"\n', "config.yaml:2: prompts.goodbye:"),
    "count prompt with another placeholder": (
        'prompts:\n  queue_ahead: "{n}{x}"\n',
        "config.yaml:2: prompts.queue_ahead:",
    ),
    "spool folder evaluated by the dialplan": (
        "paths:\n  spool_dir: /srv/${SHELL(id)}/spool\n",
        "config.yaml:2: paths.spool_dir:",
    ),
    "runtime folder with a comma": ("paths:\n  runtime_dir: /srv/a,b\n", "config.yaml:2: paths.runtime_dir:"),
    "spool folder with a Record() counter": (
        "paths:\n  spool_dir: /srv/spool%d\n",
        "config.yaml:2: paths.spool_dir:",
    ),
    "Asterisk root with a line": ('asterisk:\n  root: "/opt/ast\\n[x]"\n', "config.yaml:2: asterisk.root:"),
}


@pytest.mark.parametrize("name", CONFIG_VECTORS)
def test_config_check_names_file_line_and_key(name: str) -> None:
    text, expected = CONFIG_VECTORS[name]
    assert expected in config_errors(text)


def test_a_refused_secret_is_not_echoed() -> None:
    message = config_errors(CONFIG_VECTORS["seat secret adds pjsip.conf lines"][0])
    assert "match = 0.0.0.0/0" not in message
    assert "got" not in message


def test_a_config_folder_that_asterisk_cannot_carry_is_named() -> None:
    """Relative folders are anchored at config.yaml's own folder: that is checked too."""
    message = config_errors("", base=Path("/srv/a;b"))
    assert "config.yaml:?: paths.runtime_dir: '/srv/a;b/var'" in message
    assert "';'" in message


def test_config_check_cli_names_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent(CONFIG_VECTORS["seat name adds pjsip.conf lines"][0]), encoding="utf-8")
    result = run_cli("config", "check", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}:4: seats[0].name:" in result.stderr
    assert "Traceback" not in result.stderr


def test_plain_values_still_load() -> None:
    config = parse_config(
        textwrap.dedent(
            """
            seats:
              - {id: "1001", name: 买买提·艾力 (维吾尔语), secret: "pa;ss#word [x]=1"}
              - {id: "1002", contact: "sip:1002@seat-2.example.cn:5062"}
            sip:
              trunks:
                carrier: {host: sbc.example.cn}
                dali: {host: 192.0.2.30, platform: dali, area_code: "0872"}
            asterisk: {ami_host: asterisk.internal, ami_username: hotline-1}
            """
        ),
        "config.yaml",
        Path("/srv/hotline 2"),
    )
    assert config.seats[0].secret == "pa;ss#word [x]=1"
    assert config.paths.spool_dir == Path("/srv/hotline 2/var/spool")


DIALPLAN = """\
platform: dali
name: 大理州12345
area_code: "0872"
prompts:
  bye: 再见
  offer: 回拨请按一
destinations:
  police: {trunk: carrier, number: "110"}
start: police
nodes:
  police: {kind: transfer, to: police, next: offer}
  offer: {kind: callback, prompt: offer, trunk: carrier, next: seat}
  seat: {kind: queue, next: bye}
  bye: {kind: hangup, prompt: bye}
"""

# each: (text replaced, replacement, what the error must say: file:line:column: error: key path)
DIALPLAN_VECTORS = {
    "a trunk that rings a second party": (
        "{trunk: carrier,",
        '{trunk: "carrier&PJSIP/0099123456@carrier",',
        "dali.yaml:8:",
        "destinations.police.trunk:",
    ),
    "a trunk that adds Dial options": (
        "{trunk: carrier,",
        '{trunk: "carrier,30,D(1234)",',
        "dali.yaml:8:",
        "destinations.police.trunk:",
    ),
    "a callback trunk that adds Dial options": (
        "trunk: carrier, next: seat",
        'trunk: "carrier,60,g", next: seat',
        "dali.yaml:12:",
        "nodes.offer.trunk:",
    ),
    "a number with a channel": (
        'number: "110"',
        'number: "110&PJSIP/1"',
        "dali.yaml:8:",
        "destinations.police.number:",
    ),
    "an area code with a final newline": ('area_code: "0872"', 'area_code: "0872\\n"', "dali.yaml:3:", "area_code:"),
    "prompt text that is an espeak-ng option": (
        "bye: 再见",
        'bye: "-f/etc/shadow"',
        "dali.yaml:5:",
        "prompts.bye:",
    ),
}


@pytest.mark.parametrize("name", DIALPLAN_VECTORS)
def test_dialplan_check_names_file_line_and_key(name: str) -> None:
    old, new, where, key = DIALPLAN_VECTORS[name]
    assert old in DIALPLAN
    with pytest.raises(DialplanInvalid) as caught:
        parse_dialplan(DIALPLAN.replace(old, new), "dali.yaml", lambda prompt: False)
    found = [str(p) for p in caught.value.problems]
    assert any(p.startswith(where) and f": error: {key}" in p for p in found), found


def test_the_plain_dialplan_loads() -> None:
    plan = parse_dialplan(DIALPLAN, "dali.yaml", lambda prompt: False)
    assert plan.destinations["police"].trunk == "carrier"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("trunk: carrier}", 'trunk: "carrier&PJSIP/0099@carrier"}', "directory.yaml:2:"),
        ("trunk: dali_carrier", 'trunk: "dali_carrier,30,D(1)"', "directory.yaml:3:"),
    ],
)
def test_directory_trunks_are_checked(old: str, new: str, expected: str) -> None:
    directory = (
        "hotlines:\n"
        '  police: {name: 公安报警 110, kind: emergency, number: "110", trunk: carrier}\n'
        '  water: {name: 供水, kind: utility, number: "96666", trunk: carrier, local: {dali: {number: "1", trunk: dali_carrier}}}\n'  # noqa: E501
    ).replace('number: "1"', 'number: "12"')
    with pytest.raises(DialplanInvalid) as caught:
        parse_directory(directory.replace(old, new), DIRECTORY_FILE)
    assert expected in str(caught.value)
    assert "trunk" in str(caught.value)


def test_dialplan_check_cli_names_file_and_line(tmp_path: Path) -> None:
    old, new, where, key = DIALPLAN_VECTORS["a trunk that rings a second party"]
    path = tmp_path / "dali.yaml"
    path.write_text(DIALPLAN.replace(old, new), encoding="utf-8")
    result = run_cli("dialplan", "check", str(path))
    assert result.returncode == 1
    assert f"{tmp_path}/{where}" in result.stdout
    assert key in result.stdout


# For any text, what a type accepts carries none of the characters that mean something where
# the value goes (an Asterisk file, a dial string, a command line).
LINE_BREAKS = "\n\r\x00\x85\u2028\u2029"
FORBIDDEN: dict[str, tuple[Any, str]] = {
    "TrunkName": (values.TrunkName, LINE_BREAKS + ",&;()$[]{}/@ "),
    "DialNumber": (values.DialNumber, LINE_BREAKS + ",&;()$[]{}/@ "),
    "AreaCode": (values.AreaCode, LINE_BREAKS + ",&;()$ "),
    "PlatformId": (values.PlatformId, LINE_BREAKS + ",&;()$[] "),
    "SeatId": (values.SeatId, LINE_BREAKS + ",&;()$[] "),
    "SeatName": (values.SeatName, LINE_BREAKS + '\t",&;$[]<>\\{}='),
    "SipUri": (values.SipUri, LINE_BREAKS + ',&;$[] "<>'),
    "Host": (values.Host, LINE_BREAKS + ",&;$[]/ %"),
    "IPv4": (values.IPv4, LINE_BREAKS + ",&;$[]/ "),
    "IpNetwork": (values.IpNetwork, LINE_BREAKS + ",&;$[] %"),
    "AmiUser": (values.AmiUser, LINE_BREAKS + ",&;$[] "),
    "Secret": (values.Secret, LINE_BREAKS + "\t"),
    "PromptText": (values.PromptText, LINE_BREAKS + "\t\x01"),
}


@pytest.mark.parametrize("name", FORBIDDEN)
@settings(deadline=None, max_examples=300)
@given(text=ADVERSARIAL)
def test_what_a_type_accepts_carries_no_syntax(name: str, text: str) -> None:
    kind, forbidden = FORBIDDEN[name]
    try:
        accepted: str = TypeAdapter(kind).validate_python(text)
    except ValidationError:
        return
    assert not set(accepted) & set(forbidden), (name, accepted)
    if name == "PromptText":
        assert not accepted.lstrip().startswith("-")


@settings(deadline=None, max_examples=300)
@given(trunk=ADVERSARIAL, number=ADVERSARIAL)
def test_an_accepted_destination_makes_one_dial_of_one_channel(trunk: str, number: str) -> None:
    try:
        destination = Destination(trunk=trunk, number=number)
    except ValidationError:
        return
    dial = f"PJSIP/{destination.number}@{destination.trunk},40"  # as the transfer node builds it
    assert re.fullmatch(r"PJSIP/[0-9*#+]+@[a-z][a-z0-9_]*,40", dial), dial


def test_dialplan_check_cli_takes_a_folder(tmp_path: Path) -> None:
    """`hotline12345 dialplan check dialplans/`: every dialplan in it and its directory, as people type it."""
    result = run_cli("dialplan", "check", "dialplans/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dialplans/directory.yaml: ok" in result.stdout
    assert "dialplans/kunming.yaml: ok" in result.stdout
    assert "dialplans/dali.yaml: ok" in result.stdout
    # a broken dialplan in a folder is found and named, file and line
    old, new, where, _key = DIALPLAN_VECTORS["a trunk that rings a second party"]
    (tmp_path / "dali.yaml").write_text(DIALPLAN.replace(old, new), encoding="utf-8")
    result = run_cli("dialplan", "check", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path}/{where}" in result.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("dialplan", "check", str(empty))
    assert result.returncode == 1
    assert "no dialplan files" in result.stderr
