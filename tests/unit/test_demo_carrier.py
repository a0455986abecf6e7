"""Where ``make run``'s demo carrier listens: beside the SIP port, inside the port range."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hotline.config import Config, PathsConfig
from hotline.demo_carrier import CARRIER_TRUNK, DemoCarrier, demo_carrier_ports, with_demo_carrier
from telephony.config import SipConfig


@given(st.integers(min_value=1, max_value=65535))
def test_the_carrier_and_its_media_block_are_ports_beside_the_sip_port(sip_port: int) -> None:
    carrier, media = demo_carrier_ports(sip_port)
    taken = {carrier, *range(media, media + 4)}
    assert all(1 <= port <= 65535 for port in taken)
    assert sip_port not in taken and len(taken) == 5
    assert abs(carrier - sip_port) == 1000


def test_above_the_sip_port_where_it_fits_else_below() -> None:
    assert demo_carrier_ports(5060) == (6060, 6064)
    assert demo_carrier_ports(64528) == (65528, 65532)  # the media block ends at 65535
    assert demo_carrier_ports(64529) == (63529, 63533)
    assert demo_carrier_ports(65521) == (64521, 64525)  # a test worker's slice gave this one


def test_a_stack_on_a_high_sip_port_gets_a_carrier_below_it(tmp_path: Path) -> None:
    """A SIP port near 65535 made ``hotline12345 stack`` crash on the trunk's port (66521)."""
    config = Config(
        paths=PathsConfig(dialplans_dir=tmp_path, runtime_dir=tmp_path / "var", spool_dir=tmp_path / "spool"),
        sip=SipConfig(port=65521),
    )
    assert with_demo_carrier(config).sip.trunks[CARRIER_TRUNK].port == 64521
    carrier = DemoCarrier.for_config(config)
    assert (carrier.port, carrier.media_port) == (64521, 64525)
