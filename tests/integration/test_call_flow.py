"""A citizen's call through real Asterisk into our FastAGI, and the call record it leaves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.platform import REPO, SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    HOTLINE_HANGS_UP,
    INVITE,
    REJECTED_404,
    pause,
    run_sipp,
    scenario,
)

pytestmark = pytest.mark.integration


def test_caller_hears_greeting_and_record_shows_the_call(platform: PlatformUnderTest) -> None:
    result = run_sipp(
        platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller="13912345678", timeout_s=60
    )
    assert result.ok, result.errors

    call = platform.wait_call(lambda c: c["caller"] == "139****5678" and c["state"] == "ended", "the call record")
    assert call["platform"] == "kunming"
    assert call["called"] == "12345"
    assert call["outcome"] == "ivr_completed"
    assert call["ivr_path"] == ["welcome", "bye"]
    assert call["answered_at"] is not None
    assert call["started_at"] <= call["answered_at"] <= call["ended_at"]
    assert call["call_id"].startswith("kunming-")


def test_area_code_number_reaches_the_same_ivr(platform: PlatformUnderTest) -> None:
    result = run_sipp(
        platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), number="087112345", caller="13911110001"
    )
    assert result.ok, result.errors
    call = platform.wait_call(lambda c: c["caller"] == "139****0001" and c["state"] == "ended", "the call record")
    assert call["called"] == "087112345"
    assert call["outcome"] == "ivr_completed"


def test_caller_hanging_up_mid_greeting_is_recorded_as_abandoned(platform: PlatformUnderTest) -> None:
    result = run_sipp(
        platform.config.sip.port, scenario(INVITE, ANSWERED, pause(1500), CALLER_HANGS_UP), caller="13922220002"
    )
    assert result.ok, result.errors
    call = platform.wait_call(lambda c: c["caller"] == "139****0002" and c["state"] == "ended", "the call record")
    assert call["outcome"] == "abandoned"
    assert call["ivr_path"] == ["welcome"]
    # a hang-up is a normal end of a session, not a handler failure
    assert "hotline_agi_sessions_failed_total 0" in platform.http("/metrics", token=None).body


def test_unknown_number_on_the_trunk_is_refused(platform: PlatformUnderTest) -> None:
    result = run_sipp(platform.config.sip.port, scenario(INVITE, REJECTED_404), number="99999")
    assert result.ok, result.errors


def test_call_list_needs_a_supervisor_token(platform: PlatformUnderTest) -> None:
    assert platform.http("/api/v1/calls", token=None).status == 401
    assert platform.http("/api/v1/calls", token="not-a-token").status == 401
    assert platform.http("/api/v1/calls", token=SEAT_TOKEN).status == 403
    assert platform.http("/api/v1/calls").status == 200


def test_chinese_caller_name_arrives_whole_and_masked(platform: PlatformUnderTest) -> None:
    result = run_sipp(
        platform.config.sip.port,
        scenario(INVITE, ANSWERED, pause(500), CALLER_HANGS_UP),
        caller="13933330003",
        caller_name="张三丰",
    )
    assert result.ok, result.errors
    call = platform.wait_call(lambda c: c["caller"] == "139****0003" and c["state"] == "ended", "the call record")
    assert call["caller_name"] == "张**"
    assert platform.http(f"/api/v1/calls/{call['call_id']}").body["caller_name"] == "张**"
    # stored whole (AMI and AGI both carry it; a split UTF-8 character must not vanish)
    assert platform.stored_call(call["call_id"])["caller_name"] == "张三丰"
    assert "13933330003" not in platform.controller_log_text()


def test_sighup_reloads_the_dialplan(platform: PlatformUnderTest) -> None:
    before = platform.http("/api/v1/dialplans").body["version"]
    platform.install_dialplan("greet", lambda text: text.replace("再见。", "再见，祝您顺利。"))
    assert platform.controller is not None
    platform.controller.send_signal(signal.SIGHUP)
    try:
        after = wait_for("the new version", lambda: platform.http("/api/v1/dialplans").body["version"] != before and 1)
        assert after
        status = platform.http("/api/v1/dialplans").body
        assert status["reloads_ok"] >= 1
        assert status["last_error"] == ""
        metrics = platform.http("/metrics", token=None).body
        assert f'hotline_dialplan_reloads_total{{result="ok"}} {status["reloads_ok"]}' in metrics
    finally:
        platform.install_dialplan("greet")


def test_controller_refuses_to_start_on_a_broken_dialplan(tmp_path: Path) -> None:
    broken = PlatformUnderTest(tmp_path / "broken")
    broken.install_dialplan("greet", lambda text: text.replace("next: bye", "next: by"))
    result = subprocess.run(
        [sys.executable, "-m", "hotline.cli", "run", "--config", str(broken.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "kunming.yaml:10:" in result.stderr
    assert "target 'by' is not a node" in result.stderr
