"""ACD routing decision latency in-process, with 2,000 seats and 10,000 waiting callers.

Two decisions are timed, each p50/p99 over many repetitions:
- late binding: a seat answers and takes the best eligible caller (``CallerIndex.best_for``),
  against a baseline measured in the same run: a linear scan of every waiting caller;
- offer: a caller arrives and the idle seats to ring are chosen (``seats_to_offer``,
  longest-idle), a scan of the idle seats.

Run: .venv/bin/python -m bench.acd_routing [--seats 2000] [--callers 10000] [--decisions 3000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from acd.router import CallerIndex, IdleSeat, Strategy, WaitingCaller, may_take, seats_to_offer

QUEUES = ("general", "complaint", "business", "province", "dialect")
LANGUAGES = ("yi", "bai", "dai", "hani", "zhuang")
RELAX_S = 120.0


def population(seats: int, callers: int, rng: random.Random) -> tuple[list[IdleSeat], list[WaitingCaller]]:
    seat_list = [
        IdleSeat(
            seat_id=f"{1000 + i}",
            queues=frozenset(rng.sample(QUEUES, 2)) | {"general"},
            skills=frozenset(rng.sample(LANGUAGES, rng.randint(0, 2))),
            idle_since=rng.uniform(0, 600),
            calls_taken=rng.randint(0, 40),
        )
        for i in range(seats)
    ]
    caller_list = [
        WaitingCaller(
            call_id=f"k-{i}",
            queue=rng.choice(QUEUES),
            skills=frozenset({rng.choice(LANGUAGES)}) if rng.random() < 0.15 else frozenset(),
            priority=1 if rng.random() < 0.05 else 0,
            entered_at=rng.uniform(0, 600),
        )
        for i in range(callers)
    ]
    return seat_list, caller_list


def linear_best(callers: dict[str, WaitingCaller], seat: IdleSeat, now: float) -> WaitingCaller | None:
    """The baseline: look at every waiting caller."""
    best: WaitingCaller | None = None
    for caller in callers.values():
        if not (caller.queue in seat.queues and may_take(seat.skills, caller, now, RELAX_S)):
            continue
        if best is None or (-caller.priority, caller.entered_at) < (-best.priority, best.entered_at):
            best = caller
    return best


def timed(decide: Callable[[int], object], repetitions: int) -> list[float]:
    samples = []
    for n in range(repetitions):
        started = time.perf_counter_ns()
        decide(n)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return sorted(samples)


def pct(samples: list[float], q: float) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=2000)
    parser.add_argument("--callers", type=int, default=10000)
    parser.add_argument("--decisions", type=int, default=3000)
    args = parser.parse_args()
    rng = random.Random(12345)
    seats, callers = population(args.seats, args.callers, rng)
    now = 700.0

    index = CallerIndex()
    for caller in callers:
        index.add(caller)
    present = {c.call_id: c for c in callers}
    # Each decision binds the chosen caller and a new one arrives, so the waiting set stays full.
    fresh = iter(population(0, args.decisions * 2, random.Random(7))[1])

    def ours(n: int) -> None:
        chosen = index.best_for(seats[n % len(seats)].queues, seats[n % len(seats)].skills, now, RELAX_S)
        if chosen is not None:
            index.remove(chosen.call_id)
            index.add(next(fresh))

    def baseline(n: int) -> None:
        chosen = linear_best(present, seats[n % len(seats)], now)
        if chosen is not None:
            del present[chosen.call_id]
            newcomer = next(fresh)
            present[newcomer.call_id] = newcomer

    def offer(n: int) -> None:
        seats_to_offer(callers[n % len(callers)], seats, Strategy.LONGEST_IDLE, now, RELAX_S)

    ours_us = timed(ours, args.decisions)
    base_us = timed(baseline, args.decisions)
    offer_us = timed(offer, args.decisions)
    print(f"ACD routing decisions, {args.seats} seats, {args.callers} waiting callers, {args.decisions} decisions each")
    print(f"{'decision':46} {'p50 µs':>9} {'p99 µs':>9}")
    print(f"{'late binding: CallerIndex.best_for':46} {pct(ours_us, 0.5):9.1f} {pct(ours_us, 0.99):9.1f}")
    print(f"{'late binding: linear scan (baseline)':46} {pct(base_us, 0.5):9.1f} {pct(base_us, 0.99):9.1f}")
    print(f"{'offer: seats_to_offer, longest-idle':46} {pct(offer_us, 0.5):9.1f} {pct(offer_us, 0.99):9.1f}")
    ratio50 = pct(ours_us, 0.5) / pct(base_us, 0.5)
    ratio99 = pct(ours_us, 0.99) / pct(base_us, 0.99)
    print(f"{'ratio CallerIndex / linear scan':46} {ratio50:9.3f} {ratio99:9.3f}")
    means = f"ours {statistics.fmean(ours_us):.1f} µs, baseline {statistics.fmean(base_us):.1f} µs"
    print(f"mean late-binding decision: {means}")


if __name__ == "__main__":
    main()
