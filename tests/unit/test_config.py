"""config.yaml validation: errors name file, line and key; the CLI exits without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.config import ConfigError, parse_config
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]


def errors_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yaml", Path("/srv/hotline"))
    return str(caught.value)


def test_the_shipped_config_is_valid() -> None:
    config = parse_config((REPO / "config.yaml").read_text(encoding="utf-8"), "config.yaml", REPO)
    assert config.asterisk.ami_host == "127.0.0.1"
    assert config.agi.host == "127.0.0.1"
    assert config.http.port == 12345
    assert config.sip.port == 5060


def test_defaults_are_loopback_and_paths_are_anchored() -> None:
    config = parse_config("", "config.yaml", Path("/srv/hotline"))
    assert (config.asterisk.ami_host, config.agi.host, config.http.host) == ("127.0.0.1",) * 3
    assert config.paths.spool_dir == Path("/srv/hotline/var/spool")


def test_unknown_key_is_named_with_its_line() -> None:
    message = errors_of("platform:\n  id: dali\nhttp:\n  prot: 8080\n")
    assert "config.yaml:4: http.prot: unknown key" in message


def test_wrong_type_is_named() -> None:
    message = errors_of("agi:\n  header_timeout_s: soon\n")
    assert "config.yaml:2: agi.header_timeout_s:" in message
    assert "'soon'" in message


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_bad_port_is_named(port: str) -> None:
    assert "config.yaml:2: sip.port:" in errors_of(f"sip:\n  port: {port}\n")


def test_several_problems_are_all_reported() -> None:
    message = errors_of(
        "platform:\n  area_code: '871'\nredis:\n  url: http://x\nsip:\n  rtp_port_min: 2000\n  rtp_port_max: 1000\n"
    )
    assert "platform.area_code" in message
    assert "redis.url" in message
    assert "rtp_port_max must be greater" in message
    assert "3 problem(s)" in message


def test_yaml_syntax_error_has_a_position() -> None:
    assert errors_of("sip:\n  port: [5060\n").startswith("config.yaml:3:")


def test_token_hash_must_be_a_hash() -> None:
    message = errors_of("http:\n  tokens:\n    - {name: a, role: admin, sha256: secret}\n")
    assert "http.tokens[0].sha256" in message
    assert "secret" not in message.split("http.tokens[0].sha256")[1].split("\n")[0].split("(got")[0]


@pytest.mark.parametrize("command", [["config", "check"], ["run"], ["asterisk", "render", "--out", "x"]])
def test_cli_exits_non_zero_without_traceback(tmp_path: Path, command: list[str]) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("sip:\n  port: 99999\nunknown_section: {}\n", encoding="utf-8")
    result = run_cli(*command, "--config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}:2: sip.port: Input should be less than or equal to 65535" in result.stderr
    assert f"{bad}:3: unknown_section: unknown key" in result.stderr


def test_cli_missing_file(tmp_path: Path) -> None:
    result = run_cli("config", "check", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "cannot read the configuration" in result.stderr
