"""The fault suite, long version, on a fresh platform per round (real Asterisk, Redis, SIPp).

``controller`` (default): a floor of ``--seats`` seats talking, ``--waiting`` callers queued
behind them and ``--in-menu`` callers in the IVR menu (50 calls by default); the controller is
killed with SIGKILL and restarted after ``--down-s``; every caller is accounted for
(tests/support/chaos.py: served by a seat or a message on disk, one complete record each).

``redis``: ``--messages`` callers leave messages, one every ``--gap-s``, while Redis is hung
(SIGSTOP for ``--hang-s``) and then killed (SIGKILL) and restarted; an ASR worker files the
tickets: messages lost, duplicate tickets, IVR steps that waited more than 1 s on Redis.

The short versions run in ``make test`` (tests/integration/test_chaos.py); figures go to
docs/reliability.md.

Run: .venv/bin/python -m bench.chaos [--scenario controller|redis] [--rounds 3] ...
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.support.chaos import Account, Floor, MessageAccount, MessageDrill


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


def redis_rounds(args: argparse.Namespace) -> None:
    rows: list[tuple[int, MessageAccount, float]] = []
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
            started = time.monotonic()
            drill = MessageDrill(Path(tmp), first_caller=index * args.messages)
            try:
                account = drill.run(callers=args.messages, gap_s=args.gap_s, hang_s=args.hang_s)
            finally:
                drill.stop()
            seconds = time.monotonic() - started
        rows.append((index + 1, account, seconds))
        print(f"round {index + 1}: lost {account.lost}, duplicates {account.duplicate_tickets} {account.report}")
    print()
    print("| round | messages | SIP failures | lost | duplicate tickets | IVR steps | of which > 1 s on Redis | s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for number, account, seconds in rows:
        slow = account.ivr_steps - account.ivr_steps_within_1s
        print(
            f"| {number} | {account.placed} | {len(account.sip_failures)} | {account.lost} | "
            f"{account.duplicate_tickets} | {account.ivr_steps:.0f} | {slow:.0f} | {seconds:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=("controller", "redis"), default="controller")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=30, help="redis: callers leaving messages")
    parser.add_argument("--gap-s", type=float, default=1.0, help="redis: between two callers")
    parser.add_argument("--hang-s", type=float, default=10.0, help="redis: how long Redis is hung")
    parser.add_argument("--seats", type=int, default=20)
    parser.add_argument("--waiting", type=int, default=10)
    parser.add_argument("--in-menu", type=int, default=20)
    parser.add_argument("--talk-s", type=float, default=20.0)
    parser.add_argument("--down-s", type=float, default=3.0, help="how long the controller stays dead")
    args = parser.parse_args()
    if args.scenario == "redis":
        redis_rounds(args)
        return

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
