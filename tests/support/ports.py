"""Free loopback ports for test servers (so tests run beside ``make run``)."""

from __future__ import annotations

import random
import socket


def free_port(udp: bool = False) -> int:
    """A port nothing listens on now (TCP, or UDP with ``udp=True``)."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_tcp_and_udp_port() -> int:
    """A port free for both TCP and UDP (SIP listens on UDP; keep TCP clear too)."""
    for _ in range(100):
        port = free_port(udp=True)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


# Ports the kernel hands out on its own (bind to port 0: SIP sockets, SIPp) come from the
# ephemeral range (32768-60999 on Linux). Asterisk's RTP and SIPp's media ports are kept below
# it, apart from each other, so a port one of them picks is never one the kernel gives away.
RTP_AREA = (20000, 30000)
MEDIA_AREA = (10000, 20000)


def rtp_range(size: int = 200) -> tuple[int, int]:
    """A random even-aligned block of UDP ports for Asterisk's RTP (20000-29999)."""
    start = random.randrange(RTP_AREA[0], RTP_AREA[1] - size, 2)
    return start, start + size - 1


def free_media_port() -> int:
    """A base port for SIPp's media (it uses base … base+3: audio, RTCP, video, RTCP), all free now."""
    for _ in range(200):
        base = random.randrange(MEDIA_AREA[0], MEDIA_AREA[1] - 4, 4)
        sockets = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise RuntimeError("no free block of media ports")
