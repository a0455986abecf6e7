"""AMI framing over panoramisk's protocol, with its traps fixed.

panoramisk 1.4 traps handled here (see docs/architecture.md):
- bytes were decoded per TCP chunk with ``errors='ignore'``, so a UTF-8 character split across
  reads vanished (张三丰 arrived as 三丰): we decode incrementally;
- on connection loss unanswered actions were queued and re-sent after reconnect (an Originate
  could ring a seat twice): we fail them with AmiConnectionLost and never re-send;
- a lost connection left futures pending forever: every pending future is failed at once;
- a reply ending in "to queue" (QueueAdd) was taken for the start of a list and never resolved.
Also: panoramisk writes field values as they are, so a value with a line break (a channel
variable, a caller id) would add headers or a whole action: such an action is refused, unsent.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

import structlog
from panoramisk import actions as pk_actions
from panoramisk import utils as pk_utils
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from telephony.ami_types import AmiConnectionLost, AmiInvalidAction, AmiMessage

log = structlog.get_logger(__name__)

# headers a message has at most once (Asterisk sends them once; a peer that repeats one is wrong)
_ONCE = ("event", "response", "actionid", "commandid")


class _Action(pk_actions.Action):
    """panoramisk's Action, minus its guess that any reply ending in "to queue" opens a list
    (QueueAdd's "Added interface to queue" then never resolved). A reply is a list only when
    Asterisk says so (EventList: start, "will follow"). An async Originate resolves at
    "successfully queued"; its OriginateResponse comes later as an event (the ACD waits for it
    as an event, not by holding an action open for the whole ring time)."""

    @property
    def multi(self) -> bool:
        first = self.responses[0]
        message = str(first.get("message", "")).lower()
        return str(first.get("eventlist", "")).lower() == "start" or "will follow" in message


def check_action_fields(fields: Mapping[str, str | list[str]]) -> None:
    """Refuse an action a field of which would break AMI's framing: CR, LF or NUL in a header
    name or value, or a ':' in a name. Raises AmiInvalidAction naming the field (not its value)."""
    for name, value in fields.items():
        if not name or any(c in name for c in "\r\n\0:"):
            raise AmiInvalidAction(f"AMI field name {name!r} is not a header name")
        for item in value if isinstance(value, list) else [value]:
            if any(c in str(item) for c in "\r\n\0"):
                raise AmiInvalidAction(f"{fields.get('Action')}: field {name} holds a line break; not sent")


def to_ami_message(message: Message) -> AmiMessage:
    """panoramisk's Message → our immutable AmiMessage (keys lower-cased)."""
    headers: dict[str, str | tuple[str, ...]] = {}
    for key, value in message.items():
        if key.lower() == "content":
            continue
        headers[key.lower()] = tuple(value) if isinstance(value, list) else str(value)
    return AmiMessage(headers=headers, content=str(getattr(message, "content", "") or ""))


def plain_event(block: str) -> AmiMessage | None:
    """A stripped block that is a plain event (``Event: `` first, no ActionID or CommandID, no
    once-only header repeated) straight to our AmiMessage, as ``to_ami_message`` would give it
    from panoramisk's Message (which builds a case-insensitive dict per message: a visible share
    of the controller's CPU per call). Anything else is None: the full path handles it."""
    if not block.startswith("Event: "):
        return None
    raw: dict[str, str | list[str]] = {}  # as Message.from_line: repeats by exact name
    for line in block.split("\r\n"):
        if ": " in line:
            key, value = line.split(": ", 1)
            if key.lower() == "result":  # panoramisk's quoted_keys
                value = unquote(value).strip()
            if key in raw:
                old = raw[key]
                raw[key] = [*old, value] if isinstance(old, list) else [old, value]
            else:
                raw[key] = value
    merged: dict[str, str | list[str]] = {}  # CaseInsensitiveDict: the last spelling wins
    for name, values in raw.items():
        merged[name.lower()] = values
    merged.pop("content", None)  # Message's content keyword overwrites it; to_ami_message drops it
    if "actionid" in merged or "commandid" in merged or any(isinstance(merged.get(k), list) for k in _ONCE):
        return None
    headers = {key: tuple(value) if isinstance(value, list) else value for key, value in merged.items()}
    return AmiMessage(headers=headers)


class HotlineAmiProtocol(AMIProtocol):
    """One AMI TCP connection; events go to ``on_event``, loss to ``on_lost``."""

    def __init__(
        self,
        on_event: Callable[[AmiMessage], None],
        on_lost: Callable[[BaseException | None], None],
        wanted: Callable[[str], bool] = lambda _name: True,
    ) -> None:
        super().__init__()
        self.closed = False
        self._on_event = on_event
        self._wanted = wanted  # event name → whether a handler listens (others are not parsed)
        self.events_skipped = 0
        self._on_lost = on_lost
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.greeting = asyncio.get_running_loop().create_future()
        self._outgoing: list[bytes] = []  # actions sent in this turn of the loop, not yet written

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.encoding = "utf-8"
        self.buffer = ""

    def data_received(self, data: bytes) -> None:
        # Incremental decoding keeps a multi-byte character that straddles two reads whole.
        text = self.buffer + self._decoder.decode(data)
        if not self.greeting.done():
            first, sep, rest = text.partition(pk_utils.EOL)
            if not sep:
                self.buffer = text
                return
            self.greeting.set_result(first.strip())
            text = rest
        blocks = text.split(pk_utils.EOL + pk_utils.EOL)
        self.buffer = blocks.pop()
        for block in blocks:
            if self._unwanted(block):
                self.events_skipped += 1
                continue
            event = plain_event(block.strip())
            if event is not None:
                self._on_event(event)
                continue
            message = Message.from_line(block.strip())
            if message is not None:
                self.handle_message(message)

    def _unwanted(self, block: str) -> bool:
        """An event nobody listens for, told from its first line without parsing the block (an
        Asterisk not filtering at the source sends many). Anything with an ActionID may answer
        an action (a list's events, an async Originate's response): always parsed."""
        if not block.startswith("Event: ") or "ActionID:" in block:
            return False
        name = block[7:].partition("\r\n")[0].strip()
        return not self._wanted(name)

    def handle_message(self, message: Message) -> None:
        repeated = [key for key in _ONCE if isinstance(message.get(key), list)]
        if repeated:  # panoramisk reads a repeated header as a list: no id, no event name
            log.warning("ami.malformed_message", repeated=repeated)
            return
        pending = self.responses.get(message.id)
        if pending is None and message.action_id:
            pending = self.responses.get(message.action_id)
        if pending is not None:
            if pending.add_message(message):
                self.responses.pop(pending.id, None)
                if pending.action_id:
                    self.responses.pop(pending.action_id, None)
            return
        if "event" in message:
            self._on_event(to_ami_message(message))

    def send_action(self, fields: dict[str, str | list[str]]) -> tuple[str, asyncio.Future[Any]]:
        """Write one action; returns its ActionID and the future of its response(s).
        Raises AmiInvalidAction (nothing written) when a field would break AMI's framing."""
        check_action_fields(fields)
        action = _Action(fields)
        self.responses[action.id] = action
        # written at the end of this turn of the event loop, with every other action sent in it:
        # one socket write (one wake-up of Asterisk's manager thread) for several actions
        self._outgoing.append(str(action).encode("utf-8"))
        if len(self._outgoing) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return str(action.id), action.future

    def _flush(self) -> None:
        data, self._outgoing = b"".join(self._outgoing), []
        if not self.closed:
            self.transport.write(data)

    def forget(self, action_id: str) -> None:
        """Stop waiting for an action (it timed out); a late reply is then dropped."""
        self.responses.pop(action_id, None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._fail_pending(exc)
        if not self.greeting.done():
            self.greeting.set_exception(AmiConnectionLost("connection closed before the AMI greeting"))
        self._on_lost(exc)

    def close(self) -> None:
        self._fail_pending(None)
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (half-open: a FIN may never be answered)."""
        self._fail_pending(None)
        self.closed = True
        self.transport.abort()

    def _fail_pending(self, exc: BaseException | None) -> None:
        for action in list(self.responses.values()):
            if not action.future.done():
                action.future.set_exception(
                    AmiConnectionLost(f"AMI connection lost before {action['action']} was answered")
                )
        self.responses.clear()
