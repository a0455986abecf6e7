"""Reports on a real Asterisk: SIPp callers reach a SIPp seat; the counters the controller kept
as the calls ended answer the report routes (queues, seats, IVR, CSV) and the call search, and a
controller restart counts nothing twice."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.integration.test_acd import PlatformFactory, ended_records, login, make_platform, masked, place_calls
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import SippServer, answering_peer, scenario

pytestmark = pytest.mark.integration
__all__ = ["make_platform"]  # the fixture, from test_acd

CHINA = ZoneInfo("Asia/Shanghai")


def report(platform: PlatformUnderTest, kind: str, fmt: str = "json") -> Any:
    today = datetime.now(CHINA).date()
    query = f"from={today - timedelta(days=1)}&to={today}&by=month&format={fmt}"
    result = platform.http(f"/api/v1/reports/{kind}?{query}")
    assert result.status == 200, result.body
    return result.body


def queue_row(platform: PlatformUnderTest) -> dict[str, Any] | None:
    rows = [row for row in report(platform, "queues")["rows"] if row["queue"] == "general"]
    return rows[0] if rows else None


def test_reports_count_real_calls_once(make_platform: PlatformFactory) -> None:
    port = free_tcp_and_udp_port()
    platform = make_platform({"1001": {"port": port}}, {})
    server = SippServer(scenario(answering_peer(talk_ms=2000, hang_up=True)), port=port, calls=3)
    login(platform, "1001")
    for call in place_calls(platform, 3, first=1):
        assert call.wait().ok
    records = ended_records(platform, 1, 3)
    assert all(r["outcome"] == "answered" and r["seat"] == "1001" for r in records)

    row = wait_for("the queue report", lambda: (r := queue_row(platform)) and r["answered"] == 3 and r)
    assert (row["offered"], row["answered"], row["abandoned"]) == (3, 3, 0)
    assert row["average_talk_s"] >= 1.5 and row["asa_s"] is not None
    seats = wait_for(
        "the seat report",
        lambda: next((r for r in report(platform, "seats")["rows"] if r["seat"] == "1001" and r["calls"] == 3), None),
    )
    assert seats["talk_s"] >= 4.5 and seats["on_call_s"] >= 4.5  # from the seat's own state changes
    assert seats["occupancy"] is not None and 0 < seats["occupancy"] <= 1
    ivr = report(platform, "ivr")["rows"]
    assert sum(v for r in ivr for k, v in r.items() if k.startswith("exit.answered")) == 3
    csv_text = platform.http_bytes(
        f"/api/v1/reports/queues?from={datetime.now(CHINA).date()}&to={datetime.now(CHINA).date()}&format=csv"
    ).decode("utf-8-sig")
    assert csv_text.splitlines()[0].startswith("period,queue,")

    today = datetime.now(CHINA).date()
    found = platform.http(f"/api/v1/calls/search?from={today - timedelta(days=1)}&to={today}&seat=1001").body
    assert sorted(c["call_id"] for c in found["calls"]) == sorted(r["call_id"] for r in records)
    assert {c["caller"] for c in found["calls"]} == {r["caller"] for r in records}  # masked, as in the list
    assert all("****" in c["caller"] for c in found["calls"])
    number = "13900000002"
    by_caller = platform.http(f"/api/v1/calls/search?from={today - timedelta(days=1)}&to={today}&caller={number}")
    assert [c["caller"] for c in by_caller.body["calls"]] == [masked(number)]
    audit = platform.http("/api/v1/audit").body
    assert any(e["action"] == "calls.search.caller" for e in audit["audit"])

    # a restarted controller adopts the records and counts none of the calls again
    platform.stop_controller()
    platform.start_controller()
    assert queue_row(platform) == row
    server.stop()
