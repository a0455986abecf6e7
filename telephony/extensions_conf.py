"""Asterisk's dialplan (extensions.conf) and transfer features (features.conf) of one platform:
what each number on the trunk does, the IVR's FastAGI entry and the fallback route, routing to
other platforms, transfers and consultations, the hold and offer contexts of our ACD. Pure."""

from __future__ import annotations

from telephony.config import TransfersConfig
from telephony.dialplan_names import (
    AFTER_REJOIN_LABEL,
    AFTER_SEAT_CONTEXT,
    AFTER_SEAT_QUIET_EXTEN,
    AFTER_SEAT_VARIABLE,
    AGI_AFTER_SEAT_SCRIPT,
    AGI_ANNOUNCE_SCRIPT,
    AGI_CALLBACK_DONE_SCRIPT,
    AGI_FEATURE_SCRIPT,
    AGI_IVR_SCRIPT,
    AGI_OUTBOUND_SCRIPT,
    AGI_OVERFLOW_SCRIPT,
    AGI_SEAT_SCRIPT,
    AGI_TRANSFER_FAILED_SCRIPT,
    ANNOUNCING_VARIABLE,
    ANSWERED_ARGUMENT,
    AREA_CONTEXT,
    ATXFER_CODE,
    BOUND_WAIT_S,
    CALLER_AWAY_MAX_WAITS,
    CALLER_VARIABLE,
    CONSULT_ANSWERED_EVENT,
    CONSULT_CALL_VARIABLE,
    CONSULT_CALLER_CHANNEL_VARIABLE,
    CONSULT_CALLER_VARIABLE,
    CONSULT_CONTEXT,
    CONSULT_DIAL_VARIABLE,
    CONSULT_ENDED_EVENT,
    CONSULT_EXTEN,
    CONSULT_SEAT_CHANNEL_VARIABLE,
    CONSULTING_VARIABLE,
    DIAL_VARIABLE,
    DIALBACK_CONTEXT,
    DIALBACK_EVENT,
    DIALBACK_RING_VARIABLE,
    DIALPLAN_VARIABLE,
    ENTRY_CONTEXT,
    FALLBACK_QUEUE,
    FALLBACK_SPOOL,
    FEATURE_CODES,
    HANDOFF_HEADER,
    HANDOFF_VARIABLE,
    HOLD_CONTEXT,
    HOLD_VARIABLE,
    HOTLINE_NUMBER,
    IVR_DONE_VARIABLE,
    LEFT_VARIABLE,
    MAX_WAIT_VARIABLE,
    OFFER_CONTEXT,
    OUTBOUND_CONTEXT,
    OVERFLOW_VARIABLE,
    PEER_CONTEXT,
    PLATFORM_VARIABLE,
    PREDIAL_CONTEXT,
    PROVINCE_PLATFORM,
    RECORDING_VARIABLE,
    REFUSE_CONTEXT,
    REJOIN_BRIDGE_PREFIX,
    REJOIN_LABEL,
    REJOIN_WAIT_S,
    ROUTE_CONTEXT,
    ROUTE_VARIABLE,
    ROUTED_EVENT,
    SEAT_CONTEXT,
    SEATED_VARIABLE,
    THREE_WAY_CODE,
    TRANSFER_CONTEXT,
    TRANSFER_DIAL_VARIABLE,
    TRANSFER_STATUS_VARIABLE,
    TRANSFERRED_EVENT,
    TRUNK_CONTEXT,
    prompt_path,
)
from telephony.site import AsteriskSite


def _plain_number_entry(site: AsteriskSite) -> str:
    """Plain 12345. With ``sip.area_header``, a header naming an area (``<area>12345`` is one of
    the trunk's area numbers) routes the call like that number; any other value (``9``,
    ``86872``, ``+86 871``, none) is answered here: a caller is never refused for a header.
    The check is against the area numbers alone, never the trunk's catch-all (SIP 404)."""
    header = site.sip.area_header
    if not header:
        return f"exten => {HOTLINE_NUMBER},1,Goto({ENTRY_CONTEXT},s,1)"
    routed = f"${{area}}{HOTLINE_NUMBER}"
    return "\n".join(
        [  # digits only: no dialplan tricks through a header
            f"exten => {HOTLINE_NUMBER},1,Set(area=${{FILTER(0-9,${{PJSIP_HEADER(read,{header})}})}})",
            f' same => n,GotoIf($["${{area}}" != "" & ${{DIALPLAN_EXISTS({AREA_CONTEXT},{routed},1)}}]?{routed},1)',
            f" same => n,Goto({ENTRY_CONTEXT},s,1)",
        ]
    )


def _area_entries(site: AsteriskSite) -> str:
    """What the trunk's ``<area>12345`` numbers do: our own goes to the IVR; that of an area
    another platform serves goes there; an unknown area code goes to the province (from a
    prefecture) or is answered here (at the province)."""
    routes = {
        trunk.area_code: name
        for name, trunk in site.sip.trunks.items()
        if trunk.area_code and trunk.platform != site.platform_id
    }
    lines = []
    if site.area_code not in routes:
        for prefix in (site.area_code, site.area_code[1:]):
            lines.append(f"exten => {prefix}{HOTLINE_NUMBER},1,Goto({ENTRY_CONTEXT},s,1)")
    for area_code, trunk in sorted(routes.items()):
        for prefix in (area_code, area_code[1:]):
            lines.append(f"exten => {prefix}{HOTLINE_NUMBER},1,Set({ROUTE_VARIABLE}={trunk})")
            lines.append(f" same => n,Goto({ROUTE_CONTEXT},{area_code}{HOTLINE_NUMBER},1)")
    province = next((n for n, t in site.sip.trunks.items() if t.platform == PROVINCE_PLATFORM), None)
    for pattern in ("_0XX", "_0XXX"):
        if province and site.platform_id != PROVINCE_PLATFORM:
            lines.append(f"exten => {pattern}{HOTLINE_NUMBER},1,Set({ROUTE_VARIABLE}={province})")
            lines.append(f" same => n,Goto({ROUTE_CONTEXT},${{EXTEN}},1)")
        else:  # no platform above this one: an area nobody serves is answered here
            lines.append(f"exten => {pattern}{HOTLINE_NUMBER},1,Goto({ENTRY_CONTEXT},s,1)")
    return "\n".join(lines)


def extensions_conf(site: AsteriskSite, agi_secret: str) -> str:
    """extensions.conf of the platform; every FastAGI URL carries ``agi_secret`` (the controller
    serves no session without it: telephony/agi_server.py)."""
    agi = site.agi
    fallback_dir = site.spool_dir / FALLBACK_SPOOL
    # What the controller needs to rebuild the record of a call it never saw: the file name
    # carries the start time and the uniqueid, never the caller's number (names are logged and
    # listed); the number (digits only) goes into a file beside it, written by Asterisk's own
    # FILE() (no shell) before the recording starts. calls/fallback.py reads both; keep in step.
    fallback_message = f"{fallback_dir}/fb2-${{EPOCH}}-${{UNIQUEID}}"
    # the fallback call's line: calls/fallback_calls.py reads it (keep in step)
    fallback_call = f"{fallback_dir}/fc-${{FILTER(0-9,${{FB_START}})}}-${{UNIQUEID}}.call"
    fallback_line = "|".join(
        (
            "v1",
            "${FILTER(0-9,${FB_START})}",
            "${UNIQUEID}",
            "${FILTER(0-9,${CALLERID(num)})}",
            "${FB_STAGE}",
            "${FILTER(0-9,${CUT(MEMBERINTERFACE,/,2)})}",
            "${FILTER(0-9,${FB_QUEUED})}",
            "${FILTER(0-9,${QEHOLDTIME})}",
            "${EPOCH}",
            "end",
        )
    )
    # every caller's hang-up, written by Asterisk whether or not the controller hears it: calls/
    # end_lines.py reads it (keep in step); the uniqueid is Asterisk's, the time its clock, the
    # cause digits only, the caller's number digits and "+" only, at most 32 (e2: a call whose
    # record never reached Redis is recorded from it, with its caller). Set() of FILE() never
    # fails the channel: a full disk costs the line only
    end_line = "|".join(
        (
            "e2",
            "${UNIQUEID}",
            "${FILTER(0-9.,${STRFTIME(,,%s.%3q)})}",
            "${FILTER(0-9,${HANGUPCAUSE})}",
            "${FILTER(0-9+,${CALLERID(num)}):0:32}",
            "end",
        )
    )
    # … but not by the husk a masquerade leaves ("Surrogate/<name>", a uniqueid of its own: its
    # line would make a phantom record of a call that never was; the caller talks on as itself)
    write_end = (
        f'ExecIf($["${{CHANNEL:0:10}}" != "Surrogate/"]?Set(FILE({fallback_dir}/ce-${{UNIQUEID}}.end)={end_line}))'
    )
    # Bridge()'s F target: the quiet extension when the seat AGI said nothing runs after this seat
    after_seat_exten = f'${{IF($["${{{AFTER_SEAT_VARIABLE}}}" = "0"]?{AFTER_SEAT_QUIET_EXTEN}:s)}}'
    # … and after a consultation's rejoin, where the seat's rejoin label handed the answer over
    rejoined_exten = f'${{IF($["${{SHARED({AFTER_SEAT_VARIABLE})}}" = "0"]?{AFTER_SEAT_QUIET_EXTEN}:s)}}'
    agi_url = f"agi://{agi.host}:{agi.port}/{agi_secret}"
    consult_ring = site.transfers.consult_ring_s
    consult_over = f"Set(SHARED({CONSULTING_VARIABLE},${{{CONSULT_CALLER_CHANNEL_VARIABLE}}})=)"
    every = site.announce_every_s
    # announcements: the music stops every few seconds for the controller to say the position
    hold_slice = every if every else 3600
    # the seat that takes the caller meanwhile waits for it to be back in its holding bridge (the
    # mark, read by hotline-offer); the AGI stops once it is bound
    announce = (
        f"Set(SHARED({ANNOUNCING_VARIABLE})=1)\n same => n,AGI({agi_url}/{AGI_ANNOUNCE_SCRIPT})\n"
        f" same => n,Set(SHARED({ANNOUNCING_VARIABLE})=)"
        if every
        else "NoOp(no announcements)"
    )
    # a caller comes into the hold context unmarked: a mark an announcement left (max wait ran out
    # during it, or a seat's Bridge() took the caller over by masquerade after its bounded wait)
    # would make the next seat wait for nothing when the caller queues again (an overflow node that
    # is another queue, a transfer back to the entry)
    hold_start = f"Set(SHARED({ANNOUNCING_VARIABLE})=)\n same => n," if every else ""
    # ivr/entry.py's IvrOverflow reads them in this order (node ids, reasons and versions are
    # made of these characters; a comma could not start a fourth argument)
    overflow_args = ",".join(
        f"${{FILTER(0-9A-Za-z_,${{{name}}}):0:64}}" for name in (OVERFLOW_VARIABLE, LEFT_VARIABLE, DIALPLAN_VARIABLE)
    )
    features = "\n".join(
        f"exten => {code},1,AGI({agi_url}/{AGI_FEATURE_SCRIPT}?action={action})"
        for code, action in FEATURE_CODES.items()
    )
    # the reason code is what the seat dialled after *23: digits only reach the AGI URL (a SIP
    # request line may carry '&', '=', ',' …: '*2305&action=logout' must not change the action)
    reason = "${FILTER(0-9,${EXTEN:3})}"
    features += f"\nexten => _*23X.,1,AGI({agi_url}/{AGI_FEATURE_SCRIPT}?action=pause&reason={reason})"
    # the bound caller waits in its holding bridge: Bridge() moves it. A caller running an
    # application (the announcement AGI) would be taken over by a masquerade (ast_channel_yank: a
    # "Surrogate/" channel, which racing a hang-up could stay up for good): the caller marks its
    # announcement (SHARED: read under the caller's lock, no call into its channel driver), the
    # seat waits while it lasts
    announcing = f"${{SHARED({ANNOUNCING_VARIABLE},${{{CALLER_VARIABLE}}})}}"
    caller_held = f'${{IF($["{announcing}" = "1"]?away:bridge)}}'
    caller_away = f'${{CHANNEL_EXISTS(${{{CALLER_VARIABLE}}})}} & "{announcing}" = "1"'
    handoff_token = f"${{FILTER(0-9A-Za-z,${{PJSIP_HEADER(read,{HANDOFF_HEADER})}}):0:64}}"
    return f"""[general]
static = yes
writeprotect = yes
clearglobalvars = yes

[globals]
{PLATFORM_VARIABLE} = {site.platform_id}

; the trunk's numbers: Asterisk looks in a context's own extensions first, then in its includes
; in order, so the catch-all (404) never shadows an area number
[{TRUNK_CONTEXT}]
{_plain_number_entry(site)}
exten => i,1,Hangup(1)
include => {AREA_CONTEXT}
include => {REFUSE_CONTEXT}

[{AREA_CONTEXT}]
{_area_entries(site)}

; anything else on the trunk is not ours: SIP 404
[{REFUSE_CONTEXT}]
exten => _X.,1,Hangup(1)

; calls from seats: feature codes (*23 then digits: pause with that reason code)
[{SEAT_CONTEXT}]
{features}
exten => _X.,1,Hangup(21)

[{PEER_CONTEXT}]
exten => _X.,1,Hangup(21)

[{ENTRY_CONTEXT}]
exten => s,1,Set(__{PLATFORM_VARIABLE}={site.platform_id})
 ; the hand-off token (if another platform sent the call) goes along: one AGI round trip fewer
 ; (letters and digits, at most 64: a huge header must not overflow the AGI environment);
 ; answered here, as the IVR always did first, and said so: one more round trip fewer
 same => n,Answer()
 same => n,AGI({agi_url}/{AGI_IVR_SCRIPT},{handoff_token},{ANSWERED_ARGUMENT})
 same => n,GotoIf($["${{{IVR_DONE_VARIABLE}}}" = "1"]?done)
 same => n,GotoIf($["${{{HOLD_VARIABLE}}}" = "1"]?{HOLD_CONTEXT},s,1)
 ; a seat already talked with this caller (the controller died during the call): done, no voicemail
 same => n,GotoIf($["${{MEMBERINTERFACE}}" != ""]?done)
 ; Fallback: the controller is unreachable or failed this call. Never dead air, never a lost
 ; caller: answer, ring every configured seat (a static queue that needs no controller), and
 ; if nobody answers keep a message in the spool for the controller to pick up.
 ; FB_STAGE: where the caller is, for the line the h extension writes (calls/fallback_calls.py)
 same => n(fallback),Set(FB_STAGE=greeting)
 same => n,Set(FB_START=${{EPOCH}})
 same => n,Answer()
 same => n,Playback({prompt_path(site.runtime_dir, "fallback_hold")})
 same => n,Set(FB_STAGE=queue)
 same => n,Set(FB_QUEUED=${{EPOCH}})
 same => n,Queue({FALLBACK_QUEUE},,,,{site.fallback_wait_s})
 same => n,Set(FB_STAGE=message)
 same => n,Playback({prompt_path(site.runtime_dir, "fallback")})
 same => n,Set(message={fallback_message})
 same => n,Set(FILE(${{message}}.caller)=${{FILTER(0-9,${{CALLERID(num)}})}})
 same => n,Record(${{message}}.wav,3,120,k)
 same => n,Set(FB_STAGE=goodbye)
 same => n,Playback({prompt_path(site.runtime_dir, "goodbye")})
 same => n(done),Hangup()
; a call that took the fallback route leaves one line (digits, a stage word, the uniqueid) for
; the controller, however it ended: answered by a seat, hung up in the greeting, a message
; any other call that ends here (the IVR released it, a message, the controller away) leaves its
; hang-up (calls/end_lines.py)
exten => h,1,GotoIf($["${{FB_STAGE}}" = ""]?end)
 same => n,Set(FILE({fallback_call})={fallback_line})
 ; a message is whole only now (the caller may hang up while it records): the spool rescan
 ; waits for this mark (voicemail/intake.py meta_from_fallback_name)
 same => n,GotoIf($["${{message}}" = ""]?done)
 same => n,Set(FILE(${{message}}.done)=done)
 same => n,Goto(done)
 same => n(end),{write_end}
 same => n(done),NoOp()

; A caller of another area (属地接听): answered by their own platform; if it cannot take the
; call (down, all trunks busy), answered here — at once when the link is known down (qualify)
[{ROUTE_CONTEXT}]
exten => _X.,1,GotoIf($["${{DEVICE_STATE(PJSIP/${{{ROUTE_VARIABLE}}})}}" = "UNAVAILABLE"]?here)
 same => n,Dial(PJSIP/${{EXTEN}}@${{{ROUTE_VARIABLE}}},15)
 same => n,GotoIf($["${{DIALSTATUS}}" = "ANSWER"]?done)
 same => n(here),Goto({ENTRY_CONTEXT},s,1)
 same => n(done),Hangup()
; (the caller's hang-up ends the Dial: only the h extension still runs to tell the controller)
exten => h,1,ExecIf($["${{DIALSTATUS}}" = "ANSWER"]?UserEvent({ROUTED_EVENT},Trunk: ${{{ROUTE_VARIABLE}}}))
 same => n,{write_end}

; the new leg of a transfer to another platform carries the case's token in a SIP header
[{PREDIAL_CONTEXT}]
exten => s,1,ExecIf($["${{{HANDOFF_VARIABLE}}}" != ""]?Set(PJSIP_HEADER(add,{HANDOFF_HEADER})=${{{HANDOFF_VARIABLE}}}))
 same => n,Return()

; A seat's transfer (POST /api/v1/calls/{{id}}/transfer): the caller is redirected here out of
; the seat's bridge. Answered: done. Not: the dialplan's transfer_failed node, or the fallback.
[{TRANSFER_CONTEXT}]
exten => s,1,Dial(${{{TRANSFER_DIAL_VARIABLE}}},{site.transfers.ring_s},b({PREDIAL_CONTEXT}^s^1))
 same => n,GotoIf($["${{DIALSTATUS}}" = "ANSWER"]?done)
 same => n(failed),AGI({agi_url}/{AGI_TRANSFER_FAILED_SCRIPT})
 same => n,GotoIf($["${{{IVR_DONE_VARIABLE}}}" = "1"]?done)
 same => n,Goto({ENTRY_CONTEXT},s,fallback)
 same => n(done),Hangup()
exten => h,1,ExecIf($["${{DIALSTATUS}}" = "ANSWER"]?UserEvent({TRANSFERRED_EVENT},To: ${{{TRANSFER_DIAL_VARIABLE}}}))
 same => n,{write_end}

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
exten => s,1,{hold_start}Set(TIMEOUT(absolute)=${{{MAX_WAIT_VARIABLE}}})
 same => n(wait),BridgeWait({HOLD_CONTEXT},participant,m(default)S({hold_slice}))
 same => n,GotoIf($["${{{SEATED_VARIABLE}}}" = "1"]?seated)
 same => n,{announce}
 same => n,Goto(wait)
 ; a consultation the seat left while it rang was never answered: a failed transfer
 same => n(seated),GotoIf($["${{SHARED({CONSULTING_VARIABLE})}}" != "1"]?bound)
 same => n,Set({TRANSFER_STATUS_VARIABLE}=consult_not_answered)
 same => n,Goto({TRANSFER_CONTEXT},s,failed)
 ; bound to a seat whose Bridge() has not taken the caller yet (its slice ended in that instant:
 ; Bridge() sets its F on the caller before moving it, so a caller that talked never comes back
 ; here): back in the holding bridge for it, no announcement. If the seat never takes it, the
 ; controller clears SEATED and restores max wait (acd/engine.py): back to the wait above;
 ; still bound after that (no controller): max wait's overflow path, never a hang-up
 same => n(bound),BridgeWait({HOLD_CONTEXT},participant,m(default)S({BOUND_WAIT_S}))
 same => n,GotoIf($["${{{SEATED_VARIABLE}}}" = "1"]?T,1:wait)
 ; a consultation starts (ivr/consult.py): the controller took the caller and the seat out of
 ; their bridge (AMI Redirect) and puts them together in a new one (AMI Bridge, whose push gives
 ; the seat's channel the transfer key); the caller waits alone with music meanwhile. Bridge()'s
 ; F is gone with the old bridge: AMI Bridge sends the caller on from here when the seat leaves
 ; (to the quiet extension, as F would have, when the seat's rejoin passed on HOTLINE_AFTER_SEAT=0)
 ; (the controller sends it on at once when its seat hung up meanwhile: the after_rejoin label)
 same => n({REJOIN_LABEL}),BridgeWait({REJOIN_BRIDGE_PREFIX}${{UNIQUEID}},participant,m(default)S({REJOIN_WAIT_S}))
 same => n({AFTER_REJOIN_LABEL}),Goto({AFTER_SEAT_CONTEXT},{rejoined_exten},1)
; max wait: the dialplan's overflow node, or the fallback route if the controller is away
; (the node, why the caller left and the dialplan version go as arguments: one AGI round trip)
exten => T,1,Set({HOLD_VARIABLE}=)
 same => n,AGI({agi_url}/{AGI_OVERFLOW_SCRIPT},{overflow_args})
 same => n,GotoIf($["${{{IVR_DONE_VARIABLE}}}" = "1"]?{ENTRY_CONTEXT},s,done)
 same => n,Goto({ENTRY_CONTEXT},s,fallback)
; the caller hung up waiting, or talking with a seat (the seat's bridge took it from here)
exten => h,1,{write_end}

; The seat hung up first (Bridge's F option, hotline-offer; after a consultation's rejoin, the
; priority after hotline-hold's rejoin wait). A consultation the seat left while
; it rang and nobody answered is a failed transfer, as in hotline-hold; otherwise the controller
; runs the dialplan's after_seat entry. Controller away or failing: a goodbye, never dead air.
[{AFTER_SEAT_CONTEXT}]
exten => s,1,GotoIf($["${{SHARED({CONSULTING_VARIABLE})}}" = "1"]?consult)
 same => n,AGI({agi_url}/{AGI_AFTER_SEAT_SCRIPT})
 same => n,GotoIf($["${{{IVR_DONE_VARIABLE}}}" = "1"]?done)
 same => n,Playback({prompt_path(site.runtime_dir, "goodbye")})
 same => n(done),Hangup()
 same => n(consult),Set({TRANSFER_STATUS_VARIABLE}=consult_not_answered)
 same => n,Goto({TRANSFER_CONTEXT},s,failed)
; nothing runs after this seat (the seat AGI said so when it bound the caller): the same
; consultation check, then the end, without a FastAGI session
exten => {AFTER_SEAT_QUIET_EXTEN},1,GotoIf($["${{SHARED({CONSULTING_VARIABLE})}}" = "1"]?s,consult)
 same => n,Hangup()
exten => h,1,{write_end}

; A seat's phone answered an offer: the controller names the caller (late binding: the
; longest-waiting eligible caller still there), the call is recorded and bridged. If that
; caller vanished in between, ask again; with no caller (or no controller) the seat is released.
; F: when the seat hangs up first the caller goes on to hotline-after-seat (the dialplan's
; after_seat entry: case number, survey); when the caller hangs up first the call just ends. A
; blind transfer redirects the caller (an AMI Redirect wins over F), an attended or three-way one
; moves it to the other side's bridge: those are told apart by the after-seat AGI (the record);
; when the seat AGI answered HOTLINE_AFTER_SEAT=0 (nothing can run after this seat), F goes to the
; context's quiet extension instead, which needs no AGI.
; T: the seat's channel may transfer (features.conf): the API's attended / three-way transfers;
; the transfer key itself only once a consultation starts (the rejoin label below): a seat's
; channel with a DTMF hook could not be bridged natively (RTP to RTP) while it talks.
; Every priority is a channel snapshot Asterisk publishes: the answered offer's path is kept short
; (the seat and the offer go as the AGI's argument and uniqueid, no Getvar; the answers
; start unset on a new channel and are cleared only before asking again).
[{OFFER_CONTEXT}]
exten => s,1(ask),Set(attempt=$[0${{attempt}} + 1])
 same => n,GotoIf($[${{attempt}} > 3]?none)
 same => n,AGI({agi_url}/{AGI_SEAT_SCRIPT},${{CHANNEL(endpoint)}})
 same => n,ExecIf($["${{{RECORDING_VARIABLE}}}" != ""]?MixMonitor(${{{RECORDING_VARIABLE}}},b))
 same => n,GotoIf($["${{{DIAL_VARIABLE}}}" != ""]?callback)
 same => n,GotoIf($["${{{CALLER_VARIABLE}}}" = ""]?none:{caller_held})
 same => n(bridge),Bridge(${{{CALLER_VARIABLE}}},TF({AFTER_SEAT_CONTEXT}^{after_seat_exten}^1))
 same => n,GotoIf($["${{BRIDGERESULT}}" != "SUCCESS"]?again)
 same => n(none),Hangup()
 ; the caller hears its announcement (hotline-hold), out of its holding bridge: wait until it is
 ; over (the AGI stops once the caller is bound), at most {CALLER_AWAY_MAX_WAITS} × 0.1 s over every attempt,
 ; and 0.1 s more for the caller to be back in its bridge; then Bridge() (a gone caller fails it)
 same => n(away),While($[{caller_away} & 0${{away_waits}} < {CALLER_AWAY_MAX_WAITS}])
 same => n,Set(away_waits=$[0${{away_waits}} + 1])
 same => n,Wait(0.1)
 same => n,EndWhile()
 same => n,Wait(0.1)
 same => n,Goto(bridge)
 ; asking again (the caller bound last time left before the bridge): stop that recording, so
 ; the next conversation never lands in another caller's file, and forget the last answer
 same => n(again),StopMixMonitor()
 same => n,Set({CALLER_VARIABLE}=)
 same => n,Set({DIAL_VARIABLE}=)
 same => n,Set({RECORDING_VARIABLE}=)
 same => n,Set({AFTER_SEAT_VARIABLE}=)
 same => n,Goto(ask)
; a caller who asked to be called back, keeping their place: the seat calls them now
; (g: on after the citizen hangs up, to report how the call went)
 same => n(callback),Dial(${{{DIAL_VARIABLE}}},60,g)
 same => n,AGI({agi_url}/{AGI_CALLBACK_DONE_SCRIPT})
 same => n,Hangup()
; a consultation starts (ivr/consult.py, hotline-hold's rejoin): the seat gets the attended-transfer
; key and waits alone, in silence (e(s): no music, which MixMonitor's b would record), until the
; controller bridges it with its caller again; then, or when nobody did in time, the seat is done
; (hung up by the controller at once when its caller left meanwhile). The seat AGI's
; HOTLINE_AFTER_SEAT=0 (nothing runs after this seat) goes to the caller, whose way on after the
; new bridge is no longer Bridge()'s F. Not used where features.conf gives every seat the key.
 same => n({REJOIN_LABEL}),Set(FEATUREMAP(atxfer)={ATXFER_CODE})
 same => n,ExecIf($["${{{AFTER_SEAT_VARIABLE}}}" = "0"]?Set(SHARED({AFTER_SEAT_VARIABLE},${{{CALLER_VARIABLE}}})=0))
 same => n,BridgeWait({REJOIN_BRIDGE_PREFIX}${{UNIQUEID}},participant,e(s)S({REJOIN_WAIT_S}))
 same => n,Hangup()

; A seat calls a missed caller back (dialback/: the desk's 回拨, or a blended offer): the seat's
; phone was rung first (AMI Originate); answered, the call is recorded like an offer's and the
; citizen is dialled (the controller built the dial string from checked parts; the ring time is
; digits only) showing the platform's 12345 number. The result goes to the controller from the h
; extension, whoever hangs up first.
[{DIALBACK_CONTEXT}]
exten => s,1,GotoIf($["${{{DIAL_VARIABLE}}}" = ""]?done)
 same => n,ExecIf($["${{{RECORDING_VARIABLE}}}" != ""]?MixMonitor(${{{RECORDING_VARIABLE}}},b))
 same => n,Set(CALLERID(all)="{HOTLINE_NUMBER}" <{site.area_code}{HOTLINE_NUMBER}>)
 same => n,Dial(${{{DIAL_VARIABLE}}},${{FILTER(0-9,${{{DIALBACK_RING_VARIABLE}}})}})
 same => n(done),Hangup()
exten => h,1,UserEvent({DIALBACK_EVENT},Id: ${{UNIQUEID}},Status: ${{DIALSTATUS}},Talk: ${{ANSWEREDTIME}})

; An automated outbound call (outbound/: a dispatch reminder, a 回访) was answered: the
; controller plays the message and reads the keys. Controller away: the call just ends (the
; job's try is settled as interrupted and retried).
[{OUTBOUND_CONTEXT}]
exten => s,1,AGI({agi_url}/{AGI_OUTBOUND_SCRIPT})
 same => n,Hangup()
"""


# Transfers by seats go through the API (they carry the case): no blind-transfer key. The
# attended-transfer key AMI Atxfer presses for us is ATXFER_CODE, "A", a DTMF key softphones lack
# (so no seat starts one by accident) and one emulated digit (each costs Asterisk ~0.15 s). Where
# Asterisk records the calls, every seat's channel has it (Bridge()'s T: bridge_basic.c installs
# the hook): MixMonitor's audiohook keeps the conversation off native RTP anyway, so the hook costs
# nothing and a consultation starts with Atxfer at once. Otherwise no talking seat has it: a DTMF
# hook keeps Asterisk from bridging the call natively (bridge_native_rtp.c), so a consultation's
# start gives it to the seat (FEATUREMAP(atxfer), hotline-offer's rejoin). During a consultation
# the seat's phone keys still work: *1 back to the caller, *3 three-way, hanging up completes it.
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
{atxfer}
disconnect =
automixmon =
parkcall =
"""


def features_conf(transfers: TransfersConfig, *, transfer_key: bool) -> str:
    """features.conf: the attended-transfer machinery consultations use; ``transfer_key``: every
    seat's channel has the attended-transfer key (where Asterisk records the calls)."""
    atxfer = f"atxfer = {ATXFER_CODE}" if transfer_key else "atxfer ="
    return _FEATURES.format(consult_ring=transfers.consult_ring_s, three_way=THREE_WAY_CODE, atxfer=atxfer)
