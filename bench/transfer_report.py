"""The transfer bench's table: percentiles per system and mark, ratios against the baseline, notes per round."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.transfer_model import LABELS, SYSTEMS, WITH_HANDOFF, Round, Settings, Transfer


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def marks_ms(transfers: list[Transfer], mark: str) -> list[float]:
    values = [t.ms(getattr(t, mark)) for t in transfers]
    return [v for v in values if v is not None]


@dataclass(frozen=True)
class Summary:
    system: str
    rounds: int
    transfers: int
    not_seated: int
    failed: int
    api_failed: int
    no_ring: int
    not_transferred: int
    not_picked_up: int
    p50: dict[str, float]
    p99: dict[str, float]
    cpu_ms: dict[str, float]  # per transfer

    @classmethod
    def of(cls, system: str, rounds: list[Round]) -> Summary:
        mine = [r for r in rounds if r.system == system]
        transfers = [t for r in mine for t in r.transfers]
        count = max(len(transfers), 1)
        marks = {m: marks_ms(transfers, m) for m in ("replied", "arrived", "queued", "rang")}
        cpu = {name: sum(r.cpu_s[name] for r in mine) * 1000 / count for name in mine[0].cpu_s} if mine else {}
        return cls(
            system=system, rounds=len(mine), transfers=len(transfers),
            not_seated=sum(r.placed - r.seated for r in mine),
            failed=sum(t.failed for t in transfers),
            api_failed=sum(t.status != 202 for t in transfers),
            no_ring=sum(t.rang is None for t in transfers),
            not_transferred=sum(t.outcome != "transferred" for t in transfers),
            not_picked_up=sum(system in WITH_HANDOFF and not t.picked_up for t in transfers),
            p50={m: percentile(v, 50) for m, v in marks.items()},
            p99={m: percentile(v, 99) for m, v in marks.items()},
            cpu_ms=cpu,
        )  # fmt: skip


HEADER = (
    f"{'system':<26}{'xfers':>6}{'failed':>7}{'api':>4}{'noring':>7}{'notxf':>6}{'nopick':>7}"
    f"{'202 p50':>8}{'202 p99':>8}{'arr p50':>8}{'arr p99':>8}{'que p50':>8}{'que p99':>8}"
    f"{'RING p50':>9}{'RING p99':>9}"
)


def row(s: Summary) -> str:
    return (
        f"{LABELS[s.system]:<26}{s.transfers:>6}{s.failed:>7}{s.api_failed:>4}{s.no_ring:>7}"
        f"{s.not_transferred:>6}{s.not_picked_up:>7}"
        f"{s.p50['replied']:>8.1f}{s.p99['replied']:>8.1f}{s.p50['arrived']:>8.1f}{s.p99['arrived']:>8.1f}"
        f"{s.p50['queued']:>8.1f}{s.p99['queued']:>8.1f}{s.p50['rang']:>9.1f}{s.p99['rang']:>9.1f}"
    )


def ratio_row(ours: Summary, base: Summary) -> str:
    """``ours`` over ``base``, mark by mark."""

    def r(mark: str, q: dict[str, float], b: dict[str, float]) -> str:
        return f"{q[mark] / b[mark]:.2f}" if b[mark] else "n/a"

    cells = "".join(
        f"{r(m, ours.p50, base.p50):>8}{r(m, ours.p99, base.p99):>8}" for m in ("replied", "arrived", "queued")
    )
    label = f"ratio {ours.system}/{base.system}"
    return (
        f"{label:<26}{'':>6}{'':>7}{'':>4}{'':>7}{'':>6}{'':>7}{cells}"
        f"{r('rang', ours.p50, base.p50):>9}{r('rang', ours.p99, base.p99):>9}"
    )


def report(settings: Settings, rounds: list[Round], husks: list[str]) -> None:
    base, ours, attended = (Summary.of(system, rounds) for system in SYSTEMS)
    print()
    print(
        f"Transfers 昆明 → province, {settings.pairs} at once per round ({settings.pairs} callers with "
        f"{settings.pairs} 昆明 seats → {settings.pairs} provincial seats), {base.rounds} + {ours.rounds} + "
        f"{attended.rounds} rounds alternating; ms from the POST"
    )
    print("202 = API answered; arr = INVITE at the province's trunk (AMI Newchannel); que = queued for a seat")
    print("(AMI, after the province's IVR); RING = INVITE at the provincial seat's phone (SIPp trace)")
    print(HEADER)
    for summary in (base, ours, attended):
        print(row(summary))
    print(ratio_row(ours, base))
    print(ratio_row(attended, base))
    names = list(base.cpu_ms)
    print("CPU ms per transfer round trip (whole round: caller arrival, seating, transfer, talk, hang-up):")
    for s in (base, ours, attended):
        print(f"  {LABELS[s.system]:<26}" + "  ".join(f"{n} {s.cpu_ms[n]:.1f}" for n in names))
    for r in rounds:
        notes = []
        if r.seated < r.placed:
            notes.append(f"only {r.seated} of {r.placed} callers were seated in 昆明 (not transferred)")
        if r.sip_failed:
            notes.append(f"{r.sip_failed} SIPp caller failures")
        if r.leftover_channels:
            notes.append(f"{r.leftover_channels} channels still up 20 s after the round:\n{r.leftover_detail[:1500]}")
        if r.stuck_seats:
            notes.append(f"{r.stuck_seats} seats not back to ready")
        for t in r.transfers:
            if t.failed:
                notes.append(
                    f"{t.call_id} ({t.caller}): status {t.status} {t.error} rang={t.rang is not None} "
                    f"outcome={t.outcome or '-'} picked_up={t.picked_up}"
                )
        if notes:
            print(f"--- round {r.round_no} ({r.system}):\n  " + "\n  ".join(notes[:25]))
    print(f"Surrogate channels still up at the end (Bridge() husks that never went away): {len(husks)}")
    for line in husks[:20]:
        print(f"  {line}")
