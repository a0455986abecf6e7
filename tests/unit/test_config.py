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


def test_the_public_demo_ami_secret_is_refused_and_never_repeated() -> None:
    message = errors_of("asterisk:\n  ami_secret: hotline-demo-secret\n")
    assert "config.yaml:2: asterisk.ami_secret: Value error, the demo secret earlier versions shipped" in message
    assert "hotline-demo-secret" not in message


@pytest.mark.parametrize("secret", ["short", "has;semicolon-in-it", "has space in the secret", "two\nlines-of-secret"])
def test_an_ami_secret_that_would_break_manager_conf_is_refused(secret: str) -> None:
    message = errors_of(f"asterisk:\n  ami_secret: {secret!r}\n".replace("'", '"'))
    assert "asterisk.ami_secret" in message
    assert "(value not shown: it is a secret)" in message


def test_an_agi_key_must_be_url_safe() -> None:
    assert "agi.secret" in errors_of("agi:\n  secret: with/slash-and-more-than-16\n")
    config = parse_config("agi:\n  secret: Url-Safe_key_0123456789\n", "config.yaml", Path("/srv"))
    assert config.agi.secret == "Url-Safe_key_0123456789"
    assert "Url-Safe" not in repr(config)


def test_redis_tls_options() -> None:
    config = parse_config(
        "redis:\n  url: rediss://hotline:pw@redis.example:6380/0\n  tls_ca_file: ca.pem\n"
        "  tls_cert_file: client.pem\n  tls_key_file: client.key\n",
        "config.yaml",
        Path("/srv/hotline"),
    )
    assert config.redis.tls_ca_file == Path("/srv/hotline/ca.pem")
    assert config.redis.tls_key_file == Path("/srv/hotline/client.key")
    assert config.redis.password_file == Path("/srv/hotline/var/redis-password")
    assert "pw@" not in repr(config)
    message = errors_of("redis:\n  url: redis://127.0.0.1:6379/0\n  tls_ca_file: ca.pem\n")
    assert "config.yaml:3: redis.tls_ca_file: Value error, a TLS file needs a rediss:// (TLS) url" in message
    message = errors_of("redis:\n  url: rediss://r.example/0\n  tls_cert_file: client.pem\n")
    assert "tls_cert_file and tls_key_file go together" in message
    assert "redis.password_file" in errors_of("redis:\n  password_file: [a]\n")


def test_a_redis_url_in_an_error_is_not_repeated() -> None:
    message = errors_of("redis:\n  url: redis://:hunter2-password@127.0.0.1:port/0\n")
    assert "config.yaml:2: redis.url:" in message
    assert "hunter2" not in message
    assert "hunter2" not in errors_of("redis:\n  url: http://:hunter2-password@127.0.0.1/0\n")


def test_a_config_file_with_secrets_that_others_may_read_is_pointed_out(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("seats: [{id: '1001', secret: seat-1001-password}]\n", encoding="utf-8")
    config.chmod(0o644)
    result = run_cli("config", "check", "--config", str(config))
    assert result.returncode == 0
    assert f"warning: {config} holds secrets (seats[0].secret) and others may read it: chmod 600" in result.stderr
    assert "seat-1001-password" not in result.stderr + result.stdout
    config.chmod(0o600)
    assert "warning" not in run_cli("config", "check", "--config", str(config)).stderr


@pytest.mark.parametrize(
    "text",
    [
        "redis: redis://:hunter2-password@db.example:6379/0\n",  # the URL where the section belongs
        "redis: [redis://app:hunter2-password@db.example:6379/0]\n",
        'tickets:\n  webhook_url: "ftp://export:hunter2-password@cases.example/in"\n',
        'tickets:\n  webhook_url: "hooks.example/in?key=hunter2-password"\n',
    ],
)
def test_a_refused_value_never_shows_a_password_in_a_url(text: str) -> None:
    message = errors_of(text)
    assert "hunter2" not in message
    assert "invalid configuration" in message


def test_a_platform_id_whose_ticket_numbers_would_look_like_another_platforms_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"platform\.id: .*ticket numbers would start KM-"):
        parse_config("platform:\n  id: km\n  area_code: '0871'\n", "config.yaml", Path("/srv/hotline"))
    assert (
        parse_config("platform:\n  id: kunming_east\n", "config.yaml", Path("/srv/hotline")).platform.id
        == "kunming_east"
    )


def test_tickets_leave_this_host_only_over_https() -> None:
    with pytest.raises(ConfigError, match=r"tickets\.webhook_url: .*must be https://"):
        parse_config('tickets:\n  webhook_url: "http://cases.example/in"\n', "config.yaml", Path("/srv/hotline"))
    for url in ("https://cases.example/in", "http://127.0.0.1:8080/in"):
        parsed = parse_config(f'tickets:\n  webhook_url: "{url}"\n', "config.yaml", Path("/srv/hotline"))
        assert parsed.tickets.webhook_url == url
