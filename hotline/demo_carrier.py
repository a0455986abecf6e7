"""``make run``'s demo carrier: a SIPp UAS on loopback that answers whatever the carrier trunk
sends it (110/119/120/122, 95598, 12366 …) and plays a tone, so the seat desk's emergency keys
and hand-offs (blind, attended, three-way) work end to end in the demo.

It is started only when config.yaml names no ``carrier`` trunk: a configured carrier (the real
one) always wins."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from common.private_files import private_log
from hotline.config import Config
from telephony.config import OutboundTrunk

CARRIER_TRUNK = "carrier"  # the trunk the shipped dialplans/directory.yaml sends 110 … 95598 on
PORT_OFFSET = 1000  # the demo carrier listens on sip.port + 1000 (5060 → 6060)
MEDIA_OFFSET = 1004  # and sends its RTP from sip.port + 1004 (…+1007: SIPp's media block)
MEDIA_PORTS = 4  # SIPp's media block: the RTP port it is given and the three after it
HIGHEST_PORT = 65535
TEMPLATE = Path(__file__).resolve().parent.parent / "telephony" / "sipp" / "carrier.xml"


class DemoCarrierUnavailable(RuntimeError):
    """SIPp or sox is missing, or SIPp would not start."""


def needs_demo_carrier(config: Config) -> bool:
    return CARRIER_TRUNK not in config.sip.trunks


def demo_carrier_ports(sip_port: int) -> tuple[int, int]:
    """The demo carrier's SIP port and first media port: ``sip_port`` + 1000 and + 1004 (its
    media block up to + 1007), or — when that would pass 65535 (a SIP port above 64528) — as far
    below: - 1000 and - 996, which then are above 63528."""
    if sip_port + MEDIA_OFFSET + MEDIA_PORTS - 1 <= HIGHEST_PORT:
        return sip_port + PORT_OFFSET, sip_port + MEDIA_OFFSET
    return sip_port - PORT_OFFSET, sip_port - PORT_OFFSET + (MEDIA_OFFSET - PORT_OFFSET)


def with_demo_carrier(config: Config) -> Config:
    """``config`` with a ``carrier`` trunk to the demo carrier on loopback."""
    trunk = OutboundTrunk(host="127.0.0.1", port=demo_carrier_ports(config.sip.port)[0])
    sip = config.sip.model_copy(update={"trunks": {**config.sip.trunks, CARRIER_TRUNK: trunk}})
    return config.model_copy(update={"sip": sip})


class DemoCarrier:
    """One SIPp process answering on ``port`` until stopped; its files in ``folder``."""

    def __init__(self, folder: Path, port: int, media_port: int) -> None:
        self.folder = folder
        self.port = port
        self.media_port = media_port
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_config(cls, config: Config) -> DemoCarrier:
        return cls(config.paths.runtime_dir / "demo-carrier", *demo_carrier_ports(config.sip.port))

    def start(self) -> None:
        for tool in ("sipp", "sox"):
            if shutil.which(tool) is None:
                raise DemoCarrierUnavailable(f"{tool} is not installed (make deps): no demo carrier")
        self.folder.mkdir(parents=True, exist_ok=True)
        tone = self.folder / "tone.wav"
        # a ring-back-like tone: 1 s of 450 Hz, 1 s of silence, over and over
        command = ["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(tone)]
        subprocess.run([*command, "synth", "1", "sine", "450", "vol", "0.4", "pad", "0", "1"], check=True)
        scenario = self.folder / "carrier.xml"
        scenario.write_text(TEMPLATE.read_text(encoding="utf-8").replace("TONE_FILE", str(tone)), encoding="utf-8")
        errors = self.folder / "errors.log"
        sipp = [
            "sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(self.port),
            "-mi", "127.0.0.1", "-mp", str(self.media_port), "-nostdin",
            "-trace_err", "-error_file", str(errors),
        ]  # fmt: skip
        with private_log(self.folder / "sipp.log") as log:
            self._proc = subprocess.Popen(
                sipp,
                cwd=self.folder,
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        try:
            self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return  # listening
        raise DemoCarrierUnavailable(
            f"the demo carrier (SIPp on udp:127.0.0.1:{self.port}) exited at once: see {self.folder / 'sipp.log'}"
        )

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
