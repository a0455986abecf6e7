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


def rtp_range(size: int = 200) -> tuple[int, int]:
    """A random even-aligned block of UDP ports in 30000-59999 for Asterisk's RTP."""
    start = random.randrange(30000, 60000 - size, 2)
    return start, start + size - 1
