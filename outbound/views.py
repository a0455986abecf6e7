"""What the API and /metrics show of the dialler: its status, its metrics, a job (number masked).
Pure: outbound/service.py's OutboundService reads the store and the budget and hands them here."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from common.metrics import Metric
from common.privacy import mask_number
from outbound.model import Job, JobState, Kind
from outbound.policy import ChannelBudget


def status_view(jobs: list[Job], budget: ChannelBudget, *, platform: str, enabled: bool) -> dict[str, object]:
    """The dialler's status (GET /api/v1/outbound): the budget and the jobs per kind and state."""
    kinds: dict[str, dict[str, int]] = {str(k): {str(s): 0 for s in JobState} for k in Kind}
    for job in jobs:
        kinds[str(job.kind)][str(job.state)] += 1
    return {
        "platform": platform,
        "enabled": enabled,
        "paused": budget.paused,
        "held_by": budget.held_by,
        "channels": {"in_use": budget.in_use, "max": budget.max_channels},
        "inbound_waiting": budget.inbound_waiting,
        "service_level": {"last_15min": budget.service_level, "min": budget.min_service_level},
        "kinds": kinds,
    }


def metrics_view(results: dict[str, int], budget: ChannelBudget, *, platform: str) -> list[Metric]:
    """The tries per kind and result (``<kind>:<result>`` counts), and the channels in use."""
    samples = [
        Metric(
            "hotline_outbound_attempts_total",
            "counter",
            "Automated outbound tries by kind and result",
            float(count),
            (("platform", platform), ("kind", key.partition(":")[0]), ("result", key.partition(":")[2])),
        )
        for key, count in sorted(results.items())
    ]
    samples.append(
        Metric(
            "hotline_outbound_channels_in_use",
            "gauge",
            "Automated outbound calls on a channel now",
            float(budget.in_use),
            (("platform", platform),),
        )
    )
    return samples


def job_view(job: Job, zone: ZoneInfo) -> dict[str, object]:
    """A job as the API shows it: the number masked."""

    def when(epoch: float) -> str | None:
        return datetime.fromtimestamp(epoch, zone).isoformat() if epoch else None

    return {
        "id": job.id,
        "ticket_id": job.ticket_id,
        "kind": str(job.kind),
        "number": mask_number(job.number),
        "state": str(job.state),
        "tries": job.tries,
        "next_try_at": when(job.due_at) if job.state is JobState.QUEUED else None,
        "last_result": job.last_result or None,
        "updated_at": when(job.updated_at),
        "results": [
            {"at": when(float(at)), "result": result} for at, _, result in (line.partition(" ") for line in job.history)
        ],
    }
