"""The controller's restart gap (docs/benchmarks.md "Controller restart gap"): while no controller
serves FastAGI, new calls take the fallback route (a message, no seat). A restarted controller
serves FastAGI before it loads the knowledge base, and a call placed the moment it does reaches
the IVR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.platform import REPO, SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.sipp import ANSWERED, HOTLINE_HANGS_UP, INVITE, run_sipp, scenario

pytestmark = pytest.mark.integration


def _events(platform: PlatformUnderTest, offset: int) -> list[str]:
    """The events of the controller's JSON log lines from byte ``offset`` on, in order."""
    with platform.controller_log.open("rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode(errors="replace").splitlines()
    events = []
    for line in lines:
        try:
            events.append(str(json.loads(line).get("event")))
        except (ValueError, AttributeError):
            continue
    return events


def test_a_call_placed_as_a_restarted_controller_serves_agi_reaches_the_ivr(tmp_path: Path) -> None:
    # the shipped knowledge base: jieba's dictionary, a second or more of every start
    platform = PlatformUnderTest(tmp_path / "platform", overrides={"knowledge": {"dir": str(REPO / "knowledge_base")}})
    platform.start_all()
    try:
        assert platform.stop_controller() == 0  # SIGTERM: the drain
        offset = platform.controller_log.stat().st_size
        platform.start_controller(wait_ami=False, wait_http=False)
        # the moment the new controller says FastAGI listens (no wait for its HTTP API or AMI)
        wait_for("agi.listening", lambda: "agi.listening" in _events(platform, offset), timeout_s=60, interval_s=0.02)
        result = run_sipp(platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13800004321")
        assert result.ok, result.errors

        call = platform.wait_call(
            lambda c: c["caller"] == "138****4321" and c["state"] == "ended", "the call's record, ended", timeout_s=60
        )
        assert call["outcome"] == "ivr_completed" and "fallback" not in call["ivr_path"], call
        # FastAGI served before the knowledge base was loaded (it loads in the background) …
        events = _events(platform, offset)
        assert events.index("agi.listening") < events.index("knowledge.loaded"), events
        # … which then serves the seat desk's search
        wait_for("the knowledge base", lambda: platform.http("/api/v1/knowledge/status").body["loading"] is False)
        found = platform.http("/api/v1/knowledge?q=%E5%85%AC%E7%A7%AF%E9%87%91", token=SEAT_TOKEN)
        assert found.status == 200 and found.body["entries"], found
    finally:
        platform.stop_all()
