"""Render the Asterisk configuration of one platform from its ``AsteriskSite`` (telephony/site.py,
built from config.yaml by the app shell: hotline/asterisk_files.py).

Pure: values in, ``{filename: text}`` out; ``write_asterisk_files`` is the only I/O.
Administrators never hand-edit these files: they edit config.yaml (and the YAML dialplans).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from common.private_files import PRIVATE_FILE_MODE, private_dir
from telephony.dialplan_names import FALLBACK_QUEUE, FALLBACK_SPOOL, PEER_CONTEXT, SEAT_CONTEXT, TRUNK_CONTEXT
from telephony.extensions_conf import extensions_conf, features_conf
from telephony.site import AsteriskSite
from telephony.values import conf_value, unsafe_path_reason
from telephony.webrtc_cert import check_certificate, ensure_demo_certificate

# Modules we never want: other channel drivers, ARI/HTTP, CDR/CEL back-ends, old SIP stacks.
CONTROL_SOCKET = "asterisk.ctl"  # Asterisk's default name, in its run folder
SUN_PATH_MAX = 107  # a unix socket address: 108 bytes with the closing NUL

_NOLOAD_LIST = """
chan_iax2.so chan_unistim.so chan_motif.so chan_console.so chan_audiosocket.so chan_websocket.so
res_ari.so res_ari_applications.so res_ari_asterisk.so res_ari_bridges.so res_ari_channels.so
res_ari_device_states.so res_ari_endpoints.so res_ari_events.so res_ari_model.so
res_ari_playbacks.so res_ari_recordings.so res_ari_sounds.so app_stasis.so app_stasis_broadcast.so
res_stasis_answer.so res_stasis_device_state.so res_stasis_mailbox.so res_stasis_playback.so
res_stasis_recording.so res_stasis_snoop.so res_stasis_test.so res_stasis_broadcast.so res_http_websocket.so
res_pjsip_transport_websocket.so res_phoneprov.so res_pjsip_phoneprov_provider.so res_http_post.so
res_http_media_cache.so res_prometheus.so cdr_csv.so cdr_custom.so cdr_manager.so cdr_odbc.so
cdr_pgsql.so cdr_radius.so cdr_sqlite3_custom.so cdr_tds.so cdr_adaptive_odbc.so cel_custom.so
cel_manager.so cel_odbc.so cel_pgsql.so cel_radius.so cel_sqlite3_custom.so cel_tds.so
res_config_ldap.so res_config_pgsql.so res_config_odbc.so res_config_sqlite3.so res_config_curl.so
res_odbc.so res_odbc_transaction.so func_odbc.so res_calendar.so res_calendar_caldav.so
res_calendar_ews.so res_calendar_exchange.so res_calendar_icalendar.so res_hep.so res_hep_pjsip.so
res_hep_rtcp.so pbx_dundi.so pbx_lua.so pbx_ael.so pbx_realtime.so res_fax.so res_fax_spandsp.so
app_voicemail_odbc.so app_voicemail_imap.so app_jack.so app_festival.so res_pjsip_stir_shaken.so
res_stir_shaken.so res_smdi.so res_snmp.so res_xmpp.so chan_mobile.so app_mp3.so res_corosync.so
res_aeap.so res_speech_aeap.so res_geolocation.so res_pjsip_geolocation.so res_resolver_unbound.so
res_statsd.so res_pjsip_config_wizard.so res_rtp_multicast.so res_audiosocket.so res_parking.so
app_audiosocket.so chan_rtp.so res_websocket_client.so res_pjsip_notify.so app_agent_pool.so
app_confbridge.so app_page.so app_alarmreceiver.so app_amd.so app_followme.so app_voicemail.so
app_minivm.so res_clialiases.so res_adsi.so app_adsiprog.so app_getcpeid.so app_sms.so
app_morsecode.so app_zapateller.so app_dictate.so app_directory.so app_sla.so app_festival.so
"""
_NOLOAD = tuple(_NOLOAD_LIST.split())
# what browser phones need (seats[].phone: browser): loaded only then
_WEBRTC_MODULES = frozenset({"res_http_websocket.so", "res_pjsip_transport_websocket.so"})

# Every AMI action the controller sends, and the class Asterisk 22 checks for it (seen on the
# real thing: an action needs one of its classes; CoreShowChannels is system,call,reporting and
# `reporting` is the one that grants nothing else). tests/unit/test_asterisk_conf.py keeps this
# table in step with the code. Not granted: `command` (CLI, shell as Asterisk's user), `system`
# (GetConfig reads every secret, Reload, shutdown), `config` (rewrites files), `originate` is
# needed for offers, and Asterisk refuses Originate of System/Exec/AGI/SHELL without `system`.
AMI_ACTION_CLASSES: dict[str, str] = {
    "Login": "",
    "Logoff": "",
    "Ping": "",
    "Originate": "originate",  # acd/telephony.py: offers to seats
    "Hangup": "call",
    "Setvar": "call",
    "Redirect": "call",  # ivr/transfer.py
    "Atxfer": "call",  # ivr/consult.py
    "CancelAtxfer": "call",
    "Bridge": "call",  # ivr/rejoin.py: seat and caller together again as a consultation starts
    "PlayDTMF": "call",
    "CoreShowChannels": "reporting",  # resync after a (re)connect
    "Status": "call",  # ivr/rejoin.py: where the seat and its caller are while they are rejoined
    "Getvar": "call",  # ivr/links.py: DEVICE_STATE of a link to another platform
}
AMI_WRITE_CLASSES = ",".join(sorted({c for c in AMI_ACTION_CLASSES.values() if c}))
# the events the controller handles: Newchannel, Newstate, Hangup, BridgeEnter, OriginateResponse,
# AttendedTransfer (call); AgentConnect (agent: the fallback queue); UserEvent (user)
AMI_READ_CLASSES = "call,agent,user"
# with browser phones also ContactStatus (system: read only, it grants no action): a closed
# websocket removes the seat's contact (webphone/watch.py)
AMI_WEBRTC_READ = ",system"
# Every event a handler of the controller listens for (``ami.on_event(NAME, …)``): manager.conf
# filters at the source (``eventfilter``), so Asterisk never formats nor sends the many others of
# those classes (Newexten, VarSet, DialBegin, RTCP…, about 9 in 10 events of a call). A handler
# for an event not listed here would never hear it: tests/unit/test_asterisk_conf.py finds
# every on_event in the code and fails on a difference. Replies to actions (CoreShowChannel
# lists) are not events of the stream and are not filtered.
AMI_EVENTS: tuple[str, ...] = (
    "AgentConnect",  # calls/ami_bridge.py: the fallback queue's seat answered
    "AttendedTransfer",  # ivr/consult.py
    "BridgeEnter",  # acd/engine.py
    "Hangup",
    "Newchannel",
    "Newstate",  # calls/ami_bridge.py
    "OriginateResponse",  # acd, dialback, monitor, outbound
    "UserEvent",  # calls, dialback, ivr/consult.py
)
# … and, only where seats have browser phones (webphone/watch.py: a closed websocket)
AMI_WEBRTC_EVENTS: tuple[str, ...] = ("ContactStatus", "DeviceStateChange")
# Events of a call that no handler wants, switched off for every AMI session (manager.conf
# [general] ``disabledevents``). Neither ``read =`` nor ``eventfilter`` spares Asterisk any
# work: main/manager.c builds every event as soon as ANY session is connected
# (``any_manager_listeners``), whatever its classes; ``read`` only decides whether the finished
# event is queued to a session, ``eventfilter`` is matched later in that session's thread.
# ``disabledevents`` is checked before the event's text is assembled and queued (the channel's
# snapshot text of channel events is still built first: that part cannot be turned off while
# the controller is connected). Chosen from what a call on our path raises: dialplan steps and
# variables, AGI commands, dials, bridges, hold music, DTMF, RTCP reports, device states, the
# fallback queue's bookkeeping. Never one of AMI_EVENTS / AMI_WEBRTC_EVENTS (unit-tested).
AMI_DISABLED_EVENTS: tuple[str, ...] = (
    "AGIExecEnd",
    "AGIExecStart",
    "AgentCalled",
    "AgentComplete",
    "AgentDump",
    "AgentRingNoAnswer",
    "BridgeCreate",
    "BridgeDestroy",
    "BridgeLeave",
    "BridgeVideoSourceUpdate",
    "ChallengeSent",
    "DTMFBegin",
    "DTMFEnd",
    "DeviceStateChange",
    "DialBegin",
    "DialEnd",
    "DialState",
    "ExtensionStatus",
    "HangupHandlerPop",
    "HangupHandlerPush",
    "HangupHandlerRun",
    "HangupRequest",
    "Hold",
    "LocalBridge",
    "LocalOptimizationBegin",
    "LocalOptimizationEnd",
    "MusicOnHoldStart",
    "MusicOnHoldStop",
    "NewAccountCode",
    "NewCallerid",
    "NewConnectedLine",
    "Newexten",
    "QueueCallerAbandon",
    "QueueCallerJoin",
    "QueueCallerLeave",
    "QueueMemberStatus",
    "RTCPReceived",
    "RTCPSent",
    "SoftHangupRequest",
    "SuccessfulAuth",
    "Unhold",
    "VarSet",
)

# Stasis message types never even created (stasis.conf ``declined_message_types``): a declined
# type is NULL and its publishers return before building the message (res_agi's
# ast_channel_publish_cached_blob, rtp_engine's ast_rtp_publish_rtcp_message), so no snapshot
# lookup, no dispatch to every subscriber, no AMI text. Only types no loaded module routes on:
# AGI commands (one pair per command, only the manager formats them) and RTCP reports (the
# manager and res_hep_rtcp, not loaded). A channel type such as VarSet cannot be declined:
# main/manager_channels.c routes on it and AMI would fail to load.
STASIS_DECLINED_TYPES: tuple[str, ...] = (
    "agi_exec_start_type",
    "agi_exec_end_type",
    "ast_rtp_rtcp_sent_type",
    "ast_rtp_rtcp_received_type",
)


@dataclass(frozen=True)
class AsteriskLayout:
    """Where a managed Asterisk finds its code and keeps its state."""

    root: Path
    etc_dir: Path
    var_dir: Path

    @property
    def module_dir(self) -> Path:
        return self.root / "usr/lib/x86_64-linux-gnu/asterisk/modules"

    @property
    def data_dir(self) -> Path:
        return self.root / "usr/share/asterisk"

    @property
    def run_dir(self) -> Path:
        """Where Asterisk keeps its pid file and control socket (``asterisk -rx`` talks through
        it): ``<var>/run``, unless the socket's path would not fit a unix socket address (108
        bytes: a deep runtime folder — Asterisk binds the cut name, and after a restart finds it
        taken and never answers ``-rx``); then a short private folder named after the var folder."""
        natural = self.var_dir / "run"
        if len(os.fsencode(natural / CONTROL_SOCKET)) <= SUN_PATH_MAX:
            return natural
        digest = hashlib.sha256(os.fsencode(self.var_dir)).hexdigest()[:16]
        return Path("/tmp") / f"hotline12345-{os.getuid()}-{digest}"  # made and checked by private_run_dir


def private_run_dir(path: Path) -> None:
    """Make Asterisk's run folder, 0700. A short one in /tmp (``AsteriskLayout.run_dir``) must be
    our own real folder: another local user could have made it first, or put a link there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()  # not followed: a link is refused, never chmod-ed through
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ValueError(f"Asterisk's run folder {str(path)!r} is not a folder of this user")
    if info.st_mode & 0o777 != 0o700:
        path.chmod(0o700)


def default_asterisk_root() -> Path:
    """The cache folder scripts/provision-asterisk.sh fills by default."""
    import os

    explicit = os.environ.get("HOTLINE_ASTERISK_ROOT")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "hotline12345" / "asterisk-root"


def layout_for(site: AsteriskSite, etc_dir: Path) -> AsteriskLayout:
    """The layout for ``site``: code from the provisioned root, state under runtime_dir."""
    root = site.asterisk.root or default_asterisk_root()
    reason = unsafe_path_reason(root)  # config.yaml's folders are checked when it is loaded
    if reason:
        raise ValueError(f"the Asterisk root {str(root)!r} cannot go into asterisk.conf: {reason}")
    return AsteriskLayout(root=root, etc_dir=etc_dir, var_dir=site.runtime_dir / "asterisk")


def _asterisk_conf(site: AsteriskSite, layout: AsteriskLayout) -> str:
    var = layout.var_dir
    return f"""[directories]
astetcdir => {layout.etc_dir}
astmoddir => {layout.module_dir}
astvarlibdir => {var}/lib
astdbdir => {var}/lib
astkeydir => {var}/lib
astdatadir => {layout.data_dir}
astagidir => {var}/agi-bin
astspooldir => {var}/spool
astrundir => {layout.run_dir}
astlogdir => {var}/log
astsbindir => {layout.root}/usr/sbin

[options]
; the system name prefixes every channel's uniqueid, so call ids are unique across platforms
systemname = {site.platform_id}
verbose = {site.asterisk.verbose}
debug = 0
highpriority = no
transmit_silence = yes
defaultlanguage = en
documentation_language = en_US
hideconnect = yes
; dangerous functions and applications (SHELL, FILE writes …) never from AMI or AGI
live_dangerously = no
"""


def _modules_conf(site: AsteriskSite) -> str:
    skipped = _webrtc_modules_loaded(site)
    noload = "\n".join(f"noload => {name}" for name in _NOLOAD if name not in skipped)
    return f"[modules]\nautoload = yes\n{noload}\n"


def _webrtc_modules_loaded(site: AsteriskSite) -> frozenset[str]:
    return _WEBRTC_MODULES if site.browser_seats else frozenset()


def _http_conf(site: AsteriskSite) -> str:
    """Asterisk's HTTP server: off, or only its TLS listener for the browser phones' WSS
    (plain HTTP stays off; no static files, no status page; ARI is not loaded)."""
    if not site.browser_seats:
        return "[general]\nenabled = no\n"
    cert, key = site.webrtc_cert
    for path in (cert, key):
        reason = unsafe_path_reason(path)
        if reason:
            raise ValueError(f"the WSS certificate {str(path)!r} cannot go into http.conf: {reason}")
    web = site.webrtc
    return f"""[general]
enabled = no
enablestatic = no
servername = hotline12345
sessionlimit = 500
tlsenable = yes
tlsbindaddr = {web.bind_host}:{web.port}
tlscertfile = {cert}
tlsprivatekey = {key}
"""


def _loopback_permit(host: str) -> str:
    address = ipaddress.ip_address(host)
    return "127.0.0.1/255.255.255.255" if address.is_loopback else f"{address}/255.255.255.255"


def _event_filters(browser_seats: bool) -> str:
    names = AMI_EVENTS + (AMI_WEBRTC_EVENTS if browser_seats else ())
    return "\n".join(f"eventfilter(action(include),name({name})) =" for name in names)


def _disabled_events(browser_seats: bool) -> str:
    # comma-separated, no blanks: Asterisk matches each name exactly (ast_in_delimited_string)
    wanted = set(AMI_WEBRTC_EVENTS) if browser_seats else set()
    return ",".join(name for name in AMI_DISABLED_EVENTS if name not in wanted)


def _manager_conf(site: AsteriskSite, secret: str) -> str:
    ami = site.asterisk
    return f"""[general]
enabled = yes
bindaddr = {ami.ami_host}
port = {ami.ami_port}
displayconnects = no
timestampevents = yes
authtimeout = 5
authlimit = 20
; never assembled nor queued, for any session (AMI_DISABLED_EVENTS: no handler wants them)
disabledevents = {_disabled_events(bool(site.browser_seats))}

[{ami.ami_username}]
secret = {conf_value(secret)}
deny = 0.0.0.0/0.0.0.0
permit = {_loopback_permit(ami.ami_host)}
; only what the controller uses (telephony/asterisk_conf.py AMI_ACTION_CLASSES)
read = {AMI_READ_CLASSES}{AMI_WEBRTC_READ if site.browser_seats else ""}
write = {AMI_WRITE_CLASSES}
; only the events a handler of the controller listens for (AMI_EVENTS), matched by name (a hash)
{_event_filters(bool(site.browser_seats))}
; Asterisk drops a reader that blocks writes longer than this: give a busy controller slack.
writetimeout = 5000
"""


def _pjsip_conf(site: AsteriskSite) -> str:
    sip = site.sip
    matches = "\n".join(f"match = {peer}" for peer in sip.trunk_peers)
    return f"""[global]
type = global
user_agent = hotline12345
; Who sent a request. The trunk and the links to other platforms are known by address only
; (identify_by = ip); a seat with a password by its user name, and then it must answer the
; challenge (a softphone on the trunk's own address, loopback in the demo, is still its seat);
; a seat with a fixed contact and no password by that contact's address and port. Anything else
; (e.g. From: trunk from another address) matches no endpoint: 401, nothing reaches the dialplan.
; Callers' numbers (7+ digits) never name a seat (3-6 digits).
endpoint_identifier_order = username,ip

[transport-udp]
type = transport
protocol = udp
bind = {sip.bind_host}:{sip.port}

{_wss_transport(site)}[trunk]
type = endpoint
transport = transport-udp
context = {TRUNK_CONTEXT}
disallow = all
allow = ulaw,alaw
; media stays through Asterisk: recording and simple SIP peers need it
direct_media = no
; no re-INVITE/UPDATE just to show the other party's name: carriers and simple phones refuse it
send_connected_line = no
rtp_symmetric = yes
dtmf_mode = rfc4733
send_pai = yes
identify_by = ip

[trunk]
type = identify
endpoint = trunk
{matches}
{_outbound_trunks(site)}{_seats(site)}"""


def _endpoint(name: str, context: str, extra: str = "") -> str:
    """A PJSIP endpoint whose media stays through Asterisk (recording, simple peers)."""
    return f"""
[{name}]
type = endpoint
transport = transport-udp
context = {context}
disallow = all
allow = ulaw,alaw
direct_media = no
; no re-INVITE/UPDATE just to show the other party's name: carriers and simple phones refuse it
send_connected_line = no
rtp_symmetric = yes
dtmf_mode = rfc4733
{extra}aors = {name}
"""


def _wss_transport(site: AsteriskSite) -> str:
    # the browser phones' signalling: a websocket on Asterisk's HTTPS listener (http.conf), /ws;
    # behind NAT, the public address for browsers outside local_net (validated addresses/networks)
    if not site.browser_seats:
        return ""
    web = site.webrtc
    nat = "".join(f"local_net = {network}\n" for network in web.local_net)
    if web.external_media_address:
        nat += f"external_media_address = {web.external_media_address}\n"
    if web.external_signaling_address:
        nat += f"external_signaling_address = {web.external_signaling_address}\n"
    return f"[transport-wss]\ntype = transport\nprotocol = wss\nbind = 0.0.0.0\n{nat}\n"


# A browser phone: DTLS-SRTP, ICE, AVPF, rtcp-mux (webrtc = yes sets them); the media still goes
# through Asterisk (recording); u-law/a-law, which Chromium speaks, so nothing is transcoded.
# Its contact lives as long as its websocket: a closed socket removes it (the seat is unreachable).
_BROWSER_ENDPOINT = """
[{name}]
type = endpoint
transport = transport-wss
context = {context}
disallow = all
allow = ulaw,alaw
webrtc = yes
dtls_auto_generate_cert = yes
direct_media = no
send_connected_line = no
dtmf_mode = rfc4733
; a phone whose page vanished mid-call sends no media: its leg hangs up (the AOR's qualify
; usually notices first: webrtc.qualify_s)
rtp_timeout = 30
rtp_timeout_hold = 600
{extra}aors = {name}
"""


def _outbound_trunks(site: AsteriskSite) -> str:
    # Only ever dialled: no identify section, and never known by a From user name. Calls from
    # another platform come in on the trunk, by its address in sip.trunk_peers — or, on a
    # watched link, on that link's own incoming endpoint (below).
    blocks = []
    for name, trunk in site.sip.trunks.items():
        watch = _rtp_watch(trunk.rtp_timeout_every_s, trunk.rtp_keepalive_s)
        blocks.append(
            _endpoint(name, PEER_CONTEXT, "identify_by = ip\n" + watch)
            + f"\n[{name}]\ntype = aor\ncontact = sip:{trunk.host}:{trunk.port}\n"
            + _qualify(trunk.qualify_every_s)
            + (_incoming_link(name, trunk.host, trunk.port, watch) if watch and _peer(site, trunk.host) else "")
        )
    return "".join(blocks)


def _rtp_watch(timeout_s: int, keepalive_s: int) -> str:
    # a bridged call whose far side falls silent (a cut link) is hung up here after timeout_s;
    # this side's keepalive (comfort noise while its own party is silent) keeps the far side's
    # check from taking silence for a cut. Not on hold: a trunk leg is never held (MOH is local)
    if not timeout_s:
        return ""
    return f"rtp_timeout = {timeout_s}\nrtp_keepalive = {keepalive_s}\n"


def _peer(site: AsteriskSite, host: str) -> bool:
    """Whether ``host`` is an address ``sip.trunk_peers`` lets in (a host name: not known here)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(peer, strict=False) for peer in site.sip.trunk_peers)


def _incoming_link(name: str, host: str, port: int, watch: str) -> str:
    """Calls the peer at ``host:port`` (an address ``sip.trunk_peers`` already lets in) sends us:
    the carrier trunk's context and settings, plus the RTP watch (the carrier's ``trunk`` endpoint
    has none: a carrier may be silent). Its identify (``link-…``: no trunk name has a '-') sorts
    before ``trunk``'s, so it is tried first; matched with the peer's SIP port too (several
    platforms on one address in the demo)."""
    match = f"{ipaddress.IPv4Address(host)}:{port}"  # (trunk hosts are IPv4 or names)
    return f"""
[link-{name}]
type = endpoint
transport = transport-udp
context = {TRUNK_CONTEXT}
disallow = all
allow = ulaw,alaw
direct_media = no
send_connected_line = no
rtp_symmetric = yes
dtmf_mode = rfc4733
send_pai = yes
identify_by = ip
{watch}
[link-{name}]
type = identify
endpoint = link-{name}
match = {match}
"""


def _qualify(every_s: int) -> str:
    # an unanswered probe marks the contact Unreachable and the endpoint's device state
    # UNAVAILABLE: what the controller and the area routing read before dialling the link
    if not every_s:
        return ""
    return f"qualify_frequency = {every_s}\nqualify_timeout = {min(3.0, every_s / 2):g}\n"


def _seats(site: AsteriskSite) -> str:
    blocks = []
    for seat in site.seats:
        extra = f'callerid = "{seat.name or seat.id}" <{seat.id}>\n'
        if seat.secret:
            # known by its user name, and every request challenged: only its password makes it the seat
            extra += f"auth = seat-{seat.id}\nidentify_by = username\n"
            extra += _seat_acl(site.webrtc.browser_networks if seat.browser else site.sip.seat_networks)
        else:
            extra += "identify_by = ip\n"
        contact = f"contact = {seat.contact}\n" if seat.contact else "max_contacts = 1\nremove_existing = yes\n"
        if seat.browser:
            endpoint = _BROWSER_ENDPOINT.format(name=seat.id, context=SEAT_CONTEXT, extra=extra)
        else:
            endpoint = _endpoint(seat.id, SEAT_CONTEXT, extra)
        block = endpoint + f"\n[{seat.id}]\ntype = aor\n{contact}"
        if seat.browser:  # a page gone without closing its websocket: Unreachable within seconds
            block += _qualify(site.webrtc.qualify_s)
        if seat.secret:
            block += f"\n[seat-{seat.id}]\ntype = auth\nauth_type = userpass\n"
            block += f"username = {seat.id}\npassword = {conf_value(seat.secret)}\n"
        else:
            block += _seat_identify(seat.id, seat.contact_address)
        blocks.append(block)
    return "".join(blocks)


def _seat_acl(networks: tuple[str, ...]) -> str:
    """Where a seat known by its password may send from: PJSIP checks an endpoint's ACL on the
    request's source address before the challenge and answers 403. It is the only way to keep a
    SIP softphone's credentials off the browsers' WSS listener (and the browser seats' off UDP):
    PJSIP picks the endpoint by user name whatever the transport (an ``identify_by = transport``
    was added to Asterisk and withdrawn again for security reasons, asterisk/asterisk#672)."""
    if not networks:
        return ""
    permits = "".join(f"permit = {network}\n" for network in networks)
    return f"deny = 0.0.0.0/0.0.0.0\ndeny = ::/0\n{permits}"


def _seat_identify(seat_id: str, address: tuple[str, int] | None) -> str:
    """A seat with a fixed contact and no password: requests from that address and port are it.

    Asterisk tries identify sections in the order of their names and takes the first that
    matches: a seat's (digits) comes before the trunk's (``trunk``), so a phone on the trunk's
    own address (loopback, in tests and the demo) is its seat, while every other port of that
    address is still the trunk."""
    if address is None:  # SeatConfig refuses such a seat; never render a match-all
        raise ValueError(f"seat {seat_id}: a fixed contact without an address")
    host, port = address
    return f"\n[{seat_id}]\ntype = identify\nendpoint = {seat_id}\nmatch = {host}:{port}\n"


def _queues_conf(site: AsteriskSite) -> str:
    # Only the fallback route's queue: every seat, static, so it works with the controller down.
    # Normal distribution is our own ACD (acd/engine.py), not app_queue.
    members = "".join(f"member => PJSIP/{seat.id},0,{seat.id}\n" for seat in site.seats)
    return (
        "[general]\npersistentmembers = no\nshared_lastcall = yes\n\n"
        f"[{FALLBACK_QUEUE}]\nstrategy = ringall\ntimeout = 20\nretry = 1\nringinuse = no\n"
        "musicclass = default\nsetinterfacevar = yes\nsetqueueentryvar = yes\njoinempty = unavailable,invalid\n"
        f"leavewhenempty = unavailable,invalid\n{members}"
    )


def _rtp_conf(site: AsteriskSite) -> str:
    return f"[general]\nrtpstart = {site.sip.rtp_port_min}\nrtpend = {site.sip.rtp_port_max}\n"


_INDICATIONS = """[general]
country = cn
[cn]
description = China
ringcadence = 1000,4000
dial = 450
busy = 450/350,0/350
ring = 450/1000,0/4000
congestion = 450/700,0/700
callwaiting = 450/400,0/4000
dialrecall = 450/100,0/100
record = 950/400,0/10000
info = 450/100,0/100,450/100,0/100,450/100,0/100,450/400,0/400
"""


def _simple_files(site: AsteriskSite, layout: AsteriskLayout) -> dict[str, str]:
    moh = layout.data_dir / "moh"
    return {
        "logger.conf": (
            "[general]\ndateformat = %F %T.%3q\n[logfiles]\nconsole => notice,warning,error\n"
            # verbose at Asterisk's own level (asterisk.verbose; `core set verbose` changes it live)
            "messages.log => notice,warning,error,verbose\n"
        ),
        "musiconhold.conf": f"[default]\nmode = files\ndirectory = {moh}\nsort = random\n",
        "cdr.conf": "[general]\nenable = no\n",
        "cel.conf": "[general]\nenable = no\n",
        "features.conf": features_conf(site.transfers, transfer_key=site.seat_transfer_key),
        "indications.conf": _INDICATIONS,
        "ccss.conf": "[general]\n",
        "acl.conf": "",
        "udptl.conf": "[general]\n",
        "res_stun_monitor.conf": "[general]\n",
        "cli.conf": "[startup_commands]\n",
        "stasis.conf": "[declined_message_types]\n" + "".join(f"decline = {t}\n" for t in STASIS_DECLINED_TYPES),
        "pjproject.conf": "[log_mappings]\ntype = log_mappings\nasterisk_error = 0\nasterisk_warning = 2\n",
    }


class AsteriskSecrets(Protocol):
    """What Asterisk's files and the controller must agree on (hotline/local_secrets.py)."""

    @property
    def ami_secret(self) -> str: ...

    @property
    def agi_secret(self) -> str: ...


def render_asterisk_files(site: AsteriskSite, layout: AsteriskLayout, secrets: AsteriskSecrets) -> dict[str, str]:
    """Every file Asterisk reads, as ``{name: text}``."""
    files = {
        "asterisk.conf": _asterisk_conf(site, layout),
        "modules.conf": _modules_conf(site),
        "manager.conf": _manager_conf(site, secrets.ami_secret),
        "pjsip.conf": _pjsip_conf(site),
        "rtp.conf": _rtp_conf(site),
        "extensions.conf": extensions_conf(site, secrets.agi_secret),
        "queues.conf": _queues_conf(site),
        "http.conf": _http_conf(site),
    }
    files.update(_simple_files(site, layout))
    return files


def write_asterisk_files(site: AsteriskSite, layout: AsteriskLayout, secrets: AsteriskSecrets) -> None:
    """Render into ``layout.etc_dir`` and create the state folders.

    Secrets (seat passwords, the AMI secret, the AGI key) and callers' data (messages,
    recordings, Asterisk's logs) are their owner's alone: files 0600, folders 0700."""
    if site.browser_seats and site.webrtc.cert_file is not None:
        check_certificate(*site.webrtc_cert)  # before any file is written: nothing half-saved
    etc_dir = layout.etc_dir
    private_dir(etc_dir)
    for name, text in render_asterisk_files(site, layout, secrets).items():
        target = etc_dir / name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        target.chmod(PRIVATE_FILE_MODE)  # a file from an earlier version may have been 0644
    private_dir(site.runtime_dir)
    if site.browser_seats and site.webrtc.cert_file is None:
        cert, key = site.webrtc_cert
        ensure_demo_certificate(cert, key, site.webrtc.public_host or site.webrtc.bind_host)
    for sub in ("", "lib", "lib/keys", "agi-bin", "spool", "log"):
        private_dir(layout.var_dir / sub)
    private_run_dir(layout.run_dir)
    # the spool's own folders (voicemail, recordings) are made later under the umask 077 of the
    # controller and of the Asterisk it runs; a spool of 0700 keeps older ones out of reach too
    private_dir(site.spool_dir)
    private_dir(site.spool_dir / FALLBACK_SPOOL)
