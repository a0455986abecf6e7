"""Fuzz the AMI framing (telephony/ami_protocol.py): bytes in arbitrary chunks, cut anywhere
(inside a header, a line break or a UTF-8 character), reach our protocol as Asterisk would
deliver them over TCP.

Whatever arrives, ``data_received`` never raises (an exception there closes the AMI connection);
events arrive whole and the same however the stream is cut; pending actions resolve or fail with
AmiConnectionLost."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from telephony.ami_protocol import HotlineAmiProtocol
from telephony.ami_types import AmiConnectionLost, AmiMessage
from tests.fuzz.harness import example, fuzz_target

GREETING = b"Asterisk Call Manager/9.0.0\r\n"
ACTION_IDS = ("fuzz-1", "fuzz-2", "fuzz-3")


class Transport:
    """What the protocol writes to; nothing is read back."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class Connection:
    """One protocol instance, with the events it delivered."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: list[AmiMessage] = []
        self.lost: list[BaseException | None] = []
        self.protocol = self.loop.run_until_complete(self._make())
        self.protocol.connection_made(Transport())

    async def _make(self) -> HotlineAmiProtocol:
        return HotlineAmiProtocol(self.events.append, self.lost.append)

    def feed(self, chunks: list[bytes]) -> None:
        def received() -> None:
            for chunk in chunks:
                self.protocol.data_received(chunk)

        self.run(received)

    def send(self, action_id: str) -> asyncio.Future[Any]:
        """A Status action with this id, pending (made on the loop, as panoramisk needs)."""
        sent: list[asyncio.Future[Any]] = []
        self.run(lambda: sent.append(self.protocol.send_action({"Action": "Status", "ActionID": action_id})[1]))
        return sent[0]

    def run(self, work: Callable[[], object]) -> None:
        """Run ``work`` inside the loop (panoramisk makes its futures on the running loop)."""

        async def inside() -> None:
            work()

        self.loop.run_until_complete(inside())

    def close(self) -> None:
        self.protocol.connection_lost(None)
        self.loop.run_until_complete(asyncio.sleep(0))  # let done futures run their callbacks


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` in chunks cut at ``points`` (positions taken modulo its length)."""
    if not data:
        return [data]
    at = sorted({p % len(data) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(at)]


fragments = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"\r\n",
            b"\r\n\r\n",
            b"\n",
            b": ",
            b"Event: Newchannel\r\n",
            b"Event: \r\n",
            b"Response: Success\r\n",
            b"Response: Follows\r\n",
            b"Response: Error\r\n",
            b"Message: will follow\r\n",
            b"EventList: start\r\n",
            b"EventList: Complete\r\n",
            b"Event: CoreShowChannelsComplete\r\n",
            b"Event: OriginateResponse\r\n",
            b"SubEvent: End\r\n",
            b'Result: "quoted"\r\n',
            b"--END COMMAND--\r\n",
            b"CallerIDName: \xe5\xbc\xa0\xe4\xb8\x89\xe4\xb8\xb0\r\n",  # 张三丰
            b"\xe5\xbc",  # a character cut short
            b"\xff\xfe",
            *[f"ActionID: {a}\r\n".encode() for a in ACTION_IDS],
            *[f"CommandID: {a}\r\n".encode() for a in ACTION_IDS],
        ]
    ),
)


@fuzz_target("ami.bytes")
@given(
    st.lists(fragments, max_size=40),
    st.lists(st.integers(0, 10_000), max_size=12),
    st.booleans(),
)
def test_any_bytes_in_any_chunks_never_break_the_connection(
    fuzz_loop: asyncio.AbstractEventLoop, parts: list[bytes], points: list[int], greet: bool
) -> None:
    connection = Connection(fuzz_loop)
    with example("ami.bytes"):
        try:
            for action_id in ACTION_IDS:
                connection.send(action_id)
            connection.feed(cut((GREETING if greet else b"") + b"".join(parts), points))
            for event in connection.events:
                assert isinstance(event.name, str)
                assert all(isinstance(key, str) for key in event.headers)
        finally:
            connection.close()


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
header_names = st.builds(
    str.__add__, st.sampled_from(_LETTERS), st.text(_LETTERS + "0123456789_-", max_size=12)
).filter(lambda name: name.lower() not in ("event", "response", "actionid", "commandid", "content", "result"))
# a value as Asterisk sends it: no line break; not starting or ending with blanks (the block is
# stripped); Chinese names, digits, punctuation, a ": " inside
values = (
    st.text(
        st.one_of(
            st.characters(exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"]),
            st.sampled_from("张三丰云南昆明 :;,=/"),
        ),
        min_size=1,
        max_size=20,
    )
    .map(str.strip)
    .filter(bool)
)
events = st.tuples(
    values,
    st.lists(st.tuples(header_names, values), max_size=8, unique_by=lambda item: item[0].lower()),
)


def encode(name: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"Event: {name}", *(f"{key}: {value}" for key, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


@fuzz_target("ami.events")
@given(st.lists(events, min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=20))
def test_events_arrive_whole_however_the_stream_is_cut(
    fuzz_loop: asyncio.AbstractEventLoop, sent: list[tuple[str, list[tuple[str, str]]]], points: list[int]
) -> None:
    stream = GREETING + b"".join(encode(name, headers) for name, headers in sent)
    whole, split = Connection(fuzz_loop), Connection(fuzz_loop)
    with example("ami.events"):
        try:
            whole.feed([stream])
            split.feed(cut(stream, points))
            assert [dict(e.headers) for e in split.events] == [dict(e.headers) for e in whole.events]
            assert [
                (event.name, {k: event.get(k) for k in event.headers if k != "event"}) for event in split.events
            ] == [(name, {key.lower(): value for key, value in headers}) for name, headers in sent]
        finally:
            whole.close()
            split.close()


responses = st.one_of(
    st.builds(
        lambda action_id, response, message, extra: "".join(
            [
                f"Response: {response}\r\n",
                f"ActionID: {action_id}\r\n",
                f"Message: {message}\r\n" if message else "",
                "".join(f"{k}: {v}\r\n" for k, v in extra),
                "\r\n",
            ]
        ),
        st.sampled_from(ACTION_IDS),
        st.sampled_from(["Success", "Error", "Follows", "Goodbye", "Fail", ""]),
        st.sampled_from(["", "will follow", "Added interface to queue", "Originate successfully queued", "失败"]),
        st.lists(st.tuples(st.sampled_from(["EventList", "ActionID", "Event", "SubEvent"]), values), max_size=3),
    ),
    st.builds(
        lambda action_id, name, headers: encode(name, [("ActionID", action_id), *headers]).decode(),
        st.sampled_from(ACTION_IDS),
        st.sampled_from(["CoreShowChannel", "CoreShowChannelsComplete", "QueueMember", "OriginateResponse"]),
        st.lists(st.tuples(header_names | st.sampled_from(["EventList", "ActionID", "Event"]), values), max_size=4),
    ),
)


@fuzz_target("ami.responses")
@given(st.lists(responses, max_size=10), st.lists(st.integers(0, 10_000), max_size=10))
def test_pending_actions_resolve_or_fail_cleanly(
    fuzz_loop: asyncio.AbstractEventLoop, replies: list[str], points: list[int]
) -> None:
    connection = Connection(fuzz_loop)
    futures: list[asyncio.Future[Any]] = []
    with example("ami.responses"):
        try:
            futures += [connection.send(action_id) for action_id in ACTION_IDS]
            connection.feed(cut(GREETING + "".join(replies).encode("utf-8"), points))
        finally:
            connection.close()
        for future in futures:
            assert future.done()  # answered, or failed when the connection was lost
            if future.exception() is not None:
                assert isinstance(future.exception(), AmiConnectionLost)
