"""The Asterisk configuration we render for a platform."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from bench.e2e_ami import WANTED, enable_events
from hotline.asterisk_files import render_asterisk_config, seat_transfer_key, unfenced_seats, write_asterisk_config
from hotline.config import ConfigError, parse_config
from hotline.local_secrets import LocalSecrets
from telephony.asterisk_conf import (
    AMI_ACTION_CLASSES,
    AMI_DISABLED_EVENTS,
    AMI_EVENTS,
    AMI_READ_CLASSES,
    AMI_WEBRTC_EVENTS,
    CONTROL_SOCKET,
    STASIS_DECLINED_TYPES,
    SUN_PATH_MAX,
    AsteriskLayout,
    private_run_dir,
)
from telephony.dialplan_names import ATXFER_CODE, CALLER_AWAY_MAX_WAITS, REJOIN_WAIT_S

REPO = Path(__file__).resolve().parents[2]


def render(text: str = "") -> dict[str, str]:
    config = parse_config(text, "config.yaml", Path("/srv/hotline"))
    return render_asterisk_config(config, AsteriskLayout(Path("/opt/ast"), Path("/srv/etc"), Path("/srv/var/asterisk")))


def test_ami_is_on_loopback_for_our_user_only() -> None:
    manager = render()["manager.conf"]
    assert "bindaddr = 127.0.0.1" in manager
    assert "deny = 0.0.0.0/0.0.0.0" in manager
    assert "permit = 127.0.0.1/255.255.255.255" in manager
    assert "hotline-demo-secret" not in manager


def test_ami_user_has_only_the_classes_the_controller_uses() -> None:
    secrets = LocalSecrets(ami_secret="s" * 32, agi_secret="k" * 32)
    config = parse_config("", "config.yaml", Path("/srv/hotline"))
    layout = AsteriskLayout(Path("/opt/ast"), Path("/srv/etc"), Path("/srv/var/asterisk"))
    manager = render_asterisk_config(config, layout, secrets)["manager.conf"]
    assert f"secret = {'s' * 32}" in manager
    assert "\nread = call,agent,user\n" in manager
    assert "\nwrite = call,originate,reporting\n" in manager
    for dangerous in ("command", "system", "config"):
        assert not re.search(rf"^(read|write) = .*\b{dangerous}\b", manager, re.MULTILINE), dangerous
    assert "live_dangerously = no" in render_asterisk_config(config, layout, secrets)["asterisk.conf"]


def test_every_ami_action_the_code_sends_has_its_class() -> None:
    """A new action in the code must be placed in AMI_ACTION_CLASSES (and so in manager.conf)."""
    sent: set[str] = set()
    for package in ("telephony", "acd", "ivr", "calls", "hotline", "voicemail", "tickets", "recordings"):
        for source in (REPO / package).rglob("*.py"):
            sent |= set(re.findall(r'"Action": "(\w+)"', source.read_text(encoding="utf-8")))
    assert sent == set(AMI_ACTION_CLASSES), sent ^ set(AMI_ACTION_CLASSES)
    assert AMI_READ_CLASSES == "call,agent,user"


def test_asterisk_sends_exactly_the_events_the_controller_handles() -> None:
    """manager.conf's eventfilter lets through AMI_EVENTS only: every ``on_event("X", …)`` in the
    code (any package but tests and bench) must be listed — or its handler would never run —
    and nothing listed may lack a handler (Asterisk would send it for nothing)."""
    handled: set[str] = set()
    for source in REPO.rglob("*.py"):
        relative = source.relative_to(REPO).parts
        if relative[0] in ("tests", "bench", ".venv", "build") or relative[0].startswith("."):
            continue
        handled |= set(re.findall(r'\bon_event\(\s*"(\w+)"', source.read_text(encoding="utf-8")))
    assert "*" not in handled  # a catch-all handler would need every event: no filter possible
    assert handled == set(AMI_EVENTS + AMI_WEBRTC_EVENTS), handled ^ set(AMI_EVENTS + AMI_WEBRTC_EVENTS)
    manager = render()["manager.conf"]
    filters = re.findall(r"^eventfilter\(action\(include\),name\((\w+)\)\) =$", manager, re.MULTILINE)
    assert sorted(filters) == sorted(AMI_EVENTS)  # no browser phones: not their events either
    assert manager.index("eventfilter") > manager.index("\n[hotline]\n")  # the user's, not [general]'s


def disabled_events(manager: str) -> list[str]:
    general = manager.split("\n[hotline]\n", maxsplit=1)[0]
    lines = re.findall(r"^disabledevents = ([A-Za-z,]+)$", general, re.MULTILINE)
    assert len(lines) == 1, lines  # in [general], one line, names only (no blanks: matched exactly)
    names: list[str] = lines[0].split(",")
    return names


def test_events_no_handler_wants_are_never_built_into_text() -> None:
    """manager.conf [general] ``disabledevents``: Asterisk skips assembling and queuing these for
    every session (``read``/``eventfilter`` only act after an event is built); never one the
    controller handles, and the browser phones' two only where no seat has one."""
    plain = disabled_events(render()["manager.conf"])
    assert plain == list(AMI_DISABLED_EVENTS) and len(set(plain)) == len(plain)
    assert not set(plain) & set(AMI_EVENTS + AMI_WEBRTC_EVENTS[:1])
    # the per-call chatter of our path is among them: dialplan steps, variables, AGI, dials, RTCP
    for name in ("Newexten", "VarSet", "AGIExecStart", "AGIExecEnd", "DialBegin", "RTCPSent", "BridgeLeave"):
        assert name in plain, name
    assert "DeviceStateChange" in plain  # no browser phones: no handler for it
    browser = render("seats:\n  - {id: '1005', secret: 'browser-secret', phone: browser}\n")["manager.conf"]
    assert "eventfilter(action(include),name(DeviceStateChange)) =" in browser
    assert not set(disabled_events(browser)) & set(AMI_EVENTS + AMI_WEBRTC_EVENTS)
    # the benches' stopwatch user (bench/e2e_ami.py) turns back on the ones it reads, only those;
    # never Newexten (an event per dialplan step that production does not pay)
    still_off = disabled_events(enable_events(render()["manager.conf"], WANTED))
    assert set(still_off) == set(plain) - set(WANTED) and "Newexten" in still_off


def test_agi_and_rtcp_messages_are_declined_at_the_source() -> None:
    """stasis.conf: the AGI command and RTCP report message types are never created; nothing
    else (a declined channel type would make AMI fail to load), and no event the controller or
    the benches' stopwatch reads comes from them."""
    stasis = render()["stasis.conf"]
    assert stasis.startswith("[declined_message_types]\n")
    declined = re.findall(r"^decline = (\w+)$", stasis, re.MULTILINE)
    assert declined == list(STASIS_DECLINED_TYPES)
    assert set(declined) == {
        "agi_exec_start_type",
        "agi_exec_end_type",
        "ast_rtp_rtcp_sent_type",
        "ast_rtp_rtcp_received_type",
    }
    assert len(stasis.splitlines()) == 1 + len(declined)


def test_asterisk_verbosity_is_configured_and_messages_log_follows_it() -> None:
    """verbose 3 (a line and a write per dialplan step, numbers in clear) only where asked for;
    messages.log has no fixed level of its own, so `core set verbose 3` traces live calls."""
    files = render()
    assert re.search(r"^verbose = 1$", files["asterisk.conf"], re.MULTILINE)
    assert "messages.log => notice,warning,error,verbose\n" in files["logger.conf"]
    assert "verbose(" not in files["logger.conf"]
    traced = render("asterisk: {verbose: 3}")
    assert re.search(r"^verbose = 3$", traced["asterisk.conf"], re.MULTILINE)
    for bad in ("asterisk: {verbose: 6}", "asterisk: {verbose: -1}", "asterisk: {verbose: '3\\ndebug = 9'}"):
        with pytest.raises(ConfigError, match="verbose"):
            render(bad)


def test_hotline_numbers_go_to_our_fastagi_with_a_fallback() -> None:
    extensions = render("platform: {id: dali, area_code: '0872'}\nagi: {port: 4600}")["extensions.conf"]
    for number in ("087212345", "87212345"):
        assert f"exten => {number},1,Goto(hotline-entry,s,1)" in extensions
    # plain 12345: the area header first (digits only), else answered here
    assert "exten => 12345,1,Set(area=${FILTER(0-9,${PJSIP_HEADER(read,X-Hotline-Area)})})" in extensions
    # a header may name an area number only, never the trunk's catch-all (which is a 404)
    assert "DIALPLAN_EXISTS(hotline-area,${area}12345,1)" in extensions
    area_context = extensions.split("[hotline-area]")[1].split("\n[")[0]
    assert "_X." not in area_context and "Hangup" not in area_context
    trunk_context = extensions.split("[from-trunk]")[1].split("\n[")[0]
    assert trunk_context.index("include => hotline-area") < trunk_context.index("include => hotline-refuse")
    assert "_X." not in trunk_context  # its own extensions come before its includes
    # the hand-off token goes along as the AGI's argument, letters and digits only
    # letters and digits, at most 64: a huge header must not overflow the AGI environment (8 KB)
    # and send the call to the fallback route (ivr/entry.py checks the same shape)
    token = r"\$\{FILTER\(0-9A-Za-z,\$\{PJSIP_HEADER\(read,X-Hotline-Handoff\)\}\):0:64\}"
    assert re.search(rf"AGI\(agi://127\.0\.0\.1:4600/[A-Za-z0-9_-]{{32,}}/ivr,{token},answered\)", extensions)
    # answered just before: the IVR sends no ANSWER (ivr/entry.py reads arg2)
    assert re.search(r"same => n,Answer\(\)\n same => n,AGI\([^)]*/ivr,", extensions)
    assert 'GotoIf($["${HOTLINE_IVR_DONE}" = "1"]?done)' in extensions
    # max wait: the hold flag cleared here, the overflow node, why and the version as arguments
    # (one AGI round trip; ivr/entry.py IvrOverflow reads arg1..arg3)
    overflow = extensions.split("exten => T,1,")[1].split("\n")[:2]
    assert overflow[0] == "Set(HOTLINE_HOLD=)"
    fields = ",".join(
        rf"\$\{{FILTER\(0-9A-Za-z_,\$\{{{name}\}}\):0:64\}}"
        for name in ("HOTLINE_OVERFLOW", "HOTLINE_QUEUE_LEFT", "HOTLINE_DIALPLAN")
    )
    assert re.fullmatch(
        rf" same => n,AGI\(agi://127\.0\.0\.1:4600/[A-Za-z0-9_-]{{32,}}/overflow,{fields}\)", overflow[1]
    )
    fallback = extensions.split("(fallback)")[1]
    assert fallback.index("Answer()") < fallback.index("Playback(") < fallback.index("Record(")
    # the message's name has no number in it; the number (digits only) goes beside it, by FILE()
    assert "Set(message=/srv/hotline/var/spool/fallback/fb2-${EPOCH}-${UNIQUEID})" in fallback
    assert "Set(FILE(${message}.caller)=${FILTER(0-9,${CALLERID(num)})})" in fallback
    assert "Record(${message}.wav,3,120,k)" in fallback
    assert fallback.index("Set(FILE(") < fallback.index("Record(")
    assert "CALLERID" not in fallback.split("Record(")[1].split(")")[0]
    assert "[hotline-refuse]\nexten => _X.,1,Hangup(1)" in extensions  # other numbers: 404


def test_trunk_accepts_configured_peers_and_keeps_media() -> None:
    pjsip = render("sip: {port: 5070, trunk_peers: ['10.1.2.0/24', '127.0.0.1']}")["pjsip.conf"]
    assert "bind = 127.0.0.1:5070" in pjsip
    assert "match = 10.1.2.0/24" in pjsip
    assert "match = 127.0.0.1" in pjsip
    assert "direct_media = no" in pjsip


def _sections(pjsip: str) -> dict[tuple[str, str], str]:
    """pjsip.conf as {(name, type): body}."""
    found = {}
    for name, body in re.findall(r"^\[([^\]]+)\]\n(.*?)(?=^\[|\Z)", pjsip, re.M | re.S):
        kind = re.search(r"^type = (\w+)$", body, re.M)
        assert kind is not None, name
        found[(name, kind.group(1))] = body
    return found


SEATS_AND_TRUNKS = """
sip:
  trunks: {province: {host: 10.0.0.9, port: 5070, platform: province}}
seats:
  - {id: '1001', secret: 'a-long-secret'}
  - {id: '1002', contact: 'sip:1002@127.0.0.1:5099'}
  - {id: '1003', contact: 'sip:phone3.lan'}
  - {id: '1004', secret: 'another-secret', contact: 'sip:1004@10.0.0.4:5062'}
"""


def test_the_trunk_and_the_platform_links_are_known_by_address_only() -> None:
    sections = _sections(render(SEATS_AND_TRUNKS)["pjsip.conf"])
    # a From: <sip:trunk@…> (or province@…) names no endpoint: only the peers' addresses do
    assert "identify_by = ip\n" in sections[("trunk", "endpoint")]
    assert "identify_by = ip\n" in sections[("province", "endpoint")]
    assert ("province", "identify") not in sections  # only dialled; its calls come in on the trunk
    assert "match = 127.0.0.1/32" in sections[("trunk", "identify")]


def test_seats_are_known_by_their_password_or_their_contact_address() -> None:
    sections = _sections(render(SEATS_AND_TRUNKS)["pjsip.conf"])
    for with_secret in ("1001", "1004"):  # by user name, and always challenged
        endpoint = sections[(with_secret, "endpoint")]
        assert f"auth = seat-{with_secret}\n" in endpoint and "identify_by = username\n" in endpoint
        assert (with_secret, "identify") not in sections
    # no password: by the contact's address and port (5060 when it names none), never by name
    assert "identify_by = ip\n" in sections[("1002", "endpoint")]
    assert "auth" not in sections[("1002", "endpoint")]
    assert "match = 127.0.0.1:5099\n" in sections[("1002", "identify")]
    assert "match = phone3.lan:5060\n" in sections[("1003", "identify")]
    # Asterisk takes the first matching identify in name order: a seat's before the trunk's, so
    # the seat's own port on the trunk's address is the seat and every other port the trunk
    identifies = sorted(name for name, kind in sections if kind == "identify")
    assert identifies[-1] == "trunk"


def test_each_seat_kind_is_fenced_to_its_own_network() -> None:
    text = SEATS_AND_TRUNKS.replace("sip:\n", "sip:\n  seat_networks: ['10.0.5.0/24', '10.0.6.7']\n")
    text += "  - {id: '1005', secret: 'browser-secret', phone: browser}\n"
    text += "webrtc: {browser_networks: ['192.168.8.0/22']}\n"
    sections = _sections(render(text)["pjsip.conf"])
    fence = "deny = 0.0.0.0/0.0.0.0\ndeny = ::/0\n"
    for softphone in ("1001", "1004"):
        assert fence + "permit = 10.0.5.0/24\npermit = 10.0.6.7\n" in sections[(softphone, "endpoint")]
        assert "192.168.8.0" not in sections[(softphone, "endpoint")]
    browser = sections[("1005", "endpoint")]
    assert fence + "permit = 192.168.8.0/22\n" in browser and "10.0.5.0" not in browser
    # a seat at a fixed contact is already known by that address and port alone: no ACL needed
    assert "deny" not in sections[("1002", "endpoint")]
    # nothing configured: no ACL (from anywhere, as before)
    plain = _sections(render(SEATS_AND_TRUNKS)["pjsip.conf"])
    assert not any("deny =" in body for (_, kind), body in plain.items() if kind == "endpoint")


def test_seats_left_unfenced_beside_a_wss_listener_are_named() -> None:
    both = (
        "seats: [{id: '1001', secret: a-long-secret-1, phone: browser}, {id: '1002', secret: a-long-secret-2},"
        " {id: '1003', contact: 'sip:x@10.0.0.3'}]\n"
    )
    root = Path("/srv/hotline")
    assert unfenced_seats(parse_config(both, "config.yaml", root)) == ("1001", "1002")
    fenced = both + "sip: {seat_networks: [10.0.0.0/8]}\nwebrtc: {browser_networks: [10.1.0.0/16]}\n"
    assert unfenced_seats(parse_config(fenced, "config.yaml", root)) == ()
    # no WSS listener: nothing else to register on
    assert unfenced_seats(parse_config("seats: [{id: '1002', secret: a-long-secret-2}]", "config.yaml", root)) == ()


@pytest.mark.parametrize("network", ["10.0.0.0/8\npermit = 0.0.0.0/0", "10.0.0.0/33", "any", "10.0.0.0/8,0.0.0.0/0"])
def test_a_seat_network_that_is_not_one_is_refused(network: str) -> None:
    with pytest.raises(ConfigError, match="seat_networks"):
        render(f"sip: {{seat_networks: [{json.dumps(network)}]}}")
    with pytest.raises(ConfigError, match="browser_networks"):
        render(f"webrtc: {{browser_networks: [{json.dumps(network)}]}}")


@pytest.mark.parametrize("contact", ["sip:1002@", "sip:1002@host:0", "sip:1002@host:70000", "sip:a b@host"])
def test_a_contact_without_an_address_is_refused(contact: str) -> None:
    with pytest.raises(ConfigError, match="seats"):
        render(f"seats: [{{id: '1002', contact: '{contact}'}}]")


def test_directories_point_into_the_root_and_runtime() -> None:
    files = render("platform: {id: qujing, area_code: '0874'}")
    conf = files["asterisk.conf"]
    assert "astmoddir => /opt/ast/usr/lib/x86_64-linux-gnu/asterisk/modules" in conf
    assert "astspooldir => /srv/var/asterisk/spool" in conf
    assert "systemname = qujing" in conf
    assert "rtpstart = 10000" in files["rtp.conf"]
    assert "noload => res_ari.so" in files["modules.conf"]
    # needs res_stasis (not loaded): loading it only logged "failed to resolve dependencies"
    assert "noload => res_stasis_broadcast.so" in files["modules.conf"]


def test_written_files_keep_the_secret_private(tmp_path: Path) -> None:
    config = parse_config(f"paths: {{runtime_dir: {tmp_path}/var, spool_dir: {tmp_path}/spool}}", "c.yaml", tmp_path)
    layout = write_asterisk_config(config, tmp_path / "etc")
    assert (layout.etc_dir / "manager.conf").stat().st_mode & 0o077 == 0
    assert (tmp_path / "spool" / "fallback").is_dir()
    assert (tmp_path / "var" / "asterisk" / "run").is_dir()


def test_every_written_file_and_folder_is_private(tmp_path: Path) -> None:
    """pjsip.conf holds seat passwords, extensions.conf the AGI key; the spool callers' messages."""
    spool, var = tmp_path / "spool", tmp_path / "var"
    for folder in (spool, var):
        folder.mkdir(mode=0o755)  # as an earlier version left them
        folder.chmod(0o755)
    config = parse_config(
        f"paths: {{runtime_dir: {var}, spool_dir: {spool}}}\nseats: [{{id: '1001', secret: seat-password-1001}}]\n",
        "c.yaml",
        tmp_path,
    )
    layout = write_asterisk_config(config, tmp_path / "etc")
    written = [*layout.etc_dir.iterdir(), *var.rglob("*"), *spool.rglob("*")]
    assert len(written) > 20
    for path in [layout.etc_dir, var, spool, *written]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    assert "seat-password-1001" in (layout.etc_dir / "pjsip.conf").read_text()


def test_secrets_are_made_once_and_kept(tmp_path: Path) -> None:
    config = parse_config(f"paths: {{runtime_dir: {tmp_path}/var}}", "c.yaml", tmp_path)
    first = write_asterisk_config(config, tmp_path / "etc")
    manager = (first.etc_dir / "manager.conf").read_text()
    ami_secret = (tmp_path / "var" / "ami-secret").read_text().strip()
    agi_secret = (tmp_path / "var" / "agi-secret").read_text().strip()
    assert len(ami_secret) >= 32 and len(agi_secret) >= 32 and ami_secret != agi_secret
    assert f"secret = {ami_secret}\n" in manager
    assert f"AGI(agi://127.0.0.1:4573/{agi_secret}/ivr," in (first.etc_dir / "extensions.conf").read_text()
    write_asterisk_config(config, tmp_path / "etc")
    assert (first.etc_dir / "manager.conf").read_text() == manager  # the same secret next time


def test_configured_secrets_win(tmp_path: Path) -> None:
    config = parse_config(
        f"paths: {{runtime_dir: {tmp_path}/var}}\n"
        "asterisk: {ami_secret: my-own-ami-secret-123}\nagi: {secret: my-own-agi-key-12345}\n",
        "c.yaml",
        tmp_path,
    )
    layout = write_asterisk_config(config, tmp_path / "etc")
    assert "secret = my-own-ami-secret-123\n" in (layout.etc_dir / "manager.conf").read_text()
    assert "agi://127.0.0.1:4573/my-own-agi-key-12345/ivr" in (layout.etc_dir / "extensions.conf").read_text()
    assert not (tmp_path / "var" / "ami-secret").exists()


def test_area_header_off_and_unknown_areas_at_the_province() -> None:
    extensions = render("platform: {id: province, area_code: '0871'}\nsip: {area_header: ''}")["extensions.conf"]
    assert "exten => 12345,1,Goto(hotline-entry,s,1)" in extensions
    # no area header is read (only the hand-off token is, on the way into the IVR)
    reads = [line for line in extensions.splitlines() if "PJSIP_HEADER(read" in line]
    assert len(reads) == 1 and "/ivr," in reads[0] and "X-Hotline-Handoff" in reads[0], reads
    # nobody above the province: an area it does not route is answered there, never a 404
    assert "exten => _0XXX12345,1,Goto(hotline-entry,s,1)" in extensions


def test_an_answered_offer_runs_few_dialplan_steps_and_asks_again_with_a_clean_slate() -> None:
    """hotline-offer: each priority is a channel snapshot Asterisk publishes. The seat goes as the
    AGI's argument (acd/agi.py reads arg1), nothing is cleared before the first ask (a new channel
    has no answers), and asking again stops the last recording and forgets the last answer."""
    extensions = render("agi: {port: 4600}")["extensions.conf"]
    offer = extensions.split("[hotline-offer]\n")[1].split("\n[")[0]
    lines = [line for line in offer.splitlines() if not line.lstrip().startswith(";")]
    assert lines[0] == "exten => s,1(ask),Set(attempt=$[0${attempt} + 1])"  # unset counts as 0
    agi = r" same => n,AGI\(agi://127\.0\.0\.1:4600/[A-Za-z0-9_-]{32,}/seat,\$\{CHANNEL\(endpoint\)\}\)"
    assert re.fullmatch(agi, lines[2])
    answered = lines[: next(i for i, line in enumerate(lines) if "(none)" in line) + 1]
    assert len(answered) == 9  # ask, limit, AGI, record, callback?, caller?, Bridge, result, end
    assert not any("Set(HOTLINE_" in line or "StopMixMonitor" in line for line in answered)
    assert "GotoIf($[${attempt} > 3]?none)" in lines[1]
    assert 'GotoIf($["${BRIDGERESULT}" != "SUCCESS"]?again)' in answered[-2]
    again = lines[lines.index(" same => n(again),StopMixMonitor()") :]
    assert again[1:6] == [
        " same => n,Set(HOTLINE_CALLER=)",
        " same => n,Set(HOTLINE_DIAL=)",
        " same => n,Set(HOTLINE_RECORDING=)",
        " same => n,Set(HOTLINE_AFTER_SEAT=)",
        " same => n,Goto(ask)",
    ]
    # the recording, the callback and the seat-hangs-up-first route are where they were
    assert 'ExecIf($["${HOTLINE_RECORDING}" != ""]?MixMonitor(${HOTLINE_RECORDING},b))' in answered[3]
    after = '${IF($["${HOTLINE_AFTER_SEAT}" = "0"]?quiet:s)}'
    assert f"Bridge(${{HOTLINE_CALLER}},TF(hotline-after-seat^{after}^1))" in answered[6]
    assert " same => n(callback),Dial(${HOTLINE_DIAL},60,g)" in lines


def test_a_seat_waits_while_its_bound_caller_hears_its_announcement() -> None:
    """A caller hearing its announcement runs an AGI, out of its holding bridge: a seat's Bridge()
    would take it over by a masquerade (a "Surrogate/" channel). The caller marks the announcement
    on its channel (SHARED, which the seat reads without its channel driver); the seat waits while
    the mark is there and the caller exists, a bounded while, then 0.1 s for the caller to be back
    in its bridge; the answered path without an announcement keeps its steps (one GotoIf)."""
    extensions = render("agi: {port: 4600}\nacd: {announce_every_s: 30}")["extensions.conf"]
    hold = extensions.split("[hotline-hold]\n")[1].split("\n[")[0].splitlines()
    wait = next(i for i, line in enumerate(hold) if "(wait),BridgeWait(" in line)
    # unmarked on coming in (a mark left by max wait during an announcement, or by a masquerade)
    assert hold[:2] == [
        "exten => s,1,Set(SHARED(HOTLINE_ANNOUNCING)=)",
        " same => n,Set(TIMEOUT(absolute)=${HOTLINE_MAX_WAIT})",
    ]
    assert "S(30)" in hold[wait] and "?seated)" in hold[wait + 1]
    assert hold[wait + 2] == " same => n,Set(SHARED(HOTLINE_ANNOUNCING)=1)"
    assert re.fullmatch(r" same => n,AGI\(agi://127\.0\.0\.1:4600/[A-Za-z0-9_-]{32,}/announce\)", hold[wait + 3])
    assert hold[wait + 4 : wait + 6] == [" same => n,Set(SHARED(HOTLINE_ANNOUNCING)=)", " same => n,Goto(wait)"]
    offer = extensions.split("[hotline-offer]\n")[1].split("\n[")[0].splitlines()
    marked = "${SHARED(HOTLINE_ANNOUNCING,${HOTLINE_CALLER})}"
    assert f' same => n,GotoIf($["${{HOTLINE_CALLER}}" = ""]?none:${{IF($["{marked}" = "1"]?away:bridge)}})' in offer
    assert any(line.startswith(" same => n(bridge),Bridge(${HOTLINE_CALLER},") for line in offer)
    away = offer[next(i for i, line in enumerate(offer) if "n(away)," in line) :]
    assert away[:6] == [
        f' same => n(away),While($[${{CHANNEL_EXISTS(${{HOTLINE_CALLER}})}} & "{marked}" = "1"'
        f" & 0${{away_waits}} < {CALLER_AWAY_MAX_WAITS}])",
        " same => n,Set(away_waits=$[0${away_waits} + 1])",
        " same => n,Wait(0.1)",
        " same => n,EndWhile()",
        " same => n,Wait(0.1)",
        " same => n,Goto(bridge)",
    ]
    quiet = render("agi: {port: 4600}\nacd: {announce_every_s: 0}")["extensions.conf"]
    assert "HOTLINE_ANNOUNCING)=" not in quiet and "/announce)" not in quiet


def test_a_deep_runtime_folder_gets_a_short_private_run_folder(tmp_path: Path) -> None:
    """Asterisk's control socket must fit a unix socket address (108 bytes): under a deep runtime
    folder (pytest-xdist workers' temp folders) the run folder moves to a short private one, the
    same for every render of that folder, so ``asterisk -rx`` still reaches a restarted Asterisk."""
    deep = tmp_path / ("d" * 60) / "var"
    config = parse_config(f"paths: {{runtime_dir: {deep}, spool_dir: {tmp_path}/spool}}", "c.yaml", tmp_path)
    layout = write_asterisk_config(config, tmp_path / "etc")
    run = layout.run_dir
    try:
        assert run != layout.var_dir / "run" and len(str(run / CONTROL_SOCKET)) <= SUN_PATH_MAX
        assert f"astrundir => {run}\n" in (layout.etc_dir / "asterisk.conf").read_text(encoding="utf-8")
        assert run.is_dir() and run.stat().st_mode & 0o777 == 0o700
        assert write_asterisk_config(config, tmp_path / "etc").run_dir == run  # the same again
        shallow = parse_config(f"paths: {{runtime_dir: {tmp_path}/v}}", "c.yaml", tmp_path)
        assert write_asterisk_config(shallow, tmp_path / "etc2").run_dir == tmp_path / "v" / "asterisk" / "run"
    finally:
        run.rmdir()


def test_a_short_run_folder_someone_else_put_there_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    target.chmod(0o755)
    link = tmp_path / "run-link"
    link.symlink_to(target)
    with pytest.raises(ValueError, match="not a folder of this user"):
        private_run_dir(link)
    assert target.stat().st_mode & 0o777 == 0o755  # never chmod-ed through the link
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match="not a folder of this user"):
        private_run_dir(tmp_path / "a-file")


def test_a_talking_seat_has_no_transfer_key_until_a_consultation_rejoins_it() -> None:
    """Asterisk records no call: no DTMF hook on a talking channel (bridge_native_rtp.c would refuse
    native RTP): features.conf has no attended-transfer key; a consultation's start (ivr/rejoin.py)
    gives the seat's channel the one AMI Atxfer presses (ATXFER_CODE) and each side waits at its
    rejoin label, a while only, the seat in silence (no music into its recording); after that
    bridge the seat is done and the caller goes on to hotline-after-seat (at once from the
    after_rejoin label when its seat hung up meanwhile)."""
    files = render("agi: {port: 4600}\nrecordings: {enabled: false}")
    featuremap = files["features.conf"].split("[featuremap]")[1]
    assert re.search(r"^atxfer =$", featuremap, re.MULTILINE)
    assert "atxferthreeway = *3" in files["features.conf"] and "atxferabort = *1" in files["features.conf"]
    extensions = files["extensions.conf"]
    offer = extensions.split("[hotline-offer]")[1].split("\n[")[0]
    seat = offer.split("(rejoin),")[1].splitlines()
    assert seat[:4] == [
        f"Set(FEATUREMAP(atxfer)={ATXFER_CODE})",
        # nothing runs after this seat (the seat AGI's answer): the caller is told, as F told it
        ' same => n,ExecIf($["${HOTLINE_AFTER_SEAT}" = "0"]?Set(SHARED(HOTLINE_AFTER_SEAT,${HOTLINE_CALLER})=0))',
        f" same => n,BridgeWait(rejoin-${{UNIQUEID}},participant,e(s)S({REJOIN_WAIT_S}))",
        " same => n,Hangup()",
    ]
    hold = extensions.split("[hotline-hold]")[1].split("\n[")[0]
    caller = hold.split("(rejoin),")[1].splitlines()
    assert caller[:2] == [
        f"BridgeWait(rejoin-${{UNIQUEID}},participant,m(default)S({REJOIN_WAIT_S}))",
        ' same => n(after_rejoin),Goto(hotline-after-seat,${IF($["${SHARED(HOTLINE_AFTER_SEAT)}" = "0"]?quiet:s)},1)',
    ]


@pytest.mark.parametrize(
    ("recordings", "key"),
    [("", ATXFER_CODE), ("recordings: {enabled: true}", ATXFER_CODE), ("recordings: {enabled: false}", "")],
)
def test_where_asterisk_records_every_seat_has_the_transfer_key(recordings: str, key: str) -> None:
    """Recorded calls (the shipped default) stay off native RTP anyway (MixMonitor's audiohook):
    features.conf gives every seat's channel the key (Bridge()'s T installs it) and a
    consultation starts with Atxfer at once; unrecorded ones have none (the rejoin gives it)."""
    config = parse_config(f"agi: {{port: 4600}}\n{recordings}", "config.yaml", Path("/srv/hotline"))
    assert seat_transfer_key(config) is bool(key)
    featuremap = render(f"agi: {{port: 4600}}\n{recordings}")["features.conf"].split("[featuremap]")[1]
    assert re.search(rf"^atxfer ={' ' + key if key else ''}$", featuremap, re.MULTILINE)
    assert re.search(r"^blindxfer =$", featuremap, re.MULTILINE)  # never a blind-transfer key
