"""Render the Asterisk configuration of one platform from our Config.

Pure: values in, ``{filename: text}`` out; ``write_asterisk_config`` is the only I/O.
Administrators never hand-edit these files: they edit config.yaml (and the YAML dialplans).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from hotline.config import Config

# Contexts and channel variables shared by the dialplan below and the controller.
TRUNK_CONTEXT = "from-trunk"
ENTRY_CONTEXT = "hotline-entry"
IVR_DONE_VARIABLE = "HOTLINE_IVR_DONE"
PLATFORM_VARIABLE = "HOTLINE_PLATFORM"
FALLBACK_SPOOL = "fallback"
AGI_IVR_SCRIPT = "ivr"
SEAT_CONTEXT = "hotline-seat"
FALLBACK_QUEUE = "hotline-fallback"
PEER_CONTEXT = "hotline-peer"
HOTLINE_NUMBER = "12345"
PROVINCE_PLATFORM = "province"  # the provincial platform's id (dialplans/province.yaml)
ROUTE_CONTEXT = "hotline-route"
ROUTE_VARIABLE = "HOTLINE_ROUTE"  # the trunk a caller of another area is sent to
ROUTED_EVENT = "HotlineRouted"  # UserEvent: the caller was answered by the platform of their area
HANDOFF_VARIABLE = "HOTLINE_HANDOFF"  # the hand-off token a transfer to another platform carries
HANDOFF_HEADER = "X-Hotline-Handoff"
PREDIAL_CONTEXT = "hotline-predial"  # runs on a transfer's new leg before it is dialled
TRANSFER_CONTEXT = "hotline-transfer"  # a seat's transfer (API): the caller is redirected here
TRANSFER_DIAL_VARIABLE = "HOTLINE_TRANSFER_DIAL"
TRANSFERRED_EVENT = "HotlineTransferred"
AGI_TRANSFER_FAILED_SCRIPT = "transfer-failed"
# a seat's consultation (attended / three-way transfer, ivr/consult.py): Asterisk's Atxfer dials
# CONSULT_EXTEN@CONSULT_CONTEXT, which dials what CONSULT_DIAL_VARIABLE says
CONSULT_CONTEXT = "hotline-consult"
CONSULT_EXTEN = "1"
CONSULT_DIAL_VARIABLE = "HOTLINE_CONSULT_DIAL"
CONSULT_CALLER_VARIABLE = "HOTLINE_CONSULT_CALLER"  # the citizen's number, shown to the other side
CONSULT_CALL_VARIABLE = "HOTLINE_CONSULT_OF"  # the call id the consultation is about
CONSULT_ANSWERED_EVENT = "HotlineConsultAnswered"
CONSULT_ENDED_EVENT = "HotlineConsultEnded"  # the consultation leg ended (Status: its DIALSTATUS)
# SHARED() on the caller's channel: "1" from a consultation's start until the other side
# answers or the seat is back with the caller. Still "1" when the caller leaves the seat's
# bridge: the seat hung up while the other side rang and nobody answered (Asterisk's "blond"
# transfer failed), so the caller goes to the dialplan's transfer_failed node, never dropped.
CONSULTING_VARIABLE = "HOTLINE_CONSULTING"
CONSULT_CALLER_CHANNEL_VARIABLE = "HOTLINE_CONSULT_CALLER_CHANNEL"
CONSULT_SEAT_CHANNEL_VARIABLE = "HOTLINE_CONSULT_SEAT_CHANNEL"
TRANSFER_STATUS_VARIABLE = "HOTLINE_TRANSFER_STATUS"  # why the transfer failed, when not DIALSTATUS
THREE_WAY_CODE = "*3"  # features.conf atxferthreeway
# our ACD (acd/engine.py): callers wait in HOLD_CONTEXT, seats are rung into OFFER_CONTEXT
HOLD_CONTEXT = "hotline-hold"
OFFER_CONTEXT = "hotline-offer"
HOLD_VARIABLE = "HOTLINE_HOLD"  # set by the IVR's queue node: after the AGI, wait for a seat
MAX_WAIT_VARIABLE = "HOTLINE_MAX_WAIT"
OVERFLOW_VARIABLE = "HOTLINE_OVERFLOW"  # the dialplan node a caller goes to after max wait
SEATED_VARIABLE = "HOTLINE_SEATED"  # set when a seat is bound: after the talk, the caller is done
LEFT_VARIABLE = "HOTLINE_QUEUE_LEFT"  # why a caller left the queue early ("leaveempty")
OFFER_VARIABLE = "HOTLINE_OFFER"  # on a seat's channel: which offer it answered
CALLER_VARIABLE = "HOTLINE_CALLER"  # set by the seat AGI: the caller channel to bridge to
RECORDING_VARIABLE = "HOTLINE_RECORDING"
DIAL_VARIABLE = "HOTLINE_DIAL"  # set by the seat AGI for a callback: the caller's number to dial
AGI_ANNOUNCE_SCRIPT = "announce"
AGI_OVERFLOW_SCRIPT = "overflow"
AGI_SEAT_SCRIPT = "seat"
AGI_FEATURE_SCRIPT = "feature"
AGI_CALLBACK_DONE_SCRIPT = "callback-done"
FEATURE_CODES = {"*21": "login", "*22": "logout", "*23": "pause", "*24": "ready"}

# Modules we never want: other channel drivers, ARI/HTTP, CDR/CEL back-ends, old SIP stacks.
_NOLOAD_LIST = """
chan_iax2.so chan_unistim.so chan_motif.so chan_console.so chan_audiosocket.so chan_websocket.so
res_ari.so res_ari_applications.so res_ari_asterisk.so res_ari_bridges.so res_ari_channels.so
res_ari_device_states.so res_ari_endpoints.so res_ari_events.so res_ari_model.so
res_ari_playbacks.so res_ari_recordings.so res_ari_sounds.so app_stasis.so app_stasis_broadcast.so
res_stasis_answer.so res_stasis_device_state.so res_stasis_mailbox.so res_stasis_playback.so
res_stasis_recording.so res_stasis_snoop.so res_stasis_test.so res_http_websocket.so
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


def default_asterisk_root() -> Path:
    """The cache folder scripts/provision-asterisk.sh fills by default."""
    import os

    explicit = os.environ.get("HOTLINE_ASTERISK_ROOT")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "hotline12345" / "asterisk-root"


def layout_for(config: Config, etc_dir: Path) -> AsteriskLayout:
    """The layout for ``config``: code from the provisioned root, state under runtime_dir."""
    root = config.asterisk.root or default_asterisk_root()
    return AsteriskLayout(root=root, etc_dir=etc_dir, var_dir=config.paths.runtime_dir / "asterisk")


def prompt_path(config: Config, name: str) -> Path:
    """Where the built prompt ``name`` lives, without extension (as Playback wants it)."""
    return config.paths.runtime_dir / "prompts" / name


def ivr_prompts_dir(config: Config) -> Path:
    """Where the dialplan's prompts are built (apart from the fallback route's own)."""
    return config.paths.runtime_dir / "prompts" / "ivr"


def _asterisk_conf(config: Config, layout: AsteriskLayout) -> str:
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
astrundir => {var}/run
astlogdir => {var}/log
astsbindir => {layout.root}/usr/sbin

[options]
; the system name prefixes every channel's uniqueid, so call ids are unique across platforms
systemname = {config.platform.id}
verbose = 3
debug = 0
highpriority = no
transmit_silence = yes
defaultlanguage = en
documentation_language = en_US
hideconnect = yes
"""


def _modules_conf() -> str:
    noload = "\n".join(f"noload => {name}" for name in _NOLOAD)
    return f"[modules]\nautoload = yes\n{noload}\n"


def _loopback_permit(host: str) -> str:
    address = ipaddress.ip_address(host)
    return "127.0.0.1/255.255.255.255" if address.is_loopback else f"{address}/255.255.255.255"


def _manager_conf(config: Config) -> str:
    ami = config.asterisk
    return f"""[general]
enabled = yes
bindaddr = {ami.ami_host}
port = {ami.ami_port}
displayconnects = no
timestampevents = yes
authtimeout = 5
authlimit = 20

[{ami.ami_username}]
secret = {ami.ami_secret}
deny = 0.0.0.0/0.0.0.0
permit = {_loopback_permit(ami.ami_host)}
read = system,call,agent,user,config,dtmf,reporting,cdr,dialplan,originate
write = system,call,agent,user,config,command,reporting,originate
; Asterisk drops a reader that blocks writes longer than this: give a busy controller slack.
writetimeout = 5000
"""


def _pjsip_conf(config: Config) -> str:
    sip = config.sip
    matches = "\n".join(f"match = {peer}" for peer in sip.trunk_peers)
    return f"""[global]
type = global
user_agent = hotline12345
; seats are known by their user name first, so a softphone on the trunk's own network (or on
; loopback, in the demo) is not taken for the carrier; callers' numbers (7+ digits) never match a
; seat id (3-6 digits), so they fall through to the trunk's IP match
endpoint_identifier_order = username,ip

[transport-udp]
type = transport
protocol = udp
bind = {sip.bind_host}:{sip.port}

[trunk]
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

[trunk]
type = identify
endpoint = trunk
{matches}
{_outbound_trunks(config)}{_seats(config)}"""


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


def _outbound_trunks(config: Config) -> str:
    blocks = []
    for name, trunk in config.sip.trunks.items():
        blocks.append(
            _endpoint(name, PEER_CONTEXT) + f"\n[{name}]\ntype = aor\ncontact = sip:{trunk.host}:{trunk.port}\n"
        )
    return "".join(blocks)


def _seats(config: Config) -> str:
    blocks = []
    for seat in config.seats:
        extra = f'callerid = "{seat.name or seat.id}" <{seat.id}>\n'
        if seat.secret:
            extra += f"auth = seat-{seat.id}\n"
        contact = f"contact = {seat.contact}\n" if seat.contact else "max_contacts = 1\nremove_existing = yes\n"
        block = _endpoint(seat.id, SEAT_CONTEXT, extra) + f"\n[{seat.id}]\ntype = aor\n{contact}"
        if seat.secret:
            block += f"\n[seat-{seat.id}]\ntype = auth\nauth_type = userpass\n"
            block += f"username = {seat.id}\npassword = {seat.secret}\n"
        blocks.append(block)
    return "".join(blocks)


def _queues_conf(config: Config) -> str:
    # Only the fallback route's queue: every seat, static, so it works with the controller down.
    # Normal distribution is our own ACD (acd/engine.py), not app_queue.
    members = "".join(f"member => PJSIP/{seat.id},0,{seat.id}\n" for seat in config.seats)
    return (
        "[general]\npersistentmembers = no\nshared_lastcall = yes\n\n"
        f"[{FALLBACK_QUEUE}]\nstrategy = ringall\ntimeout = 20\nretry = 1\nringinuse = no\n"
        "musicclass = default\nsetinterfacevar = yes\njoinempty = unavailable,invalid\n"
        f"leavewhenempty = unavailable,invalid\n{members}"
    )


def _rtp_conf(config: Config) -> str:
    return f"[general]\nrtpstart = {config.sip.rtp_port_min}\nrtpend = {config.sip.rtp_port_max}\n"


def _trunk_entries(config: Config) -> str:
    """What the trunk's numbers do: ours go to the IVR; ``<area code>12345`` of an area another
    platform serves goes there; an unknown area code goes to the province (from a prefecture)
    or is answered here (at the province). Plain 12345 with the area in ``sip.area_header`` is
    routed as ``<area>12345``."""
    own = config.platform
    routes = {
        trunk.area_code: name
        for name, trunk in config.sip.trunks.items()
        if trunk.area_code and trunk.platform != own.id
    }
    lines = []
    header = config.sip.area_header
    if header:
        # digits only (no dialplan tricks through a header); a value with no route is answered here
        routed = f"${{area}}{HOTLINE_NUMBER}"
        lines += [
            f"exten => {HOTLINE_NUMBER},1,Set(area=${{FILTER(0-9,${{PJSIP_HEADER(read,{header})}})}})",
            f' same => n,GotoIf($["${{area}}" != "" & ${{DIALPLAN_EXISTS({TRUNK_CONTEXT},{routed},1)}}]?{routed},1)',
            f" same => n,Goto({ENTRY_CONTEXT},s,1)",
        ]
    else:
        lines.append(f"exten => {HOTLINE_NUMBER},1,Goto({ENTRY_CONTEXT},s,1)")
    if own.area_code not in routes:
        for prefix in (own.area_code, own.area_code[1:]):
            lines.append(f"exten => {prefix}{HOTLINE_NUMBER},1,Goto({ENTRY_CONTEXT},s,1)")
    for area_code, trunk in sorted(routes.items()):
        for prefix in (area_code, area_code[1:]):
            lines.append(f"exten => {prefix}{HOTLINE_NUMBER},1,Set({ROUTE_VARIABLE}={trunk})")
            lines.append(f" same => n,Goto({ROUTE_CONTEXT},{area_code}{HOTLINE_NUMBER},1)")
    province = next((n for n, t in config.sip.trunks.items() if t.platform == PROVINCE_PLATFORM), None)
    for pattern in ("_0XX", "_0XXX"):
        if province and own.id != PROVINCE_PLATFORM:
            lines.append(f"exten => {pattern}{HOTLINE_NUMBER},1,Set({ROUTE_VARIABLE}={province})")
            lines.append(f" same => n,Goto({ROUTE_CONTEXT},${{EXTEN}},1)")
        else:  # no platform above this one: an area nobody serves is answered here
            lines.append(f"exten => {pattern}{HOTLINE_NUMBER},1,Goto({ENTRY_CONTEXT},s,1)")
    return "\n".join(lines)


def _extensions_conf(config: Config) -> str:
    platform = config.platform
    agi = config.agi
    fallback_dir = config.paths.spool_dir / FALLBACK_SPOOL
    entries = _trunk_entries(config)
    # The file name carries what the controller needs to rebuild the record of a call it never
    # saw: start time, the caller's digits (filtered: no path tricks) and the uniqueid.
    # calls/fallback.py parses it; keep the two in step.
    fallback_file = f"{fallback_dir}/fb-${{EPOCH}}-${{FILTER(0-9,${{CALLERID(num)}})}}-${{UNIQUEID}}.wav"
    agi_url = f"agi://{agi.host}:{agi.port}"
    consult_ring = config.transfers.consult_ring_s
    consult_over = f"Set(SHARED({CONSULTING_VARIABLE},${{{CONSULT_CALLER_CHANNEL_VARIABLE}}})=)"
    every = config.acd.announce_every_s
    # announcements: the music stops every few seconds for the controller to say the position
    hold_slice = every if every else 3600
    announce = f"AGI({agi_url}/{AGI_ANNOUNCE_SCRIPT})" if every else "NoOp(no announcements)"
    features = "\n".join(
        f"exten => {code},1,AGI({agi_url}/{AGI_FEATURE_SCRIPT}?action={action})"
        for code, action in FEATURE_CODES.items()
    )
    features += f"\nexten => _*23X.,1,AGI({agi_url}/{AGI_FEATURE_SCRIPT}?action=pause&reason=${{EXTEN:3}})"
    return f"""[general]
static = yes
writeprotect = yes
clearglobalvars = yes

[globals]
{PLATFORM_VARIABLE} = {platform.id}

[{TRUNK_CONTEXT}]
{entries}
; anything else on the trunk is not ours: SIP 404
exten => _X.,1,Hangup(1)
exten => i,1,Hangup(1)

; calls from seats: feature codes (*23 then digits: pause with that reason code)
[{SEAT_CONTEXT}]
{features}
exten => _X.,1,Hangup(21)

[{PEER_CONTEXT}]
exten => _X.,1,Hangup(21)

[{ENTRY_CONTEXT}]
exten => s,1,Set(__{PLATFORM_VARIABLE}={platform.id})
 same => n,AGI({agi_url}/{AGI_IVR_SCRIPT})
 same => n,GotoIf($["${{{IVR_DONE_VARIABLE}}}" = "1"]?done)
 same => n,GotoIf($["${{{HOLD_VARIABLE}}}" = "1"]?{HOLD_CONTEXT},s,1)
 ; a seat already talked with this caller (the controller died during the call): done, no voicemail
 same => n,GotoIf($["${{MEMBERINTERFACE}}" != ""]?done)
 ; Fallback: the controller is unreachable or failed this call. Never dead air, never a lost
 ; caller: answer, ring every configured seat (a static queue that needs no controller), and
 ; if nobody answers keep a message in the spool for the controller to pick up.
 same => n(fallback),Answer()
 same => n,Playback({prompt_path(config, "fallback_hold")})
 same => n,Queue({FALLBACK_QUEUE},,,,{config.acd.fallback_wait_s})
 same => n,Playback({prompt_path(config, "fallback")})
 same => n,Record({fallback_file},3,120,k)
 same => n,Playback({prompt_path(config, "goodbye")})
 same => n(done),Hangup()

; A caller of another area (属地接听): answered by their own platform; if it cannot take the
; call (down, all trunks busy), answered here
[{ROUTE_CONTEXT}]
exten => _X.,1,Dial(PJSIP/${{EXTEN}}@${{{ROUTE_VARIABLE}}},15)
 same => n,GotoIf($["${{DIALSTATUS}}" = "ANSWER"]?done)
 same => n,Goto({ENTRY_CONTEXT},s,1)
 same => n(done),Hangup()
; (the caller's hang-up ends the Dial: only the h extension still runs to tell the controller)
exten => h,1,ExecIf($["${{DIALSTATUS}}" = "ANSWER"]?UserEvent({ROUTED_EVENT},Trunk: ${{{ROUTE_VARIABLE}}}))

; the new leg of a transfer to another platform carries the case's token in a SIP header
[{PREDIAL_CONTEXT}]
exten => s,1,ExecIf($["${{{HANDOFF_VARIABLE}}}" != ""]?Set(PJSIP_HEADER(add,{HANDOFF_HEADER})=${{{HANDOFF_VARIABLE}}}))
 same => n,Return()

; A seat's transfer (POST /api/v1/calls/{{id}}/transfer): the caller is redirected here out of
; the seat's bridge. Answered: done. Not: the dialplan's transfer_failed node, or the fallback.
[{TRANSFER_CONTEXT}]
exten => s,1,Dial(${{{TRANSFER_DIAL_VARIABLE}}},{config.transfers.ring_s},b({PREDIAL_CONTEXT}^s^1))
 same => n,GotoIf($["${{DIALSTATUS}}" = "ANSWER"]?done)
 same => n(failed),AGI({agi_url}/{AGI_TRANSFER_FAILED_SCRIPT})
 same => n,GotoIf($["${{{IVR_DONE_VARIABLE}}}" = "1"]?done)
 same => n,Goto({ENTRY_CONTEXT},s,fallback)
 same => n(done),Hangup()
exten => h,1,ExecIf($["${{DIALSTATUS}}" = "ANSWER"]?UserEvent({TRANSFERRED_EVENT},To: ${{{TRANSFER_DIAL_VARIABLE}}}))

; A seat's consultation (Atxfer on the seat's channel): the other side sees the citizen's number
; and, for another platform, gets the case's token; on answer the controller hears of it
; (a three-way consultation joins the caller then)
[{CONSULT_CONTEXT}]
exten => {CONSULT_EXTEN},1,Set(CALLERID(num)=${{{CONSULT_CALLER_VARIABLE}}})
 same => n,Dial(${{{CONSULT_DIAL_VARIABLE}}},{consult_ring},b({PREDIAL_CONTEXT}^s^1)U({CONSULT_CONTEXT}-answered))
 same => n,Hangup()
; not answered, or the other side hung up while consulted: if the seat is still there, Asterisk
; returns it to its caller (the caller no longer waits on the consultation)
exten => h,1,ExecIf($[${{CHANNEL_EXISTS(${{{CONSULT_SEAT_CHANNEL_VARIABLE}}})}}]?{consult_over})
 same => n,UserEvent({CONSULT_ENDED_EVENT},Call: ${{{CONSULT_CALL_VARIABLE}}},Status: ${{DIALSTATUS}})
[{CONSULT_CONTEXT}-answered]
exten => s,1,{consult_over}
 same => n,UserEvent({CONSULT_ANSWERED_EVENT},Call: ${{{CONSULT_CALL_VARIABLE}}})
 same => n,Return()

; A caller waiting for a seat. Asterisk holds the call: the controller may die and come back
; (it finds its callers again), and max wait is Asterisk's own timer (TIMEOUT(absolute)).
; The caller waits in a holding bridge (music, alone): a seat that answers moves it into its own
; bridge with Bridge() (hotline-offer). A channel in a bridge is moved, never taken over by a
; masquerade, which under heavy load could leave a "Surrogate" channel behind for good.
[{HOLD_CONTEXT}]
exten => s,1,Set(TIMEOUT(absolute)=${{{MAX_WAIT_VARIABLE}}})
 same => n(wait),BridgeWait({HOLD_CONTEXT},participant,m(default)S({hold_slice}))
 same => n,GotoIf($["${{{SEATED_VARIABLE}}}" = "1"]?seated)
 same => n,{announce}
 same => n,Goto(wait)
 ; after the seat: done, unless a consultation the seat left while it rang was never answered
 same => n(seated),GotoIf($["${{SHARED({CONSULTING_VARIABLE})}}" != "1"]?over)
 same => n,Set({TRANSFER_STATUS_VARIABLE}=consult_not_answered)
 same => n,Goto({TRANSFER_CONTEXT},s,failed)
 same => n(over),Hangup()
; max wait: the dialplan's overflow node, or the fallback route if the controller is away
exten => T,1,AGI({agi_url}/{AGI_OVERFLOW_SCRIPT})
 same => n,GotoIf($["${{{IVR_DONE_VARIABLE}}}" = "1"]?{ENTRY_CONTEXT},s,done)
 same => n,Goto({ENTRY_CONTEXT},s,fallback)

; A seat's phone answered an offer: the controller names the caller (late binding: the
; longest-waiting eligible caller still there), the call is recorded and bridged. If that
; caller vanished in between, ask again; with no caller (or no controller) the seat is released.
; x: when the talk ends the caller is hung up (not sent back to the hold music).
; T: the seat's channel may transfer (features.conf): the API's attended / three-way transfers.
[{OFFER_CONTEXT}]
exten => s,1,Set(attempt=0)
 same => n(ask),Set(attempt=$[${{attempt}} + 1])
 ; asking again (the caller bound last time left before the bridge): stop that recording, so
 ; the next conversation never lands in another caller's file
 same => n,ExecIf($[${{attempt}} > 1]?StopMixMonitor())
 same => n,GotoIf($[${{attempt}} > 3]?none)
 same => n,Set({CALLER_VARIABLE}=)
 same => n,Set({DIAL_VARIABLE}=)
 same => n,Set({RECORDING_VARIABLE}=)
 same => n,AGI({agi_url}/{AGI_SEAT_SCRIPT})
 same => n,ExecIf($["${{{RECORDING_VARIABLE}}}" != ""]?MixMonitor(${{{RECORDING_VARIABLE}}},b))
 same => n,GotoIf($["${{{DIAL_VARIABLE}}}" != ""]?callback)
 same => n,GotoIf($["${{{CALLER_VARIABLE}}}" = ""]?none)
 same => n,Bridge(${{{CALLER_VARIABLE}}},xT)
 same => n,GotoIf($["${{BRIDGERESULT}}" != "SUCCESS"]?ask)
 same => n(none),Hangup()
; a caller who asked to be called back, keeping their place: the seat calls them now
; (g: on after the citizen hangs up, to report how the call went)
 same => n(callback),Dial(${{{DIAL_VARIABLE}}},60,g)
 same => n,AGI({agi_url}/{AGI_CALLBACK_DONE_SCRIPT})
 same => n,Hangup()
"""


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


# Transfers by seats go through the API (they carry the case): no blind-transfer key; the
# attended-transfer key is what AMI Atxfer presses for us: "A", a DTMF key softphones lack (so
# no seat starts one by accident) and one emulated digit (each costs Asterisk ~0.15 s). During a
# consultation the seat's phone keys still work: *1 back to the caller, *3 three-way, hanging up
# completes it.
_FEATURES = """[general]
transferdigittimeout = 1
; no "transfer" prompt: the consultation dials at once
transferannouncesound =
atxfernoanswertimeout = {consult_ring}
atxferdropcall = no
atxferloopdelay = 0
; the seat hung up while the other side rang and nobody answered: no ringing the seat back (it
; may be on its next call by then); the caller goes to the dialplan's transfer_failed node
atxfercallbackretries = 0
atxferabort = *1
atxfercomplete = *2
atxferthreeway = {three_way}
atxferswap = *4

[featuremap]
blindxfer =
atxfer = A
disconnect =
automixmon =
parkcall =
"""


def _simple_files(config: Config, layout: AsteriskLayout) -> dict[str, str]:
    moh = layout.data_dir / "moh"
    return {
        "logger.conf": (
            "[general]\ndateformat = %F %T.%3q\n[logfiles]\nconsole => notice,warning,error\n"
            "messages.log => notice,warning,error,verbose(3)\n"
        ),
        "musiconhold.conf": f"[default]\nmode = files\ndirectory = {moh}\nsort = random\n",
        "cdr.conf": "[general]\nenable = no\n",
        "cel.conf": "[general]\nenable = no\n",
        "features.conf": _FEATURES.format(consult_ring=config.transfers.consult_ring_s, three_way=THREE_WAY_CODE),
        "indications.conf": _INDICATIONS,
        "ccss.conf": "[general]\n",
        "acl.conf": "",
        "udptl.conf": "[general]\n",
        "res_stun_monitor.conf": "[general]\n",
        "http.conf": "[general]\nenabled = no\n",
        "cli.conf": "[startup_commands]\n",
        "stasis.conf": "",
        "pjproject.conf": "[log_mappings]\ntype = log_mappings\nasterisk_error = 0\nasterisk_warning = 2\n",
    }


def render_asterisk_config(config: Config, layout: AsteriskLayout) -> dict[str, str]:
    """Every file Asterisk reads, as ``{name: text}``."""
    files = {
        "asterisk.conf": _asterisk_conf(config, layout),
        "modules.conf": _modules_conf(),
        "manager.conf": _manager_conf(config),
        "pjsip.conf": _pjsip_conf(config),
        "rtp.conf": _rtp_conf(config),
        "extensions.conf": _extensions_conf(config),
        "queues.conf": _queues_conf(config),
    }
    files.update(_simple_files(config, layout))
    return files


def write_asterisk_config(config: Config, etc_dir: Path) -> AsteriskLayout:
    """Render into ``etc_dir`` and create the state folders; returns the layout used."""
    layout = layout_for(config, etc_dir)
    etc_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render_asterisk_config(config, layout).items():
        target = etc_dir / name
        target.write_text(text, encoding="utf-8")
        if name == "manager.conf":
            target.chmod(0o600)  # holds the AMI secret
    for sub in ("lib", "lib/keys", "agi-bin", "spool", "run", "log"):
        (layout.var_dir / sub).mkdir(parents=True, exist_ok=True)
    (config.paths.spool_dir / FALLBACK_SPOOL).mkdir(parents=True, exist_ok=True)
    return layout
