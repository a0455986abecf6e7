"""SIPp callers for tests: scenarios built from small parts, run against a platform's trunk."""

from __future__ import annotations

import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tests.support.dtmf import key_press_pcap
from tests.support.ports import free_media_port, free_tcp_and_udp_port


def invite(headers: str = "") -> str:
    """The caller's INVITE; ``headers``: extra header lines, e.g. "X-Hotline-Area: 0872"."""
    extra = "".join(f"      {line}\n" for line in headers.splitlines() if line.strip())
    return _INVITE.replace("{headers}", extra)


_INVITE = """
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[caller_name]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:[caller]@[local_ip]:[local_port]
      Max-Forwards: 70
{headers}      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
"""
INVITE = invite()


def caller_request(method: str, cseq: int, body: str = "", content_type: str = "") -> str:
    """A request of the caller's inside the call (ACK, BYE, INFO): one set of dialog headers."""
    retrans = "" if method == "ACK" else ' retrans="500"'
    content = (
        f"Content-Type: {content_type}\n      Content-Length: [len]\n\n      {body}" if body else "Content-Length: 0"
    )
    return f"""
  <send{retrans}>
    <![CDATA[
      {method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "[caller_name]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Contact: sip:[caller]@[local_ip]:[local_port]
      Max-Forwards: 70
      {content}
    ]]>
  </send>
"""


ANSWERED = '\n  <recv response="200" rtd="true"/>\n' + caller_request("ACK", 1)

REJECTED_404 = '\n  <recv response="404"/>\n' + caller_request("ACK", 1)

CHALLENGED = '\n  <recv response="401"/>\n' + caller_request("ACK", 1)
"""Refused: the request matched no endpoint (or one that needs a password), Asterisk asks for
credentials (401) and nothing reaches the dialplan."""

CALLER_HANGS_UP = caller_request("BYE", 99) + '  <recv response="200"/>\n'

HOTLINE_HANGS_UP = """
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
"""


def pause(ms: int) -> str:
    return f'  <pause milliseconds="{ms}"/>\n'


def stays_until_released(at_most_ms: int) -> str:
    """The caller talks on until the test says it is done (``SippCall.release()``), or for
    ``at_most_ms`` (a fixed ``pause`` then), and goes on to the next part (e.g. CALLER_HANGS_UP).
    Put it right after ANSWERED: a release that came during an earlier part would fail the call."""
    return f'  <recv request="INFO" timeout="{at_most_ms}" ontimeout="released"/>\n  <label id="released"/>\n'


def stream_audio(wav: Path, loops: int = 1) -> str:
    """Stream an 8 kHz u-law WAV into the call (SIPp rtp_stream); ``loops=-1`` until the call ends."""
    return f'  <nop><action><exec rtp_stream="{wav},{loops},0"/></action></nop>\n'


def scenario(*parts: str) -> str:
    body = "".join(parts)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<scenario name="test caller">\n{body}</scenario>\n'


@dataclass
class SippResult:
    returncode: int
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class _SippProcess:
    """One SIPp process with its scenario in a temp folder; ``wait()`` gives its result."""

    live: ClassVar[set[_SippProcess]] = set()  # not waited for yet (tests/conftest.py reaps them)

    def __init__(self, scenario_xml: str, arguments: list[str], timeout_s: float, media_ip: str = "127.0.0.1") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="sipp-")
        folder = Path(self._tmp.name)
        (folder / "scenario.xml").write_text(scenario_xml, encoding="utf-8")
        self._errors = folder / "errors.log"
        self._timeout_s = timeout_s
        command = [
            "sipp", *arguments, "-sf", str(folder / "scenario.xml"),
            "-mi", media_ip, "-mp", str(free_media_port()),
            "-timeout", f"{int(timeout_s)}s", "-timeout_error", "-nostdin",
            "-trace_err", "-error_file", str(self._errors),
        ]  # fmt: skip
        self._proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _SippProcess.live.add(self)

    def wait(self) -> SippResult:
        _SippProcess.live.discard(self)
        try:
            _, stderr = self._proc.communicate(timeout=self._timeout_s + 30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _, stderr = self._proc.communicate()
        text = self._errors.read_text(errors="replace") if self._errors.exists() else ""
        self._tmp.cleanup()
        return SippResult(self._proc.returncode, text + stderr.decode(errors="replace"))

    @property
    def finished(self) -> bool:
        """Whether SIPp has exited (``wait()`` then returns at once)."""
        return self._proc.poll() is not None

    def stop(self) -> None:
        """End a SIPp that waits for more calls than came (a seat with capacity to spare), or
        one a failed test left behind."""
        if self._proc.poll() is None:
            self._proc.terminate()
        self.wait()


class SippCall(_SippProcess):
    """``calls`` SIPp callers to 127.0.0.1:sip_port, run in the background until ``wait()``.

    They send from ``local_ip`` (any 127.0.0.0/8 address is local: 127.0.0.2 is "another
    host") and from ``local_port`` (default: a free one), e.g. a seat phone's own contact port."""

    def __init__(
        self,
        sip_port: int,
        scenario_xml: str,
        *,
        number: str = "12345",
        caller: str = "13800138000",
        caller_name: str = "",
        timeout_s: float = 60.0,
        calls: int = 1,
        host: str = "127.0.0.1",
        local_ip: str = "127.0.0.1",
        local_port: int | None = None,
    ) -> None:
        self.local_ip, self.local_port = local_ip, local_port or free_tcp_and_udp_port()
        # the Call-IDs SIPp makes, "<prefix>-<call number>@<local ip>": release() names one
        self._call_id_prefix = f"sipp-{secrets.token_hex(6)}"
        arguments = [
            f"{host}:{sip_port}", "-s", number, "-m", str(calls), "-l", str(calls), "-r", "50",
            "-i", local_ip, "-p", str(self.local_port), "-cid_str", f"{self._call_id_prefix}-%u@%s",
            "-key", "caller", caller, "-key", "caller_name", caller_name,
        ]  # fmt: skip
        super().__init__(scenario_xml, arguments, timeout_s, media_ip=local_ip)

    def talk_on(self, seconds: float, release: Callable[[], None] | None = None) -> None:
        """A caller in ``stays_until_released`` stays on ``seconds`` more (failing the test if the
        hotline ends its call meanwhile), then is released (by ``release`` if given: a caller
        in another network namespace)."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            assert not self.finished, self.wait().errors  # the hotline ended the call
            time.sleep(0.25)
        (release or self.release)()

    def release(self, call_number: int = 1) -> None:
        """End a caller's ``stays_until_released`` now: an INFO in its dialog, sent straight to
        SIPp's own port (SIPp finds the call by its Call-ID; nothing answers it, as SIPp would send
        its answer to Asterisk). Sent once, over the loopback: a second copy arriving after the
        wait would be a request the scenario does not expect."""
        branch, tag = secrets.token_hex(8), secrets.token_hex(4)
        message = (
            f"INFO sip:release@{self.local_ip}:{self.local_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch}\r\n"
            f"From: <sip:test@127.0.0.1>;tag={tag}\r\n"
            f"To: <sip:release@{self.local_ip}>\r\n"
            f"Call-ID: {self._call_id_prefix}-{call_number}@{self.local_ip}\r\n"
            "CSeq: 1 INFO\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, (self.local_ip, self.local_port))


def run_sipp(
    sip_port: int,
    scenario_xml: str,
    *,
    number: str = "12345",
    caller: str = "13800138000",
    caller_name: str = "",
    timeout_s: float = 60.0,
    host: str = "127.0.0.1",
    local_ip: str = "127.0.0.1",
    local_port: int | None = None,
) -> SippResult:
    """Run one call to the end; SippResult.ok when SIPp's scenario passed."""
    return SippCall(
        sip_port, scenario_xml, number=number, caller=caller, caller_name=caller_name, timeout_s=timeout_s,
        host=host, local_ip=local_ip, local_port=local_port,
    ).wait()  # fmt: skip


def dtmf(key: str, press: int = 0) -> str:
    """One RFC 4733 key; ``press`` is its place among the call's keys (0, 1, …), so that
    sequence numbers and timestamps increase (see tests/support/dtmf.py)."""
    pcap = key_press_pcap(key, press)
    return f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n' + pause(400)


def dtmf_info(key: str, cseq: int) -> str:
    """One key as SIP INFO (application/dtmf-relay); ``cseq`` between the INVITE's 1 and the BYE's 99."""
    body = f"Signal={key}\n      Duration=250"
    return caller_request("INFO", cseq, body, "application/dtmf-relay") + '  <recv response="200"/>\n' + pause(400)


def _uas_response(status: str, headers: str = "", body: str = "") -> str:
    """A UAS's response to the request just received (its dialog tag on To)."""
    content = f"Content-Type: application/sdp\n      Content-Length: [len]\n\n{body}" if body else "Content-Length: 0"
    return f"""
  <send{' retrans="500"' if status.startswith("200") and body else ""}>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      {headers}{content}
    ]]>
  </send>
"""


_CONTACT = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n      "
_SDP_ANSWER = """
      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000"""

# The pieces of a seat's or a peer hotline's side (SIPp as UAS), shared with bench/e2e_sipp.py.
RINGING = _uas_response("180 Ringing", "[last_CSeq:]\n      " + _CONTACT)
"""A UAS's 180 Ringing to the INVITE just received."""
OK_WITH_SDP = _uas_response("200 OK", "[last_CSeq:]\n      " + _CONTACT, _SDP_ANSWER)
"""Answers the INVITE (retransmitted until the ACK)."""
OK = _uas_response("200 OK", "[last_CSeq:]\n      " + _CONTACT)
"""200 OK, no body, to the request just received (a CANCEL, a BYE)."""
REQUEST_TERMINATED = _uas_response("487 Request Terminated", "CSeq: [cseq] INVITE\n      ")
"""The INVITE's final answer after a CANCEL."""
KEEP_DIALOG = """
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="their_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="our_to"/>
    </action>
  """
"""Inside ``<recv request="INVITE">``: keeps From/To for the UAS's own BYE (UAS_BYE)."""
UAS_BYE = """
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$our_to];tag=[pid]SIPpTag01[call_number]
      To: [$their_from]
      [last_Call-ID:]
      CSeq: 2 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""
"""The UAS hangs up (needs KEEP_DIALOG on the INVITE; SIPp refuses a variable never used)."""


def answering_peer(talk_ms: int, hang_up: bool, voice: Path | None = None) -> str:
    """A seat or a peer hotline: answers, talks ``talk_ms`` (streaming ``voice`` if given),
    then hangs up (or waits for BYE)."""
    answer = f'\n  <recv request="INVITE" rrs="true">{KEEP_DIALOG if hang_up else ""}</recv>\n'
    answer += RINGING + OK_WITH_SDP + '  <recv request="ACK"/>\n'
    if voice is not None:
        answer += stream_audio(voice, loops=-1)
    if not hang_up:
        return answer + HOTLINE_HANGS_UP
    return answer + pause(talk_ms) + UAS_BYE + '  <recv response="200"/>\n'


RINGING_PEER = f"""
  <recv request="INVITE" rrs="true"/>
{RINGING}  <recv request="CANCEL"/>
{OK}{REQUEST_TERMINATED}  <recv request="ACK"/>
"""
"""A seat that rings and never answers, until the call is cancelled."""

REJECTING_PEER = (
    '\n  <recv request="INVITE"/>\n'
    + _uas_response("486 Busy Here", "[last_CSeq:]\n      ")
    + ('  <recv request="ACK"/>\n')
)
"""A seat whose user presses "reject" (486 Busy Here)."""


class SippServer(_SippProcess):
    """A SIPp UAS on its own port (a seat with a static contact, or a peer hotline), one call."""

    def __init__(
        self, scenario_xml: str, port: int | None = None, timeout_s: float = 90.0, calls: int = 1, ip: str = "127.0.0.1"
    ) -> None:
        self.port = port or free_tcp_and_udp_port()
        super().__init__(scenario_xml, ["-i", ip, "-p", str(self.port), "-m", str(calls)], timeout_s, media_ip=ip)


def reap_sipp_processes() -> None:
    """Stop every SIPp a test started and did not wait for (a failed test), so its ports and
    pipes do not leak into the next test."""
    for process in list(_SippProcess.live):
        process.stop()
