"""After the seat: the after_seat entry (schema, checks), who is asked, the case number read back
over a FastAGI session, the satisfaction figures, and the dialplan Asterisk runs."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acd.model import QueuedCall
from acd.stats import platform_satisfaction, queue_stats, seat_stats
from calls.model import CallOutcome, CallRecord
from calls.tracker import CallTracker
from hotline.asterisk_files import render_asterisk_config
from hotline.config import parse_config
from ivr.after_seat import AFTER_SEAT_TAG, AfterSeatNeed, IvrAfterSeat, SurveyTally, after_seat_needed, skip_reason
from ivr.dialplan.loader import DialplanInvalid, parse_dialplan
from ivr.dialplan.registry import DialplanRegistry
from ivr.interpreter import IvrContext
from telephony.agi_server import AgiServer
from telephony.asterisk_conf import AsteriskLayout
from telephony.say_zh import SOUND_SET
from tests.support.fake_asterisk_agi import ReplayingAsterisk
from tests.unit.test_calls import FakeClock, MemoryStore

T0 = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)

PLAN = """\
platform: dali
name: 大理州12345
area_code: "0872"
prompts:
  menu: 请按键
  bye: 再见
  leave: 请留言
  case: 您的工单编号是
  survey: 满意请按一，基本满意请按二，不满意请按三
start: menu
after_seat: case
nodes:
  menu: {kind: menu, prompt: menu, options: {0: seat}, default: seat}
  seat: {kind: queue, next: vm}
  vm: {kind: voicemail, prompt: leave, next: bye}
  bye: {kind: hangup, prompt: bye}
  case: {kind: case_number, prompt: case, next: survey}
  survey: {kind: survey, prompt: survey, scale: 3, next: bye}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(DialplanInvalid) as caught:
        parse_dialplan(textwrap.dedent(text), "dali.yaml", lambda name: False)
    return [str(p) for p in caught.value.problems]


def test_after_seat_entry_makes_its_nodes_reachable() -> None:
    plan = parse_dialplan(PLAN, "dali.yaml", lambda name: False)
    assert plan.spec.after_seat == "case"
    assert plan.node("case").kind == "case_number"
    assert plan.warnings == ()
    # without the entry the survey nodes hang in the air
    found = problems(PLAN.replace("after_seat: case\n", ""))
    assert any("node 'case' cannot be reached" in p for p in found)


def test_after_seat_naming_no_node_names_file_and_line() -> None:
    found = problems(PLAN.replace("after_seat: case", "after_seat: nowhere"))
    assert any(p.startswith("dali.yaml:11:") and "after_seat node 'nowhere' does not exist" in p for p in found), found


def test_case_number_node_needs_a_prompt_and_a_next() -> None:
    found = problems(PLAN.replace("case_number, prompt: case, next", "case_number, next"))
    assert any("prompt" in p and p.startswith("dali.yaml:17:") for p in found), found
    found = problems(PLAN.replace("prompt: case, next: survey", "prompt: nothing, next: survey"))
    assert any("prompt 'nothing' has no text" in p for p in found), found


def test_after_seat_that_queues_again_is_a_warning() -> None:
    text = PLAN.replace("survey, scale: 3, next: bye", "survey, scale: 3, next: seat")
    plan = parse_dialplan(text, "dali.yaml", bool)
    assert [w.message for w in plan.warnings] == [
        "after_seat 'case' leads to queue node(s) seat: the caller would wait for a seat again after talking with one"
    ]


def record(**changes: object) -> CallRecord:
    return CallRecord(call_id="k-1.1", platform="dali", started_at=T0).model_copy(update=changes)


def test_who_is_asked_after_the_seat() -> None:
    seated = record(seat="1001", seat_answered_at=T0, outcome=CallOutcome.ANSWERED)
    assert skip_reason(seated, "case") == ""
    assert skip_reason(seated, None) == "no after_seat entry in the dialplan"
    assert skip_reason(None, "case") == "no live record of the call"
    transferred = seated.model_copy(update={"outcome": CallOutcome.TRANSFERRED})
    assert skip_reason(transferred, "case") == "the seat transferred the caller"
    assert skip_reason(record(), "case") == "no seat talked with the caller"
    again = seated.model_copy(update={"tags": {AFTER_SEAT_TAG: "case"}})
    assert skip_reason(again, "case") == "the after_seat entry already ran"


def answered(seat: str, score: int | None, queue: str = "general", minutes_ago: float = 10) -> CallRecord:
    at = T0 - timedelta(minutes=minutes_ago)
    return record(
        call_id=f"{seat}-{score}-{queue}-{minutes_ago}",
        seat=seat,
        queue=queue,
        queued_at=at,
        seat_answered_at=at,
        outcome=CallOutcome.ANSWERED,
        survey_score=score,
    )


def test_satisfaction_per_seat_queue_and_platform() -> None:
    records = [
        answered("1001", 1),
        answered("1001", 2),
        answered("1001", 3),
        answered("1001", None),  # no answer to the survey: not counted either way
        answered("1002", 3, queue="dialect"),
        answered("1002", 1, minutes_ago=25 * 60),  # outside the window
    ]
    first = seat_stats("1001", records, T0, WINDOW)
    assert (first.answered, first.surveyed, first.satisfied) == (4, 3, 2)
    assert first.satisfaction_rate == pytest.approx(2 / 3)
    second = seat_stats("1002", records, T0, WINDOW)
    assert (second.surveyed, second.satisfaction_rate) == (1, 0.0)
    assert seat_stats("1003", records, T0, WINDOW).satisfaction_rate is None  # no survey yet: not 0, not 1
    general = queue_stats("general", records, T0, WINDOW)
    assert (general.surveyed, general.satisfied) == (3, 2)
    assert queue_stats("dialect", records, T0, WINDOW).satisfaction_rate == 0.0
    assert queue_stats("other", records, T0, WINDOW).satisfaction_rate is None
    assert platform_satisfaction(records, T0, WINDOW) == (4, 2)


def test_asterisk_sends_the_caller_on_only_when_the_seat_hangs_up_first() -> None:
    config = parse_config("platform: {id: dali, area_code: '0872'}", "config.yaml", Path("/srv/hotline"))
    layout = AsteriskLayout(Path("/opt/ast"), Path("/srv/etc"), Path("/srv/var/asterisk"))
    extensions = render_asterisk_config(config, layout)["extensions.conf"]
    offer = extensions.split("[hotline-offer]")[1].split("\n[")[0]
    # the seat AGI's HOTLINE_AFTER_SEAT=0 (nothing runs after this seat) picks the quiet extension
    assert 'Bridge(${HOTLINE_CALLER},TF(hotline-after-seat^${IF($["${HOTLINE_AFTER_SEAT}" = "0"]?quiet:s)}^1))' in offer
    after = extensions.split("[hotline-after-seat]")[1].split("\n[")[0]
    # a consultation the seat left ringing is a failed transfer, checked before the AGI
    assert after.index("SHARED(HOTLINE_CONSULTING)") < after.index("/after-seat)")
    # the controller away or failing: a goodbye, then the end; never dead air
    rest = after.split("/after-seat)")[1]
    assert rest.index('GotoIf($["${HOTLINE_IVR_DONE}" = "1"]?done)') < rest.index("/prompts/goodbye)")
    assert rest.index("/prompts/goodbye)") < rest.index("(done),Hangup()")
    assert "Goto(hotline-transfer,s,failed)" in after
    # the quiet extension: the same consultation check, then the end, no AGI
    quiet = after.split("exten => quiet,1,")[1].split("exten => h,")[0]
    assert quiet.startswith('GotoIf($["${SHARED(HOTLINE_CONSULTING)}" = "1"]?s,consult)')
    assert "AGI(" not in quiet and quiet.rstrip().endswith("same => n,Hangup()")


def _record(version: str) -> CallRecord:
    record = CallRecord(call_id="k-1.1", platform="dali", started_at=T0, channel="PJSIP/trunk-1", caller="13900000001")
    return record.model_copy(update={"dialplan_version": version})


def test_the_after_seat_agi_is_needed_for_a_survey_a_browser_phone_or_what_is_not_known() -> None:
    with_entry = parse_dialplan(PLAN, "dali.yaml", lambda name: False)
    without = parse_dialplan(
        "\n".join(line for line in PLAN.splitlines() if not line.startswith(("after_seat:", "  case:", "  survey:"))),
        "dali.yaml",
        lambda name: False,
    )
    assert not after_seat_needed(_record("v1"), without, seat_phone_may_drop=False)  # nothing can run
    assert after_seat_needed(_record("v1"), with_entry, seat_phone_may_drop=False)  # case number, survey
    assert after_seat_needed(_record("v1"), without, seat_phone_may_drop=True)  # a lost phone requeues
    assert after_seat_needed(None, without, seat_phone_may_drop=False)  # no live record: the AGI decides
    assert after_seat_needed(_record(""), without, seat_phone_may_drop=False)  # version on the channel only


async def test_the_seat_agi_asks_the_callers_own_version_and_the_answering_seats_phone(tmp_path: Path) -> None:
    dialplans = tmp_path / "dialplans"
    dialplans.mkdir()
    plain = "\n".join(
        line for line in PLAN.splitlines() if not line.startswith(("after_seat:", "  case:", "  survey:"))
    )
    (dialplans / "dali.yaml").write_text(plain, encoding="utf-8")

    async def no_prompts(_plan: object) -> None:
        return None

    registry = DialplanRegistry(dialplans / "dali.yaml", tmp_path / "prompts", "dali", no_prompts)
    await registry.load_initial()
    first = registry.current.version
    tracker = CallTracker(MemoryStore(), "dali", FakeClock())
    await tracker.ivr_started("k-1.1", channel="PJSIP/trunk-1", caller="13900000001", caller_name="", called="12345")
    await tracker.amend("k-1.1", {"dialplan_version": first})
    need = AfterSeatNeed(tracker, registry, browser_seats=["1002"])
    assert not need.needed("k-1.1", "1001")  # a desk phone, no after_seat entry in the caller's version
    assert need.needed("k-1.1", "1002")  # a browser phone may drop mid-call
    assert need.needed("k-9.9", "1001")  # not a live call here
    # an after_seat entry added while the caller waits: the caller keeps the version it started on
    (dialplans / "dali.yaml").write_text(PLAN, encoding="utf-8")
    await registry.reload("test")
    assert registry.current.version != first
    assert not need.needed("k-1.1", "1001")
    await tracker.ivr_started("k-2.1", channel="PJSIP/trunk-2", caller="13900000002", caller_name="", called="12345")
    await tracker.amend("k-2.1", {"dialplan_version": registry.current.version})
    assert need.needed("k-2.1", "1001")  # a caller of the new version hears the survey


class _NoQueue:
    async def enqueue(self, call: QueuedCall) -> None:
        raise AssertionError("no queue after the seat")

    def staffed(self, queue: str) -> bool:
        return False


class _NoMessages:
    async def message_recorded(self, message: object) -> None:
        raise AssertionError("no message after the seat")

    def recording(self, recording: str) -> contextlib.AbstractContextManager[None]:
        raise AssertionError("no message after the seat")


def _reply_ok() -> str:
    return "200 result=0\n"


async def _after_seat_session(tmp_path: Path, case_id: str, key: str) -> tuple[list[str], CallRecord, SurveyTally]:
    """Runs the after-seat script for a call a seat answered, against a scripted Asterisk."""
    dialplans = tmp_path / "dialplans"
    dialplans.mkdir()
    (dialplans / "dali.yaml").write_text(PLAN, encoding="utf-8")

    async def no_prompts(_plan: object) -> None:
        return None

    registry = DialplanRegistry(dialplans / "dali.yaml", tmp_path / "prompts", "dali", no_prompts)
    await registry.load_initial()
    tracker = CallTracker(MemoryStore(), "dali", FakeClock())
    await tracker.ivr_started("k-1.1", channel="PJSIP/trunk-1", caller="13900000001", caller_name="", called="12345")
    await tracker.amend(
        "k-1.1", {"seat": "1001", "seat_answered_at": T0, "outcome": CallOutcome.ANSWERED, "case_id": case_id}
    )
    tally = SurveyTally()
    sounds = tmp_path / "zh"
    sounds.mkdir()
    for name in SOUND_SET:  # the built Mandarin sound set (tests/unit/test_say_zh.py builds the real one)
        (sounds / f"{name}.wav").write_bytes(b"RIFF")
    context = IvrContext(
        tracker=tracker,
        prompts_dir=tmp_path / "built",
        sounds_dir=sounds,
        spool_dir=tmp_path / "spool",
        timezone="Asia/Shanghai",
        clock=FakeClock(),
        acd=_NoQueue(),
        messages=_NoMessages(),
        surveys=(tally,),
    )
    handler = IvrAfterSeat(tracker, registry, context)
    server = AgiServer("127.0.0.1", 0, {"after-seat": handler})
    await server.start()
    environment = "agi_network: yes\nagi_network_script: after-seat\nagi_uniqueid: k-1.1\n"
    environment += "agi_channel: PJSIP/trunk-1\n\n"
    get_data = f'GET DATA "{tmp_path / "built" / "survey"}" 6000 1'
    asterisk = ReplayingAsterisk(environment, {get_data: f"200 result={key}\n"}, default_reply=_reply_ok())
    try:
        async with asyncio.timeout(10):
            await asterisk.run(server.port)
    finally:
        await server.close(drain_timeout_s=1)
    live = tracker.get_live("k-1.1")
    assert live is not None
    return asterisk.received, live, tally


async def test_the_case_number_is_read_back_then_the_survey_scores_the_call(tmp_path: Path) -> None:
    received, live, tally = await _after_seat_session(tmp_path, "DL2026030900042", "1")
    says = [c for c in received if c.startswith("SAY") or "/zh/" in c]
    # in Mandarin, from our own set: never Asterisk's SAY ALPHA (its English digits/ and letters/)
    assert says == [f'STREAM FILE "{tmp_path / "zh" / f"char_{ch}"}" ""' for ch in "dl2026030900042"]
    assert received.index(f'STREAM FILE "{tmp_path / "built" / "case"}" ""') < received.index(says[0])
    assert live.survey_score == 1
    assert live.outcome is CallOutcome.ANSWERED  # still a call a seat answered
    assert live.tags[AFTER_SEAT_TAG] == "case"
    assert live.ivr_path[-3:] == ("case", "survey", "bye")
    assert tally.answers == {("", 1): 1}


async def test_no_case_no_read_back_and_nothing_odd_reaches_asterisk(tmp_path: Path) -> None:
    received, live, _ = await _after_seat_session(tmp_path, "", "3")
    assert not [c for c in received if c.startswith("SAY") or "/zh/" in c or c.endswith('/case" ""')]
    assert live.survey_score == 3


async def test_a_case_number_with_line_breaks_is_spoken_as_letters_and_digits_only(tmp_path: Path) -> None:
    received, _, _ = await _after_seat_session(tmp_path, 'DL-42\nHANGUP "x', "2")
    spoken = [c.split("/zh/char_")[1][0] for c in received if "/zh/" in c]
    assert "".join(spoken) == "dl42hangupx"
    assert not [c for c in received if c.startswith("SAY")]
