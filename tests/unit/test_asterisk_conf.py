"""The Asterisk configuration we render for a platform."""

from __future__ import annotations

from pathlib import Path

from hotline.config import parse_config
from telephony.asterisk_conf import AsteriskLayout, render_asterisk_config, write_asterisk_config


def render(text: str = "") -> dict[str, str]:
    config = parse_config(text, "config.yaml", Path("/srv/hotline"))
    return render_asterisk_config(config, AsteriskLayout(Path("/opt/ast"), Path("/srv/etc"), Path("/srv/var/asterisk")))


def test_ami_is_on_loopback_for_our_user_only() -> None:
    manager = render()["manager.conf"]
    assert "bindaddr = 127.0.0.1" in manager
    assert "deny = 0.0.0.0/0.0.0.0" in manager
    assert "permit = 127.0.0.1/255.255.255.255" in manager
    assert "secret = hotline-demo-secret" in manager


def test_hotline_numbers_go_to_our_fastagi_with_a_fallback() -> None:
    extensions = render("platform: {id: dali, area_code: '0872'}\nagi: {port: 4600}")["extensions.conf"]
    for number in ("087212345", "87212345"):
        assert f"exten => {number},1,Goto(hotline-entry,s,1)" in extensions
    # plain 12345: the area header first (digits only), else answered here
    assert "exten => 12345,1,Set(area=${FILTER(0-9,${PJSIP_HEADER(read,X-Hotline-Area)})})" in extensions
    assert "DIALPLAN_EXISTS(from-trunk,${area}12345,1)" in extensions
    assert "AGI(agi://127.0.0.1:4600/ivr)" in extensions
    assert 'GotoIf($["${HOTLINE_IVR_DONE}" = "1"]?done)' in extensions
    fallback = extensions.split("(fallback)")[1]
    assert fallback.index("Answer()") < fallback.index("Playback(") < fallback.index("Record(")
    assert "fb-${EPOCH}-${FILTER(0-9,${CALLERID(num)})}-${UNIQUEID}.wav" in fallback
    assert "exten => _X.,1,Hangup(1)" in extensions  # other numbers: 404


def test_trunk_accepts_configured_peers_and_keeps_media() -> None:
    pjsip = render("sip: {port: 5070, trunk_peers: ['10.1.2.0/24', '127.0.0.1']}")["pjsip.conf"]
    assert "bind = 127.0.0.1:5070" in pjsip
    assert "match = 10.1.2.0/24" in pjsip
    assert "match = 127.0.0.1" in pjsip
    assert "direct_media = no" in pjsip


def test_directories_point_into_the_root_and_runtime() -> None:
    files = render("platform: {id: qujing, area_code: '0874'}")
    conf = files["asterisk.conf"]
    assert "astmoddir => /opt/ast/usr/lib/x86_64-linux-gnu/asterisk/modules" in conf
    assert "astspooldir => /srv/var/asterisk/spool" in conf
    assert "systemname = qujing" in conf
    assert "rtpstart = 10000" in files["rtp.conf"]
    assert "noload => res_ari.so" in files["modules.conf"]


def test_written_files_keep_the_secret_private(tmp_path: Path) -> None:
    config = parse_config(f"paths: {{runtime_dir: {tmp_path}/var, spool_dir: {tmp_path}/spool}}", "c.yaml", tmp_path)
    layout = write_asterisk_config(config, tmp_path / "etc")
    assert (layout.etc_dir / "manager.conf").stat().st_mode & 0o077 == 0
    assert (tmp_path / "spool" / "fallback").is_dir()
    assert (tmp_path / "var" / "asterisk" / "run").is_dir()


def test_area_header_off_and_unknown_areas_at_the_province() -> None:
    extensions = render("platform: {id: province, area_code: '0871'}\nsip: {area_header: ''}")["extensions.conf"]
    assert "exten => 12345,1,Goto(hotline-entry,s,1)" in extensions
    assert "PJSIP_HEADER(read" not in extensions
    # nobody above the province: an area it does not route is answered there, never a 404
    assert "exten => _0XXX12345,1,Goto(hotline-entry,s,1)" in extensions
