"""FastAGI wire format: the environment block Asterisk sends and the replies to commands.

Pure parsing, tested against transcripts captured from a real Asterisk 22 (tests/golden/).
Reply forms seen on the wire:

    200 result=0
    200 result=1 (timeout) endpos=1234
    200 result=1 (a value with ) inside)   (GET VARIABLE: Asterisk does not escape the value)
    200 result=-1
    510 Invalid or unknown command
    511 Command Not Permitted on a dead channel or intercept routine
    520-Invalid command syntax.  Proper usage follows:
    ...usage text...
    520 End of proper usage.
    HANGUP                       (FastAGI only: the caller hung up; sent before the next reply)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl, urlsplit

MAX_LINE_BYTES = 8192
MAX_ENV_LINES = 256

_RESULT = re.compile(r"200 result=(\S*)")
_KV = re.compile(r"(\w+)=(\S+)")
_TAIL_ITEM = re.compile(r"\w+=\S*")


class AgiProtocolError(ValueError):
    """The peer sent something that is not FastAGI."""


class ReplyKind(Enum):
    """What kind of line a reply is."""

    OK = "ok"  # 200
    INVALID_COMMAND = "invalid_command"  # 510
    DEAD_CHANNEL = "dead_channel"  # 511
    USAGE = "usage"  # 520 (multi-line)
    HANGUP = "hangup"  # out-of-band HANGUP notice


@dataclass(frozen=True)
class AgiReply:
    """One command's reply."""

    kind: ReplyKind
    result: str = ""
    data: str = ""
    extra: tuple[tuple[str, str], ...] = ()
    text: str = ""

    @property
    def result_int(self) -> int:
        """The numeric result (-1 on error/hang-up), 0 when empty."""
        try:
            return int(self.result) if self.result else 0
        except ValueError:
            return 0

    def extra_value(self, key: str) -> str:
        return dict(self.extra).get(key, "")


@dataclass(frozen=True)
class AgiEnvironment:
    """The ``agi_*`` variables of one session and the script path's query arguments."""

    variables: dict[str, str]
    script: str
    arguments: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        """An environment value by its name without the ``agi_`` prefix."""
        value = self.variables.get(f"agi_{name}", default)
        return "" if value in ("unknown", "") else value


def parse_environment(lines: list[str]) -> AgiEnvironment:
    """Parse the header block (without the blank line that ends it)."""
    variables: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiProtocolError(f"not an AGI environment line: {line[:80]!r}")
        variables[key.strip()] = value.strip()
    if "agi_network_script" not in variables and "agi_request" not in variables:
        raise AgiProtocolError("the AGI environment has neither agi_network_script nor agi_request")
    request = variables.get("agi_request", "")
    try:
        split = urlsplit(request) if request.startswith("agi://") else None
    except ValueError as exc:  # e.g. an unclosed "[" (IPv6) in the host
        raise AgiProtocolError(f"not an AGI URL: {request[:80]!r} ({exc})") from None
    script = variables.get("agi_network_script") or (split.path if split else "")
    script, _, query = script.partition("?")
    arguments = dict(parse_qsl(query or (split.query if split else ""), keep_blank_values=True))
    for index in range(1, 64):
        arg = variables.get(f"agi_arg_{index}")
        if arg is None:
            break
        arguments[f"arg{index}"] = arg
    return AgiEnvironment(variables=variables, script=script.strip("/"), arguments=arguments)


def reply_is_complete(lines: list[str]) -> bool:
    """Whether ``lines`` (read so far for one command) form a whole reply."""
    if not lines:
        return False
    first = lines[0]
    if first.startswith("520-"):
        return len(lines) > 1 and lines[-1].startswith("520 ")
    return True


def parse_reply(lines: list[str]) -> AgiReply:
    """Parse one reply (one line, or a 520 block)."""
    if not lines:
        raise AgiProtocolError("empty AGI reply")
    first = lines[0].rstrip("\r\n")
    if first == "HANGUP":
        return AgiReply(ReplyKind.HANGUP, text=first)
    if first.startswith("200"):
        match = _RESULT.match(first)
        if match is None:
            raise AgiProtocolError(f"malformed 200 reply: {first[:80]!r}")
        data, rest = _data_and_rest(first[match.end() :])
        return AgiReply(ReplyKind.OK, result=match.group(1), data=data, extra=tuple(_KV.findall(rest)), text=first)
    if first.startswith("510"):
        return AgiReply(ReplyKind.INVALID_COMMAND, text=first)
    if first.startswith("511"):
        return AgiReply(ReplyKind.DEAD_CHANNEL, text=first)
    if first.startswith("520"):
        return AgiReply(ReplyKind.USAGE, text="\n".join(line.rstrip("\r\n") for line in lines))
    raise AgiProtocolError(f"unknown AGI reply: {first[:80]!r}")


def _data_and_rest(text: str) -> tuple[str, str]:
    """What follows ``200 result=N``: `` (data)`` and `` key=value`` items. Asterisk does not
    escape a ``)`` inside the data (a variable's value), so the data runs to the last ``)``
    that only key=value items follow."""
    if not text.startswith(" ("):
        return "", text
    # the positions from which the rest of the line is only key=value items (right to left:
    # linear in the line's length, whatever it holds)
    tail_starts = {len(text)}
    end = len(text)
    while (space := text.rfind(" ", 0, end)) != -1:
        if end in tail_starts and (end == space + 1 or _TAIL_ITEM.fullmatch(text, space + 1, end)):
            tail_starts.add(space)
        end = space
    close = len(text)
    while (close := text.rfind(")", 2, close)) != -1:
        if close + 1 in tail_starts:
            return text[2:close], text[close + 1 :]
    return "", text


def quote_argument(value: str) -> str:
    """Quote one command argument: Asterisk splits on spaces and honours double quotes."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError("AGI arguments cannot contain line breaks or NUL")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
