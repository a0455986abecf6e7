"""The fault suite, long version: the controller killed with -9 under a full floor, repeatedly.

Each round builds a floor on a fresh platform (real Asterisk, Redis, SIPp): ``--seats`` seats
talking, ``--waiting`` callers queued behind them and ``--in-menu`` callers in the IVR menu
(50 calls by default), kills the controller with SIGKILL, restarts it after ``--down-s``, and
accounts for every caller (tests/support/chaos.py: served by a seat or a message on disk, one
complete record each). The short version of this runs in ``make test``
(tests/integration/test_chaos.py); figures go to docs/reliability.md.

Run: .venv/bin/python -m bench.chaos [--rounds 3] [--seats 20] [--waiting 10] [--in-menu 20]
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.support.chaos import Account, Floor


def one_round(root: Path, args: argparse.Namespace) -> Account:
    talk_ms = int(args.talk_s * 1000)
    floor = Floor.create(root, seats=args.seats, waiting=args.waiting, in_menu=args.in_menu, talk_ms=talk_ms)
    floor.start()
    try:
        floor.fill(patience_ms=talk_ms * 4 + 60_000)
        controller = floor.platform.controller
        assert controller is not None
        controller.send_signal(signal.SIGKILL)
        controller.wait()
        floor.platform.controller = None
        time.sleep(args.down_s)
        floor.platform.start_controller()
        return floor.finish()
    finally:
        floor.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seats", type=int, default=20)
    parser.add_argument("--waiting", type=int, default=10)
    parser.add_argument("--in-menu", type=int, default=20)
    parser.add_argument("--talk-s", type=float, default=20.0)
    parser.add_argument("--down-s", type=float, default=3.0, help="how long the controller stays dead")
    args = parser.parse_args()

    rows = []
    total: Counter[str] = Counter()
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
            started = time.monotonic()
            account = one_round(Path(tmp), args)
            seconds = time.monotonic() - started
        total.update(account.outcomes)
        rows.append((index + 1, account, seconds))
        print(f"round {index + 1}: {account.summary()} ({seconds:.0f} s)", flush=True)

    print()
    print("| round | calls up at the kill | dropped | duplicated records | answered | fallback | voicemail | s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for number, account, seconds in rows:
        outcomes = account.outcomes
        print(
            f"| {number} | {account.placed} | {account.dropped} | {len(account.duplicated)} | "
            f"{outcomes['answered']} | {outcomes['fallback']} | {outcomes['voicemail']} | {seconds:.0f} |"
        )
    placed = sum(a.placed for _, a, _ in rows)
    dropped = sum(a.dropped for _, a, _ in rows)
    print(f"\n{args.rounds} rounds, {placed} calls, {dropped} dropped; outcomes {dict(total)}")


if __name__ == "__main__":
    main()
