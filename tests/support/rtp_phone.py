"""The media side of a test phone: a UDP socket that a SIPp scenario's SDP names instead of
SIPp's own media port. It keeps every u-law payload Asterisk sends it (what the phone's user
hears, with arrival times) and, once Asterisk has sent it something, streams a tone back (what
the user says). SIPp 3.6 cannot record what it receives; this can, so tests measure it."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

FRAME_BYTES = 160  # 20 ms of 8 kHz u-law
_RTP_HEADER = 12


def _ulaw_tone(frequency_hz: int, seconds: float = 1.0) -> bytes:
    command = ["sox", "-n", "-r", "8000", "-c", "1", "-t", "ul", "-", "synth", str(seconds), "sine", str(frequency_hz)]
    return subprocess.run([*command, "vol", "0.5"], check=True, capture_output=True).stdout


class RtpPhone:
    """``tone_hz``: what this phone says (None: silence is sent, so Asterisk still has a peer)."""

    def __init__(self, tone_hz: int | None) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.005)
        self.port: int = self._sock.getsockname()[1]
        self._tone = _ulaw_tone(tone_hz) if tone_hz else b"\xff" * 8000
        self._heard: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rtp-{self.port}", daemon=True)
        self._thread.start()

    def sdp_port(self, scenario_text: str) -> str:
        """``scenario_text`` with its SDP's media port pointing here."""
        return scenario_text.replace("m=audio [media_port]", f"m=audio {self.port}")

    def _run(self) -> None:
        remote: tuple[str, int] | None = None
        seq, timestamp, offset = 0, 0, 0
        next_send = time.monotonic()
        while not self._stop.is_set():
            try:
                packet, address = self._sock.recvfrom(2048)
            except TimeoutError:
                packet = b""
            if len(packet) > _RTP_HEADER and packet[1] & 0x7F == 0:  # PCMU
                remote = address
                with self._lock:
                    self._heard.append((time.monotonic(), packet[_RTP_HEADER:]))
            now = time.monotonic()
            if remote is not None and now >= next_send:
                payload = self._tone[offset : offset + FRAME_BYTES]
                offset = (offset + FRAME_BYTES) % (len(self._tone) - FRAME_BYTES)
                header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, timestamp & 0xFFFFFFFF, 0x1234ABCD)
                self._sock.sendto(header + payload, remote)
                seq, timestamp = seq + 1, timestamp + FRAME_BYTES
                next_send = max(next_send + 0.02, now - 0.1)

    def heard_since(self, since: float, path: Path) -> Path:
        """What this phone received since ``since`` (time.monotonic()), as an 8 kHz WAV."""
        with self._lock:
            audio = b"".join(payload for at, payload in self._heard if at >= since)
        raw = path.with_suffix(".ul")
        raw.write_bytes(audio)
        subprocess.run(["sox", "-t", "ul", "-r", "8000", "-c", "1", str(raw), str(path)], check=True)
        return path

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def band_rms(wav: Path, low_hz: int, high_hz: int) -> float:
    """RMS of ``wav`` within a frequency band (sox sinc band-pass, then stat); 0 for no audio."""
    result = subprocess.run(["sox", str(wav), "-n", "sinc", f"{low_hz}-{high_hz}", "stat"], capture_output=True,
                            text=True, check=False)  # fmt: skip
    lines = [x for x in result.stderr.splitlines() if x.startswith("RMS     amplitude")]
    return float(lines[0].split(":")[1]) if lines else 0.0
