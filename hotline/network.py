"""The province's platforms on one machine (``make run``): configurations derived from one
base config.yaml — ports, folders and the SIP trunks that link each prefecture to the province
— so the demo (and a test bench) is one province, not one city. In production each platform
has its own config.yaml written by its administrators; this is the loopback layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common.yamlsource import parse_yaml
from hotline.config import Config, ConfigError, PlatformConfig
from ivr.dialplan.directory import dialplan_files
from telephony.config import OutboundTrunk
from telephony.dialplan_names import PROVINCE_PLATFORM

DEFAULT_PLATFORMS = ("kunming", PROVINCE_PLATFORM, "dali")
PORT_STEP = 10  # platform i listens on base port + 10·i (SIP, AMI, FastAGI, HTTP)
RTP_PORTS_PER_PLATFORM = 1000


class NetworkError(ConfigError):
    """The requested platforms cannot be laid out (unknown id, no dialplan)."""


def platform_ids(requested: str, dialplans_dir: Path) -> list[str]:
    """``kunming,province,dali`` → that list; ``all`` → every platform with a dialplan, the
    base platform's first. Unknown ids are an error naming the known ones."""
    known = [path.stem for path in dialplan_files(dialplans_dir)]
    if requested == "all":
        return [p for p in DEFAULT_PLATFORMS if p in known] + [p for p in known if p not in DEFAULT_PLATFORMS]
    wanted = [p.strip() for p in requested.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise NetworkError(f"no dialplan for {', '.join(unknown)} in {dialplans_dir} (known: {', '.join(known)})")
    return wanted


def _identity(dialplans_dir: Path, platform: str) -> tuple[str, str]:
    """(name, area code) as the platform's dialplan states them."""
    path = dialplans_dir / f"{platform}.yaml"
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path)).data  # bounded, as the controller reads it
    return str(data["name"]), str(data["area_code"])


def network_configs(base: Config, platforms: Sequence[str]) -> list[Config]:
    """One Config per platform. The first keeps the base config's ports, folders and seats
    (so a single-platform setup is unchanged); the others get their own ports and folders
    under ``<runtime_dir>/platforms/<id>``. Every prefecture has a trunk to the province; the
    province has one to each prefecture, with its area code (属地接听)."""
    if list(platforms) == [base.platform.id]:
        return [base]
    dialplans = base.paths.dialplans_dir
    identities = {p: _identity(dialplans, p) for p in platforms}
    sip_ports = {p: base.sip.port + PORT_STEP * i for i, p in enumerate(platforms)}
    configs = []
    for i, platform in enumerate(platforms):
        name, area_code = identities[platform]
        step = PORT_STEP * i
        runtime = base.paths.runtime_dir if i == 0 else base.paths.runtime_dir / "platforms" / platform
        spool = base.paths.spool_dir if i == 0 else runtime / "spool"
        if platform == PROVINCE_PLATFORM:
            trunks = {
                p: OutboundTrunk(host="127.0.0.1", port=sip_ports[p], platform=p, area_code=identities[p][1])
                for p in platforms
                if p != PROVINCE_PLATFORM
            }
        elif PROVINCE_PLATFORM in platforms:
            trunks = {
                PROVINCE_PLATFORM: OutboundTrunk(
                    host="127.0.0.1", port=sip_ports[PROVINCE_PLATFORM], platform=PROVINCE_PLATFORM
                )
            }
        else:
            trunks = {}
        rtp_min = base.sip.rtp_port_min + RTP_PORTS_PER_PLATFORM * i
        configs.append(
            base.model_copy(
                update={
                    "platform": PlatformConfig(
                        id=platform, name=name, area_code=area_code, province=platform == PROVINCE_PLATFORM
                    ),
                    "sip": base.sip.model_copy(
                        update={
                            "port": sip_ports[platform],
                            "trunks": {**base.sip.trunks, **trunks},
                            "rtp_port_min": rtp_min,
                            "rtp_port_max": rtp_min + RTP_PORTS_PER_PLATFORM - 1,
                        }
                    ),
                    "seats": base.seats if i == 0 else (),
                    "acd": base.acd if i == 0 else base.acd.model_copy(update={"auto_login": ()}),
                    "asterisk": base.asterisk.model_copy(update={"ami_port": base.asterisk.ami_port + step}),
                    "agi": base.agi.model_copy(update={"port": base.agi.port + step}),
                    "http": base.http.model_copy(update={"port": base.http.port + step}),
                    "paths": base.paths.model_copy(update={"runtime_dir": runtime, "spool_dir": spool}),
                }
            )
        )
    return configs
