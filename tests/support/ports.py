"""Free loopback ports for test servers (so tests run beside ``make run`` and beside each other).

Under pytest-xdist (``make test`` runs several workers, named ``gw0``, ``gw1`` … in
``PYTEST_XDIST_WORKER``) every worker draws from slices of its own, so two workers never hand
out the same port: listener ports from the area above the kernel's ephemeral range (which the
kernel never gives to a ``connect`` or a ``bind`` to port 0, so nothing can take a picked port
between the pick and the server's start), Asterisk's RTP blocks and SIPp's media ports from
their own slice of their areas. Within one worker, listener ports are handed out in turn (one is
handed out again only after the whole slice, ~1,500 ports, has been). A plain ``pytest`` (no
worker) keeps the kernel's picks (bind to port 0) and the whole areas."""

from __future__ import annotations

import itertools
import os
import random
import re
import socket
from pathlib import Path


def free_port(udp: bool = False) -> int:
    """A port nothing listens on now (TCP, or UDP with ``udp=True``)."""
    if _LISTEN_SLICE is None:
        return _kernel_port(udp)
    return _next_listen_port(tcp=not udp, udp=udp)


def free_tcp_and_udp_port() -> int:
    """A port free for both TCP and UDP (SIP listens on UDP; keep TCP clear too)."""
    if _LISTEN_SLICE is not None:
        return _next_listen_port(tcp=True, udp=True)
    for _ in range(100):
        port = _kernel_port(udp=True)
        if _bindable(port, tcp=True, udp=False):
            return port
    raise RuntimeError("no free port")


# Ports the kernel hands out on its own (bind to port 0: SIP sockets, SIPp) come from the
# ephemeral range (32768-60999 on Linux). Asterisk's RTP and SIPp's media ports are kept below
# it, apart from each other, so a port one of them picks is never one the kernel gives away.
RTP_AREA = (20000, 30000)
MEDIA_AREA = (10000, 20000)


def rtp_range(size: int = 200) -> tuple[int, int]:
    """A random even-aligned block of UDP ports for Asterisk's RTP (20000-29999; this worker's slice)."""
    low, high = worker_slice(RTP_AREA)
    start = random.randrange(low + low % 2, high - size, 2)
    return start, start + size - 1


def free_media_port() -> int:
    """A base port for SIPp's media (it uses base … base+3: audio, RTCP, video, RTCP), all free now."""
    low, high = worker_slice(MEDIA_AREA)
    for _ in range(200):
        base = random.randrange(low + (-low) % 4, high - 4, 4)
        if all(_bindable(port, tcp=False, udp=True) for port in range(base, base + 4)):
            return base
    raise RuntimeError("no free block of media ports")


def xdist_worker() -> tuple[int, int] | None:
    """(this worker's index, the number of workers) under pytest-xdist; None in a plain run."""
    match = re.fullmatch(r"gw([0-9]{1,3})", os.environ.get("PYTEST_XDIST_WORKER", ""))
    if match is None:
        return None
    index = int(match[1])
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    return index, max(count, index + 1)


def worker_slice(area: tuple[int, int], worker: tuple[int, int] | None = None) -> tuple[int, int]:
    """This worker's part of ``area`` (``[low, high)``; all of it in a plain run)."""
    worker = worker if worker is not None else xdist_worker()
    if worker is None:
        return area
    index, count = worker
    width = (area[1] - area[0]) // count
    return area[0] + index * width, area[0] + (index + 1) * width


def listen_area(ephemeral: tuple[int, int]) -> tuple[int, int] | None:
    """The ports above the kernel's ephemeral range (``[low, high)``), or None if too few are left."""
    area = (ephemeral[1] + 1, 65536)
    return area if area[1] - area[0] >= 1024 else None


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii").split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _listen_slice() -> tuple[int, int] | None:
    worker = xdist_worker()
    area = listen_area(_ephemeral_range())
    if worker is None or area is None:
        return None  # a plain run, or a box whose ephemeral range leaves no room: the kernel's picks
    return worker_slice(area, worker)


_LISTEN_SLICE = _listen_slice()
_CURSOR = itertools.count(random.randrange(1 << 16))  # where this worker starts in its slice, then in turn


def _next_listen_port(tcp: bool, udp: bool) -> int:
    assert _LISTEN_SLICE is not None
    low, high = _LISTEN_SLICE
    for _ in range(high - low):
        port = low + next(_CURSOR) % (high - low)
        if _bindable(port, tcp=tcp, udp=udp):
            return port
    raise RuntimeError(f"no free port in {low}-{high - 1}")


def _kernel_port(udp: bool) -> int:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int, tcp: bool, udp: bool) -> bool:
    """Nothing holds ``port`` on loopback now (for each of TCP and UDP asked)."""
    kinds = ([socket.SOCK_STREAM] if tcp else []) + ([socket.SOCK_DGRAM] if udp else [])
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True
