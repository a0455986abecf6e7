"""Hour counters added up into report rows (pure): per period and queue / seat / node / unit,
with the rates and averages supervisors read (None where there is nothing to divide by: no
score is not a perfect one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reports.buckets import Period, period_label
from reports.counting import ALL_UNITS, SEP, WAIT_BUCKETS_S, Kind

Row = dict[str, Any]
Sums = dict[tuple[str, str], dict[str, int]]
DIMENSION = {Kind.QUEUES: "queue", Kind.SEATS: "seat", Kind.IVR: "node", Kind.CASES: "unit"}


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(ms: float) -> float:
    return round(ms / 1000, 1)


def add_up(
    buckets: Sequence[str], counters: Sequence[dict[str, int]], period: Period
) -> dict[tuple[str, str], dict[str, int]]:
    """(period label, dimension) → summed metrics; a field's further dimensions (a seat's pause
    reason) go into the metric name after a dot."""
    sums: Sums = {}
    for bucket, fields in zip(buckets, counters, strict=True):
        if not fields:
            continue
        label = period_label(bucket, period)
        for name, amount in fields.items():
            metric, _, rest = name.partition(SEP)
            dim, _, extra = rest.partition(SEP)
            if extra:
                metric = f"{metric}.{extra}"
            row = sums.setdefault((label, dim), {})
            row[metric] = row.get(metric, 0) + amount
    return sums


def _queue_row(m: dict[str, int]) -> Row:
    offered, answered, abandoned = m.get("offered", 0), m.get("answered", 0), m.get("abandoned", 0)
    row: Row = {
        "offered": offered,
        "answered": answered,
        "answered_within_15s": m.get("answered_15s", 0),
        "abandoned": abandoned,
        "overflowed": m.get("overflowed", 0),
        "answer_rate": _rate(answered, offered),
        "service_level_15s": _rate(m.get("answered_15s", 0), offered),
        "abandon_rate": _rate(abandoned, offered),
        "asa_s": _seconds(m.get("wait_ms", 0) / answered) if answered else None,
        "average_talk_s": _seconds(m.get("talk_ms", 0) / answered) if answered else None,
        "talk_s": _seconds(m.get("talk_ms", 0)),
        "average_abandoned_wait_s": _seconds(m.get("abandoned_wait_ms", 0) / abandoned) if abandoned else None,
        "surveyed": m.get("surveyed", 0),
        "satisfied": m.get("satisfied", 0),
        "satisfaction_rate": _rate(m.get("satisfied", 0), m.get("surveyed", 0)),
    }
    for what in ("answered", "abandoned"):
        for bound in (*(str(b) for b in WAIT_BUCKETS_S), "inf"):
            row[f"{what}_wait_le_{bound}s"] = m.get(f"{what}_wait_le_{bound}", 0)
    return row


def _seat_row(m: dict[str, int]) -> Row:
    calls = m.get("calls", 0)
    state = {s: m.get(f"state_ms.{s}", 0) for s in ("ready", "ringing", "on_call", "wrap_up", "not_ready")}
    available = state["ready"] + state["ringing"] + state["on_call"] + state["wrap_up"]
    row: Row = {
        "calls": calls,
        "talk_s": _seconds(m.get("talk_ms", 0)),
        "average_talk_s": _seconds(m.get("talk_ms", 0) / calls) if calls else None,
        "wrap_up_s": _seconds(state["wrap_up"]),
        "ready_s": _seconds(state["ready"]),
        "on_call_s": _seconds(state["on_call"]),
        "paused_s": _seconds(state["not_ready"]),
        "occupancy": _rate(state["on_call"] + state["wrap_up"], available),
        "surveyed": m.get("surveyed", 0),
        "satisfied": m.get("satisfied", 0),
        "satisfaction_rate": _rate(m.get("satisfied", 0), m.get("surveyed", 0)),
    }
    for metric in sorted(m):
        if metric.startswith("pause_ms."):
            row["pause_s." + metric.removeprefix("pause_ms.")] = _seconds(m[metric])
    return row


def _ivr_row(m: dict[str, int]) -> Row:
    row: Row = {"visits": m.get("visits", 0)}
    row |= {metric: m[metric] for metric in sorted(m) if metric.startswith(("exit.", "key."))}
    return row


CASE_COUNTS = (
    "dispatched", "dispatched_on_time", "dispatched_late", "signed", "signed_on_time", "signed_late",
    "resolved", "resolved_on_time", "resolved_late", "returned", "extended", "visited",
    "visit_surveyed", "visit_satisfied", "visit_answered_resolved", "visit_resolved",
)  # fmt: skip


def _case_row(m: dict[str, int]) -> Row:
    row: Row = {name: m.get(name, 0) for name in CASE_COUNTS}
    row["overdue"] = row["dispatched_late"] + row["signed_late"] + row["resolved_late"]
    row["dispatch_on_time_rate"] = _rate(row["dispatched_on_time"], row["dispatched"])
    row["sign_on_time_rate"] = _rate(row["signed_on_time"], row["signed"])
    row["resolve_on_time_rate"] = _rate(row["resolved_on_time"], row["resolved"])
    # the 回访's (not the after-seat survey's: that is the queues' and seats' satisfaction_rate)
    row["visit_satisfaction_rate"] = _rate(row["visit_satisfied"], row["visit_surveyed"])
    row["visit_resolved_rate"] = _rate(row["visit_resolved"], row["visit_answered_resolved"])
    return row


def rows(kind: str, buckets: Sequence[str], counters: Sequence[dict[str, int]], period: Period) -> list[Row]:
    """The report: one row per period and dimension, in period then dimension order. For cases,
    each period also has a row for the whole platform (unit ``*``) with accepted, the cases of the
    period resolved since (``cohort_resolved``) and 办结率 (``resolution_rate``)."""
    sums = add_up(buckets, counters, period)
    out: list[Row] = []
    dimension = DIMENSION[kind]
    if kind == Kind.CASES:
        for label in sorted({label for label, _ in sums}):
            whole: dict[str, int] = {}
            for (lab, _dim), m in sums.items():
                if lab == label:
                    for metric, amount in m.items():
                        whole[metric] = whole.get(metric, 0) + amount
            sums[(label, ALL_UNITS)] = whole
    for (label, dim), m in sorted(sums.items()):
        row: Row = {"period": label, dimension: dim}
        if kind == Kind.QUEUES:
            row |= _queue_row(m)
        elif kind == Kind.SEATS:
            row |= _seat_row(m)
        elif kind == Kind.IVR:
            row |= _ivr_row(m)
        else:
            row |= _case_row(m)
            if dim == ALL_UNITS:
                accepted, cohort = m.get("accepted", 0), m.get("cohort_resolved", 0)
                row |= {"accepted": accepted, "cohort_resolved": cohort, "resolution_rate": _rate(cohort, accepted)}
                # 办结率 after 回访: the cases whose citizen said "not resolved" are not counted resolved
                not_resolved = min(m.get("cohort_visit_not_resolved", 0), cohort)
                row |= {
                    "cohort_visit_not_resolved": not_resolved,
                    "resolution_rate_after_visit": _rate(cohort - not_resolved, accepted),
                }
        out.append(row)
    return out
