"""The sixth round of cuts on the IVR call path (docs/benchmarks.md): a record's versions copied
without pydantic's generic ``model_copy``, and a call's report increments with each distinct
time's hour bucket computed once. Both must give exactly what they replaced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from unittest import mock
from zoneinfo import ZoneInfo

import pytest

from acd.window import RollingFigures
from calls.model import CallOutcome, CallRecord, CallState, end_call, transition, with_changes
from reports import buckets, counting
from reports.counting import Increment, call_increments, field

T0 = datetime(2026, 11, 30, 1, 59, 58, tzinfo=UTC)  # 09:59:58 China time: the hour turns during the call


def _record() -> CallRecord:
    return CallRecord(call_id="c1", platform="kunming", started_at=T0, channel="PJSIP/trunk-1", caller="13800138000")


UPDATES: list[dict[str, object]] = [
    {},
    {"revision": 7},
    {"state": CallState.IN_IVR, "ivr_path": ("caller_check", "entry"), "tags": {"category": "consultation"}},
    {"queued_at": T0 + timedelta(seconds=3), "queue": "general", "digits": ("main_menu=1",)},
    {"ended_at": T0 + timedelta(seconds=9), "outcome": CallOutcome.ABANDONED, "hangup_cause": "Normal Clearing"},
]


@pytest.mark.parametrize("update", UPDATES)
def test_with_changes_is_model_copy_with_update(update: dict[str, object]) -> None:
    record = with_changes(_record(), {"answered_at": T0 + timedelta(seconds=1)})  # fields set grown once
    ours, pydantics = with_changes(record, dict(update)), record.model_copy(update=dict(update))
    assert type(ours) is CallRecord
    assert ours == pydantics
    assert ours.__dict__ == pydantics.__dict__
    assert ours.model_fields_set == pydantics.model_fields_set
    assert ours.__pydantic_extra__ == pydantics.__pydantic_extra__
    assert ours.__pydantic_private__ == pydantics.__pydantic_private__
    assert ours.model_dump_json() == pydantics.model_dump_json()
    assert ours is not record and ours.__dict__ is not record.__dict__
    assert record == with_changes(_record(), {"answered_at": T0 + timedelta(seconds=1)})  # the original untouched
    with pytest.raises(Exception, match="frozen"):
        ours.caller = "x"


def test_transitions_and_end_as_before() -> None:
    record = transition(_record(), CallState.IN_IVR)
    assert record.state is CallState.IN_IVR and "state" in record.model_fields_set
    ended = end_call(record, T0 + timedelta(seconds=5), "Normal Clearing")
    end = {"ended_at": T0 + timedelta(seconds=5), "hangup_cause": "Normal Clearing", "outcome": CallOutcome.ABANDONED}
    expected = record.model_copy(update={"state": CallState.ENDED}).model_copy(update=end)
    assert ended == expected and ended.model_fields_set == expected.model_fields_set


def _unbucketed(record: CallRecord, tz: ZoneInfo) -> list[Increment]:
    """call_increments as it was: hour_bucket for every increment."""
    with mock.patch.object(counting._Adder, "__call__", _old_add):
        return call_increments(record, tz)


def _old_add(self: counting._Adder, kind: str, when: datetime, metric: str, dim: str, amount: int = 1) -> None:  # noqa: PLR0917
    self.out.append(Increment(kind, buckets.hour_bucket(when, self.tz), field(metric, dim), amount))


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC", "America/Los_Angeles"])
def test_call_increments_bucket_each_time_once_with_the_same_result(zone: str) -> None:
    tz = ZoneInfo(zone)
    other = timezone(timedelta(hours=8))  # the same instant in another offset: the same hour
    record = with_changes(
        _record(),
        {
            "ivr_path": ("caller_check", "entry", "welcome", "main_menu", "consultation", "to_seat", "busy_voicemail"),
            "digits": ("main_menu=1", "survey="),
            "queue": "general",
            "queued_at": (T0 + timedelta(seconds=3)).astimezone(other),
            "seat": "1001",
            "seat_answered_at": T0 + timedelta(seconds=20),
            "survey_score": 1,
            "state": CallState.ENDED,
            "ended_at": T0 + timedelta(seconds=90),
            "outcome": CallOutcome.ANSWERED,
        },
    )
    calls = 0
    real = buckets.hour_bucket

    def counted(when: datetime, tz: ZoneInfo) -> str:
        nonlocal calls
        calls += 1
        return real(when, tz)

    with mock.patch.object(counting, "hour_bucket", counted):
        increments = call_increments(record, tz)
    assert increments == _unbucketed(record, tz)
    assert len(increments) > 10
    if zone == "Asia/Shanghai":
        assert {i.bucket[8:] for i in increments} == {"09", "10"}  # the call crossed 10:00
    assert calls == 3  # started, queued, the seat's answer: once each


def test_the_figures_read_the_clock_only_for_versions_that_change_them() -> None:
    """Every version of two calls (one abandoned in the queue, one answered by a seat) put with
    the clock itself, against the old way (the clock read for every version): the same figures
    and the same window; the clock read only where a side's entry changed."""
    reads = 0

    def clock() -> datetime:
        nonlocal reads
        reads += 1
        return T0 + timedelta(minutes=5)

    old, new = RollingFigures(timedelta(hours=24)), RollingFigures(timedelta(hours=24))
    versions: list[CallRecord] = []
    for call_id, seat in (("a", ""), ("b", "1001")):
        record = _record().model_copy(update={"call_id": call_id})
        versions.append(record)
        for step in UPDATES[1:3]:  # IVR steps: nothing the figures count
            versions.append(record := with_changes(record, step))
        versions.append(record := with_changes(record, {"queue": "general", "queued_at": T0 + timedelta(seconds=3)}))
        if seat:
            at = T0 + timedelta(seconds=9)
            versions.append(record := with_changes(record, {"seat": seat, "seat_answered_at": at}))
            versions.append(record := with_changes(record, {"tags": {"x": "y"}}))  # the same entries again
        end = {"state": CallState.ENDED, "ended_at": T0 + timedelta(seconds=60)}
        versions.append(
            with_changes(record, {**end, "outcome": CallOutcome.ANSWERED if seat else CallOutcome.ABANDONED})
        )
    for version in versions:
        old.put(version, clock())
    reads_before = reads
    for version in versions:
        new.put(version, clock)
    now = T0 + timedelta(minutes=5)
    assert new.queue("general", now) == old.queue("general", now)
    assert new.seat("1001", now) == old.seat("1001", now)
    assert new.queue("general", now).offered == 2
    assert len(new) == len(old) == 3
    # changed entries: a's end (abandoned); b's answer and its end (talk) — not the 9 other versions
    assert reads - reads_before == 3
    assert reads_before == len(versions) == 12
