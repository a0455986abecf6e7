"""The loopback layout of several platforms (make run): ports, folders, trunks, routing."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from hotline.asterisk_files import layout_for, render_asterisk_config
from hotline.config import Config, PathsConfig
from hotline.network import NetworkError, network_configs, platform_ids

REPO = Path(__file__).resolve().parents[2]


def base() -> Config:
    return Config(
        paths=PathsConfig(
            dialplans_dir=REPO / "dialplans", runtime_dir=Path("/srv/var"), spool_dir=Path("/srv/var/spool")
        )
    )


def test_platform_lists() -> None:
    dialplans = REPO / "dialplans"
    assert platform_ids("kunming,province,dali", dialplans) == ["kunming", "province", "dali"]
    everything = platform_ids("all", dialplans)
    assert len(everything) == 17 and everything[:3] == ["kunming", "province", "dali"]
    with pytest.raises(NetworkError, match="no dialplan for atlantis"):
        platform_ids("kunming,atlantis", dialplans)


def test_one_platform_is_the_config_itself() -> None:
    config = base()
    assert network_configs(config, ["kunming"]) == [config]


def test_three_platforms_on_loopback() -> None:
    kunming, province, dali = network_configs(base(), ["kunming", "province", "dali"])
    assert (kunming.platform.id, province.platform.id, dali.platform.id) == ("kunming", "province", "dali")
    assert (dali.platform.area_code, dali.platform.name) == ("0872", "大理州12345政务服务便民热线")
    assert province.platform.province and not kunming.platform.province
    # distinct ports and folders; the first platform keeps the base ones
    assert [c.sip.port for c in (kunming, province, dali)] == [5060, 5070, 5080]
    assert [c.http.port for c in (kunming, province, dali)] == [12345, 12355, 12365]
    assert len({c.asterisk.ami_port for c in (kunming, province, dali)}) == 3
    assert len({c.agi.port for c in (kunming, province, dali)}) == 3
    ranges = sorted((c.sip.rtp_port_min, c.sip.rtp_port_max) for c in (kunming, province, dali))
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))
    assert kunming.paths.runtime_dir == Path("/srv/var")
    assert dali.paths.runtime_dir == Path("/srv/var/platforms/dali")
    assert dali.paths.spool_dir == Path("/srv/var/platforms/dali/spool")
    # trunks: each prefecture to the province; the province to each, with its area code
    assert dali.sip.trunks["province"].port == 5070 and dali.sip.trunks["province"].platform == "province"
    assert province.sip.trunks["dali"].area_code == "0872"
    assert province.sip.trunks["kunming"].port == 5060
    extensions = render_asterisk_config(province, layout_for(province, Path("/tmp/etc")))["extensions.conf"]
    assert "exten => 087212345,1,Set(HOTLINE_ROUTE=dali)" in extensions
    assert "exten => _0XXX12345,1,Goto(hotline-entry,s,1)" in extensions  # areas nobody serves: answered here
    prefecture = render_asterisk_config(dali, layout_for(dali, Path("/tmp/etc")))["extensions.conf"]
    assert "exten => _0XXX12345,1,Set(HOTLINE_ROUTE=province)" in prefecture  # unknown areas: the province
    assert "exten => 087212345,1,Goto(hotline-entry,s,1)" in prefecture


def test_the_platforms_share_one_redis_and_its_password_but_not_their_secrets() -> None:
    configs = network_configs(base(), ["kunming", "province", "dali"])
    assert len({c.redis.url for c in configs}) == 1
    assert len({c.redis.password_file for c in configs}) == 1  # make run's one Redis, one password
    # each Asterisk has its own AMI secret and AGI key (runtime_dir/ami-secret, agi-secret)
    assert len({c.paths.runtime_dir for c in configs}) == 3
