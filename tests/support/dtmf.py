"""RFC 4733 key presses for SIPp, as pcaps whose RTP sequence numbers and timestamps run on.

SIPp ships one pcap per key (/usr/share/sip-tester/dtmf_2833_<key>.pcap), each with its own
fixed sequence numbers and timestamp. Asterisk drops an event whose timestamp is older than the
previous one's, so "9" then "0" (67840, then 17632) loses the "0". We rewrite each press of a
call with increasing values, as a real phone would send them.
"""

from __future__ import annotations

import atexit
import shutil
import struct
import tempfile
from pathlib import Path

SHIPPED = Path("/usr/share/sip-tester")
_PCAP_HEADER = 24
_RECORD_HEADER = 16
_RTP_OFFSET = 14 + 20 + 8  # Ethernet, IPv4, UDP
_folder: Path | None = None


def _cache() -> Path:
    global _folder  # noqa: PLW0603 - one scratch folder per test process
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="dtmf-"))
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


def key_press_pcap(key: str, press: int) -> Path:
    """The pcap for ``key`` as the ``press``-th key of a call (0-based)."""
    name = {"*": "star", "#": "pound"}.get(key, key)
    target = _cache() / f"dtmf_{name}_{press}.pcap"
    if target.exists():
        return target
    data = bytearray((SHIPPED / f"dtmf_2833_{name}.pcap").read_bytes())
    offset, index = _PCAP_HEADER, 0
    while offset + _RECORD_HEADER <= len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        rtp = offset + _RECORD_HEADER + _RTP_OFFSET
        struct.pack_into("!HI", data, rtp + 2, 20000 + press * 50 + index, 100000 + press * 16000)
        offset += _RECORD_HEADER + length
        index += 1
    target.write_bytes(bytes(data))
    return target
