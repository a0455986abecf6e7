"""The stack of bench/soak_province.py: ``hotline12345 stack --platforms …`` (one Redis, one
Asterisk per platform, every controller in one process, as ``make run PLATFORMS=all``), except
that every platform gets its own seats (``make run`` gives seats to the first platform only).

Run by the harness: python -m bench.soak_province_stack --config C --platforms all --seats S.json
(S.json: {"<platform>": [{"id": …, "name": …, "contact": …}, …]})."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from acd.config import SeatConfig
from common.clock import clock_from_environment
from common.private_files import PRIVATE_UMASK
from hotline.cli import demo_token_file, token_registry
from hotline.config import Config, load_config
from hotline.logs import configure_logging
from hotline.network import network_configs, platform_ids
from hotline.stack import run_stack


def with_seats(config: Config, seats: list[dict[str, str]]) -> Config:
    """``config`` with these seats, all logged in at start."""
    models = tuple(SeatConfig.model_validate(seat) for seat in seats)
    acd = config.acd.model_copy(update={"auto_login": tuple(seat.id for seat in models)})
    return config.model_copy(update={"seats": models, "acd": acd})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--platforms", required=True)
    parser.add_argument("--seats", required=True, help="JSON: each platform's seats")
    args = parser.parse_args()
    os.umask(PRIVATE_UMASK)
    base = load_config(Path(args.config))
    configure_logging(base.logging.level, base.logging.format)
    seats: dict[str, list[dict[str, str]]] = json.loads(Path(args.seats).read_text(encoding="utf-8"))
    configs = network_configs(base, platform_ids(args.platforms, base.paths.dialplans_dir))
    configs = [with_seats(c, seats.get(c.platform.id, [])) for c in configs]
    clock = clock_from_environment(os.environ)
    return run_stack(configs, Path(args.config), token_registry(base), demo_token_file(base), clock)


if __name__ == "__main__":
    sys.exit(main())
