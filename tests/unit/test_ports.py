"""Test ports under pytest-xdist (tests/support/ports.py): each worker draws from slices of its
own, listener ports lie above the kernel's ephemeral range, and a worker never hands one out twice in a row."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import pytest

from tests.support import ports


def test_workers_get_disjoint_slices_covering_no_more_than_the_area() -> None:
    for count in (1, 2, 3, 4, 8):
        slices = [ports.worker_slice(ports.RTP_AREA, (index, count)) for index in range(count)]
        assert slices[0][0] == ports.RTP_AREA[0] and slices[-1][1] <= ports.RTP_AREA[1]
        for (_, high), (low, _) in itertools.pairwise(slices):
            assert high <= low  # no port in two slices
    assert ports.worker_slice(ports.MEDIA_AREA, (0, 1)) == ports.MEDIA_AREA


def test_worker_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    assert ports.xdist_worker() == (2, 3)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "")
    assert ports.xdist_worker() == (2, 3)  # at least as many workers as its index says
    for name in ("", "master", "gw", "gw-1", "gw1\n"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", name)
        assert ports.xdist_worker() is None


def test_listener_area_lies_above_the_ephemeral_range() -> None:
    assert ports.listen_area((32768, 60999)) == (61000, 65536)
    assert ports.listen_area((1024, 65000)) is None  # too few left: the kernel's picks instead


@pytest.mark.parametrize("index", [0, 1, 2])
def test_rtp_and_media_picks_stay_in_the_workers_slice(monkeypatch: pytest.MonkeyPatch, index: int) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    rtp_low, rtp_high = ports.worker_slice(ports.RTP_AREA)
    media_low, media_high = ports.worker_slice(ports.MEDIA_AREA)
    for _ in range(200):
        start, end = ports.rtp_range()
        assert rtp_low <= start and end < rtp_high and start % 2 == 0
        base = ports.free_media_port()
        assert media_low <= base and base + 3 < media_high and base % 4 == 0


def test_listener_ports_come_in_turn_from_the_slice_and_skip_a_taken_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_LISTEN_SLICE", (61000, 61008))
    monkeypatch.setattr(ports, "_CURSOR", itertools.count(0))
    if not all(ports._bindable(port, tcp=True, udp=True) for port in range(61000, 61008)):
        pytest.skip("a port of 61000-61007 is in use on this box")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        try:
            held.bind(("127.0.0.1", 61001))
        except OSError:
            pytest.skip("port 61001 is in use on this box")
        picked = [ports.free_port(), ports.free_tcp_and_udp_port(), ports.free_port(udp=True)]
    assert picked[0] == 61000
    assert picked[1] not in (61000, 61001)  # 61001's UDP side is held
    assert len(set(picked)) == 3 and all(61000 <= port < 61008 for port in picked)


def test_the_fault_modules_are_scheduled_together_and_every_other_module_alone() -> None:
    from tests.conftest import FAULT_MODULES, scheduling_scope

    repo = Path(__file__).resolve().parents[2]
    assert FAULT_MODULES and all((repo / module).is_file() for module in FAULT_MODULES)  # none renamed away
    assert {scheduling_scope(f"{module}::test_x[1]") for module in FAULT_MODULES} == {"faults"}
    assert scheduling_scope("tests/integration/test_acd.py::test_x") == "tests/integration/test_acd.py"
    assert scheduling_scope("tests/unit/test_ports.py") == "tests/unit/test_ports.py"
