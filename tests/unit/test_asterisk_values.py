"""What we write into Asterisk's files means what config.yaml said: no value adds a line, a
section or a key, none is cut at a ';', and the dialplan lets only digits into the AGI URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.asterisk_files import layout_for, render_asterisk_config
from hotline.config import Config, ConfigError, parse_config
from telephony import values
from telephony.asterisk_conf import AsteriskLayout
from tests.support.asterisk_config import Line, parse_asterisk_config

LAYOUT = AsteriskLayout(Path("/opt/ast"), Path("/srv/etc"), Path("/srv/var/asterisk"))
INTERESTING = [*"abz019 \n\r\t\x00\x85\u2028;,&|()[]{}$=\"'<>\\#:@./-_%~+^*", "张", "·"]
ADVERSARIAL = st.one_of(st.text(alphabet=st.sampled_from(INTERESTING), max_size=24), st.text(max_size=24))
# what means something in a config line or a dialplan application's arguments
SYNTAX = set(",;&|()[]{}$\"'<>\\=#^\n")


def render(text: str) -> dict[str, str]:
    return render_asterisk_config(parse_config(text, "config.yaml", Path("/srv/hotline")), LAYOUT)


def entries(text: str, section: str, key: str) -> list[str]:
    return [line.value for line in parse_asterisk_config(text) if line.section == section and line.key == key]


def test_a_secret_with_a_semicolon_reaches_asterisk_whole() -> None:
    """';' starts a comment in an Asterisk file: written as '\\;', it is read back as ';'."""
    secret = "pa;ss--;word#1 [x]=y"
    files = render(f"seats:\n  - {{id: '1001', secret: '{secret}'}}\nasterisk:\n  ami_secret: 'ami-secret-#1=x[y]'\n")
    assert entries(files["pjsip.conf"], "seat-1001", "password") == [secret]
    assert entries(files["manager.conf"], "hotline", "secret") == ["ami-secret-#1=x[y]"]
    with pytest.raises(ConfigError, match="ami_secret"):  # the AMI secret is refused a ';' outright
        render("asterisk:\n  ami_secret: 'ami;secret;;x-0123456789'\n")


def test_a_seat_name_is_the_caller_id_and_nothing_else() -> None:
    files = render("seats:\n  - {id: '1001', name: 买买提·艾力 (客服), secret: change-me-1001}\n")
    assert entries(files["pjsip.conf"], "1001", "callerid") == ['"买买提·艾力 (客服)" <1001>']


def test_only_digits_of_a_pause_code_reach_the_agi_url() -> None:
    extensions = render("")["extensions.conf"]
    assert "feature?action=pause&reason=${FILTER(0-9,${EXTEN:3})})" in extensions
    # nothing a caller or a seat dials reaches an AGI URL unfiltered
    for line in extensions.splitlines():
        if "AGI(" in line:
            assert "${EXTEN" not in line.replace("${FILTER(0-9,${EXTEN:3})}", ""), line


def test_a_value_with_a_line_break_is_never_written() -> None:
    with pytest.raises(ValueError, match="line break"):
        values.conf_value("secret\n[trunk]")
    assert values.conf_value("a;b") == "a\\;b"


def test_an_asterisk_root_from_the_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ASTERISK_ROOT", "/opt/ast,x")
    with pytest.raises(ValueError, match=r"cannot go into asterisk\.conf"):
        layout_for(parse_config("", "config.yaml", Path("/srv/hotline")), Path("/srv/etc"))


def _load(data: dict[str, Any]) -> Config:
    return parse_config(yaml.safe_dump(data, allow_unicode=True), "config.yaml", Path("/srv/hotline"))


def _accepted(section: str, build: Callable[[Any], Any], value: Any, fallback: Any) -> Any:
    """``value`` as config.yaml holds it (YAML reads a U+0085 as a line break …) if config.yaml's
    check accepts it where ``build`` puts it, else ``fallback``."""
    held = yaml.safe_load(yaml.safe_dump(value, allow_unicode=True))
    try:
        _load({section: build(held)})
    except ConfigError:
        return fallback
    return held


def _field(key: str) -> Callable[[Any], dict[str, Any]]:
    return lambda value: {key: value}


def _seat(**fields: Any) -> list[dict[str, Any]]:
    return [{"id": "1001", "secret": "plain-secret", **fields}]


@st.composite
def twins(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """An adversarial config (each value drawn from anything, kept where config.yaml's check
    accepts it) and its plain twin (the same shape: the same seats and trunks, plain values);
    and the secrets and caller ids the adversarial one must carry into Asterisk whole."""
    evil: dict[str, Any] = {"seats": [], "sip": {"trunks": {}}, "asterisk": {}, "platform": {}, "paths": {}}
    plain: dict[str, Any] = {"seats": [], "sip": {"trunks": {}}, "asterisk": {}, "platform": {}, "paths": {}}
    expected: dict[str, str] = {}
    ids = draw(st.lists(st.from_regex(r"[0-9]{3,6}", fullmatch=True), min_size=1, max_size=3, unique=True))
    for seat_id in ids:
        name = _accepted("seats", lambda v: _seat(name=v), draw(ADVERSARIAL), "x")
        secret = _accepted("seats", lambda v: _seat(secret=v), draw(ADVERSARIAL), None) if draw(st.booleans()) else None
        contact = (
            _accepted("seats", lambda v: _seat(contact=v), draw(ADVERSARIAL), None) if draw(st.booleans()) else None
        )
        if secret is None and contact is None:
            secret = "plain-secret"
        seat: dict[str, Any] = {"id": seat_id, "name": name}
        twin: dict[str, Any] = {"id": seat_id, "name": "x"}
        if secret is not None:
            seat["secret"], twin["secret"] = secret, "twin-secret"
            expected[f"pjsip.conf/seat-{seat_id}/password"] = secret
        if contact is not None:
            seat["contact"], twin["contact"] = contact, "sip:1@192.0.2.1"
        expected[f"pjsip.conf/{seat_id}/callerid"] = f'"{name or seat_id}" <{seat_id}>'
        evil["seats"].append(seat)
        plain["seats"].append(twin)
    for i in range(draw(st.integers(0, 2))):
        name = _accepted("sip", lambda v: {"trunks": {v: {"host": "192.0.2.1"}}}, draw(ADVERSARIAL), f"t{i}")
        name = name if name not in evil["sip"]["trunks"] else f"t{i}"
        host = _accepted("sip", lambda v: {"trunks": {"t": {"host": v}}}, draw(ADVERSARIAL), "192.0.2.1")
        evil["sip"]["trunks"][name] = {"host": host, "port": 5060 + i}
        plain["sip"]["trunks"][f"t{i}"] = {"host": "192.0.2.1", "port": 5060 + i}
    peers = draw(st.lists(ADVERSARIAL, min_size=1, max_size=3))
    evil["sip"]["trunk_peers"] = [_accepted("sip", lambda v: {"trunk_peers": [v]}, p, "192.0.2.0/24") for p in peers]
    plain["sip"]["trunk_peers"] = ["192.0.2.0/24"] * len(peers)
    for key, fallback, twin_value in (
        ("ami_username", "hotline", "twin"),
        ("ami_secret", "hotline-secret-0123456789", "twin-secret-0123456789"),
    ):
        evil["asterisk"][key] = _accepted("asterisk", _field(key), draw(ADVERSARIAL), fallback)
        plain["asterisk"][key] = twin_value
    expected[f"manager.conf/{evil['asterisk']['ami_username']}/secret"] = evil["asterisk"]["ami_secret"]
    evil["platform"]["id"] = _accepted("platform", lambda v: {"id": v}, draw(ADVERSARIAL), "kunming")
    plain["platform"]["id"] = "twin_platform"
    evil["platform"]["area_code"] = _accepted("platform", lambda v: {"area_code": v}, draw(ADVERSARIAL), "0871")
    plain["platform"]["area_code"] = "0871"
    evil["agi"] = {"host": _accepted("agi", lambda v: {"host": v}, draw(ADVERSARIAL), "127.0.0.1")}
    plain["agi"] = {"host": "127.0.0.1"}
    for key in ("runtime_dir", "spool_dir"):
        evil["paths"][key] = _accepted("paths", _field(key), "/srv/" + draw(ADVERSARIAL), f"/srv/{key}")
        plain["paths"][key] = f"/srv/{key}"
    return evil, plain, expected


def _shape(line: Line) -> tuple[str, str, list[str]]:
    """What a line is, apart from its plain text: kind, key and the syntax in its value."""
    free = line.key in ("password", "secret", "callerid")  # compared whole, below
    text = line.section if line.kind == "section" else ("" if free else line.value)
    return line.kind, line.key, [c for c in text if c in SYNTAX]


@settings(deadline=None, max_examples=200)
@given(twins())
def test_accepted_values_never_change_what_asterisk_reads(case: tuple[dict[str, Any], dict[str, Any], Any]) -> None:
    """Every rendered file of a config with arbitrary accepted values parses back to the same
    sections, keys and syntax as its plain twin's, and secrets and caller ids arrive whole."""
    evil_data, plain_data, expected = case
    evil = render_asterisk_config(_load(evil_data), LAYOUT)
    plain = render_asterisk_config(_load(plain_data), LAYOUT)
    assert evil.keys() == plain.keys()
    for name, text in evil.items():
        evil_lines, plain_lines = parse_asterisk_config(text), parse_asterisk_config(plain[name])
        assert not [line for line in evil_lines if line.kind in ("directive", "junk")], name
        assert [_shape(line) for line in evil_lines] == [_shape(line) for line in plain_lines], name
    for where, value in expected.items():
        name, section, key = where.split("/")
        assert entries(evil[name], section, key) == [value], where
