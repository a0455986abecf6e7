"""The names and places the Asterisk dialplan and the controller share: contexts, channel
variables, user events, FastAGI scripts, and where built prompts are. The dialplan is rendered
with them (telephony/extensions_conf.py); the controller sets, reads and waits for them."""

from __future__ import annotations

from pathlib import Path

TRUNK_CONTEXT = "from-trunk"
AREA_CONTEXT = "hotline-area"  # the trunk's <area>12345 numbers alone (no catch-all): what a header may name
REFUSE_CONTEXT = "hotline-refuse"  # the trunk's other numbers: SIP 404
ENTRY_CONTEXT = "hotline-entry"
IVR_DONE_VARIABLE = "HOTLINE_IVR_DONE"
PLATFORM_VARIABLE = "HOTLINE_PLATFORM"
DIALPLAN_VARIABLE = "HOTLINE_DIALPLAN"  # a call's dialplan version, as older controllers set it (ivr/entry.py)
FALLBACK_SPOOL = "fallback"
AGI_IVR_SCRIPT = "ivr"
ANSWERED_ARGUMENT = "answered"  # the IVR AGI's 2nd argument: the dialplan answered (no AGI ANSWER)
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
# the attended-transfer key AMI Atxfer "presses" for us. No seat's channel has it while it talks:
# a DTMF hook would keep Asterisk from bridging the call natively (RTP to RTP, bridge_native_rtp).
# A consultation's start gives it to the seat (FEATUREMAP) and brings seat and caller together
# again in a new bridge (REJOIN_LABEL in OFFER_CONTEXT and HOLD_CONTEXT: each waits alone at most
# REJOIN_WAIT_S in a holding bridge named REJOIN_BRIDGE_PREFIX + its uniqueid), whose push installs
# the hook (bridge_basic.c). Where Asterisk records the calls (MixMonitor's audiohook keeps every
# conversation off native RTP anyway) features.conf has the key for every seat and no rejoin is made.
ATXFER_CODE = "A"
REJOIN_LABEL = "rejoin"
REJOIN_BRIDGE_PREFIX = "rejoin-"
# HOLD_CONTEXT's priority after the caller's rejoin wait (on to hotline-after-seat): where the
# controller sends a caller left waiting alone (its seat hung up during the rejoin)
AFTER_REJOIN_LABEL = "after_rejoin"
REJOIN_WAIT_S = 10
# our ACD (acd/engine.py): callers wait in HOLD_CONTEXT, seats are rung into OFFER_CONTEXT
HOLD_CONTEXT = "hotline-hold"
OFFER_CONTEXT = "hotline-offer"
HOLD_VARIABLE = "HOTLINE_HOLD"  # set by the IVR's queue node: after the AGI, wait for a seat
MAX_WAIT_VARIABLE = "HOTLINE_MAX_WAIT"
OVERFLOW_VARIABLE = "HOTLINE_OVERFLOW"  # the dialplan node a caller goes to after max wait
SEATED_VARIABLE = "HOTLINE_SEATED"  # set when a seat is bound: after the talk, the caller is done
# a bound caller whose hold slice ended before the seat's Bridge() took it waits this long for it
# in the holding bridge (the controller puts it back in line sooner if the seat never takes it);
# still bound then (no controller to do so): max wait's overflow path, never a hang-up
BOUND_WAIT_S = 30
# set (SHARED, on the caller's channel) while a waiting caller hears its announcement, out of its
# holding bridge: a seat's Bridge() would take it over by a masquerade, the seat waits instead
ANNOUNCING_VARIABLE = "HOTLINE_ANNOUNCING"
# a seat whose bound caller hears its announcement waits for it
# this many times 0.1 s at most (hotline-offer's away loop), then bridges anyway
CALLER_AWAY_MAX_WAITS = 100
LEFT_VARIABLE = "HOTLINE_QUEUE_LEFT"  # why a caller left the queue early ("leaveempty")
CALLER_VARIABLE = "HOTLINE_CALLER"  # set by the seat AGI: the caller channel to bridge to
RECORDING_VARIABLE = "HOTLINE_RECORDING"
DIAL_VARIABLE = "HOTLINE_DIAL"  # set by the seat AGI for a callback: the caller's number to dial
AGI_ANNOUNCE_SCRIPT = "announce"
AGI_OVERFLOW_SCRIPT = "overflow"
AGI_SEAT_SCRIPT = "seat"
AGI_FEATURE_SCRIPT = "feature"
AGI_CALLBACK_DONE_SCRIPT = "callback-done"
# the seat hung up first: Bridge()'s F option sends the caller here, and its AGI runs the
# dialplan's after_seat entry (case number, satisfaction survey); a transferred caller is not asked
AFTER_SEAT_CONTEXT = "hotline-after-seat"
AGI_AFTER_SEAT_SCRIPT = "after-seat"
# "0", set by the seat AGI on the seat's channel when it binds the caller: nothing can run after
# this seat (the caller's dialplan version has no after_seat entry and the seat's phone is no
# browser phone whose loss would requeue the caller), so Bridge()'s F sends the caller to
# AFTER_SEAT_QUIET_EXTEN, which hangs up without a FastAGI session. Decided per answered offer by
# the controller that binds, so a restart, a reload or a seat's changed phone never leaves a stale
# answer; unset (an older controller, a callback): the after-seat AGI decides, as before
AFTER_SEAT_VARIABLE = "HOTLINE_AFTER_SEAT"
AFTER_SEAT_QUIET_EXTEN = "quiet"
# a seat calls a missed caller back (dialback/): the seat's phone is rung (AMI Originate, uniqueid
# OFFER_PREFIX + "cb-…": the ACD finds it busy after a restart) into DIALBACK_CONTEXT, which dials
# DIAL_VARIABLE showing the platform's 12345 number, records like an offer, and reports DIALSTATUS
DIALBACK_CONTEXT = "hotline-dialback"
DIALBACK_EVENT = "HotlineDialback"  # UserEvent from the seat channel's h extension: Id, Status, Talk
DIALBACK_RING_VARIABLE = "HOTLINE_DIALBACK_RING"  # how long the citizen's phone rings (seconds)
# automated outbound calls (outbound/): the called party answers into OUTBOUND_CONTEXT, whose AGI
# plays the message and reads keys; OUTBOUND_VARIABLE names the job (outbound/model.py's job id)
OUTBOUND_CONTEXT = "hotline-outbound"
OUTBOUND_VARIABLE = "HOTLINE_OUTBOUND"
AGI_OUTBOUND_SCRIPT = "outbound"
FEATURE_CODES = {"*21": "login", "*22": "logout", "*23": "pause", "*24": "ready"}


def prompt_path(runtime_dir: Path, name: str) -> Path:
    """Where the built prompt ``name`` lives under ``runtime_dir`` (config.yaml's
    paths.runtime_dir), without extension (as Playback wants it)."""
    return runtime_dir / "prompts" / name


def ivr_prompts_dir(runtime_dir: Path) -> Path:
    """Where the dialplan's prompts are built under ``runtime_dir`` (apart from the fallback
    route's own)."""
    return runtime_dir / "prompts" / "ivr"
