"""The plain-event fast path gives the same AmiMessage as panoramisk's Message did (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from panoramisk.message import Message

from telephony.ami_protocol import _ONCE, plain_event, to_ami_message

# names in several spellings, the once-only ones and "content"/"result" (panoramisk treats both specially)
_NAMES = st.sampled_from(
    ["Event", "event", "Channel", "CHANNEL", "Uniqueid", "ActionID", "actionid", "CommandID", "Response",
     "Content", "Result", "result", "ChanVariable", "Cause-txt", "X", "Caller ID"]
)  # fmt: skip
_VALUES = st.text(alphabet="ab1 :%20\"'=,.张-", max_size=12)
_LINES = st.one_of(
    st.tuples(_NAMES, _VALUES).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.text(alphabet="ab:", max_size=5),  # no ": ": skipped by both
)


@given(st.text(alphabet="AbcNew", min_size=0, max_size=8), st.lists(_LINES, max_size=8))
def test_a_plain_event_parses_as_panoramisk_did(name: str, lines: list[str]) -> None:
    block = "\r\n".join([f"Event: {name}", *lines]).strip()
    fast = plain_event(block)
    message = Message.from_line(block)
    if message is None:  # "Event:" alone after strip(): no header at all
        assert fast is None
        return
    lowered = {key.lower(): value for key, value in message.items()}
    takes_full_path = (
        "actionid" in lowered or "commandid" in lowered or any(isinstance(lowered.get(k), list) for k in _ONCE)
    )
    if takes_full_path:  # an action's reply or a malformed message: handle_message decides, as before
        assert fast is None
    else:
        assert fast == to_ami_message(message)


def test_only_events_take_the_fast_path() -> None:
    assert plain_event("Response: Success\r\nActionID: 1") is None
    assert plain_event("Event: Hangup\r\nActionID: 7\r\nUniqueid: 1.2") is None
    event = plain_event("Event: Hangup\r\nUniqueid: 1.2\r\nCause-txt: Normal Clearing\r\nResult: %22x%22 ")
    assert event is not None
    assert (event.name, event.get("uniqueid"), event.get("cause-txt"), event.get("result")) == (
        "Hangup", "1.2", "Normal Clearing", '"x"'
    )  # fmt: skip
