"""The shapes of values that reach Asterisk: its config files, dial strings, AGI and AMI.

Every value an administrator writes (config.yaml, the dialplans, the hotline directory) that
ends up in a rendered Asterisk file, a dial string, a FastAGI command or a command line has one
of these types, checked where it is loaded (errors name file, line and key). Whole-string
matches only (``re.fullmatch``; a ``$`` would let a final newline through), ASCII digits only
(``\\d`` also matches other scripts' digits).

What each type keeps out, and why:

- a line break ends a line of an Asterisk file: the rest becomes a new key or ``[section]``;
- ``;`` starts a comment in an Asterisk file (a value is cut there) unless written ``\\;``;
- ``,`` separates an application's arguments and ``&`` Dial's channels (a trunk
  ``carrier&PJSIP/…`` would ring a second party); ``$``, ``(``, ``)`` are evaluated by the
  dialplan at run time;
- a leading ``-`` is an option to a command line tool.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

# control characters (C0, DEL, C1) and the Unicode line and paragraph separators
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# the characters a path may have where it is written into Asterisk's files (any letter or digit,
# space, and ./_+@~:-): none of them means anything to Asterisk's config or dialplan syntax ('%'
# does: Record() replaces "%d" in its file name with a counter)
_PATH = re.compile(r"[\w ./+@~:-]+")
_DNS_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _shaped(pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise ValueError(what)
        return value

    return AfterValidator(check)


PlatformId = Annotated[
    str, _shaped(r"[a-z][a-z0-9_]{1,31}", "must be lower-case letters, digits and '_', starting with a letter")
]
TrunkName = Annotated[
    str,
    _shaped(
        r"(?!trunk\Z)[a-z][a-z0-9_]{0,31}",
        "a trunk name is a lower-case letter, then at most 31 lower-case letters, digits or '_', and not "
        "'trunk' (the carrier's own endpoint): it is a PJSIP endpoint and goes into dial strings",
    ),
]
AreaCode = Annotated[str, _shaped(r"0[0-9]{2,3}", "must be a Chinese area code such as '0871' (a 0 and 2-3 digits)")]
DialNumber = Annotated[
    str, _shaped(r"[0-9*#+]{2,32}", "a number to dial is 2-32 of 0-9, *, # and + (it goes into a dial string)")
]
SeatId = Annotated[
    str, _shaped(r"[0-9]{3,6}", "a seat id is 3-6 digits (never a caller's number, which has 7 or more)")
]
# a seat's channel as Asterisk names it (PJSIP/<seat id>-<8 hex digits>): what ChanSpy listens to
SeatChannel = Annotated[
    str, _shaped(r"PJSIP/[0-9]{3,6}-[0-9a-f]{8}", "a seat's channel is PJSIP/<seat id>-<8 hex digits>")
]
SeatName = Annotated[
    str,
    _shaped(
        r"[\w .·()（）-]{0,64}",
        "a seat name is at most 64 letters, digits, spaces and . · ( ) - _ (it is shown as caller id)",
    ),
]
AmiUser = Annotated[
    str,
    _shaped(r"(?!(?i:general)\Z)[A-Za-z0-9_.-]{1,32}", "an AMI user is 1-32 of A-Z a-z 0-9 _ . - and not 'general'"),
]
SipUri = Annotated[
    str,
    _shaped(
        r"sips?:([A-Za-z0-9_.+-]+@)?[A-Za-z0-9.-]+(:[0-9]{1,5})?",
        "must be a SIP URI such as 'sip:1002@192.0.2.30:5060' (user@host:port; no parameters, spaces, "
        "commas or quotes)",
    ),
]


def _secret(value: str) -> str:
    if not 8 <= len(value) <= 128:
        raise ValueError("must be 8 to 128 characters")
    if re.fullmatch(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?", value) is None:
        raise ValueError("must be printable ASCII (no line breaks, control characters, or spaces at either end)")
    return value


Secret = Annotated[str, AfterValidator(_secret)]


def _host(value: str) -> str:
    """An IPv4 address or a DNS name (IPv6 literals need brackets where a port follows: not
    rendered yet)."""
    if re.fullmatch(r"[0-9.]+", value):
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address") from None
        return value
    labels = value.removesuffix(".").split(".")
    if len(value) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ValueError("must be an IPv4 address or a host name (letters, digits, '-' and '.')")
    return value


Host = Annotated[str, AfterValidator(_host)]


def _ipv4(value: str) -> str:
    if re.fullmatch(r"[0-9.]+", value) is None:
        raise ValueError("must be an IPv4 address such as '127.0.0.1'")
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None
    return value


IPv4 = Annotated[str, AfterValidator(_ipv4)]


def _ip_network(value: str) -> str:
    """An IP address or network as Asterisk's ``match`` takes it (no scope ids, no spaces)."""
    if re.fullmatch(r"[0-9A-Fa-f:./]+", value) is None:
        raise ValueError(f"{value!r} is not an IP address or network")
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or network") from None
    return value


IpNetwork = Annotated[str, AfterValidator(_ip_network)]


def _prompt_text(value: str) -> str:
    if not value.strip():
        raise ValueError("a prompt's text cannot be empty")
    if len(value) > 1000:
        raise ValueError("a prompt's text is at most 1000 characters")
    if _CONTROL.search(value):
        raise ValueError("a prompt's text cannot contain line breaks or control characters")
    if value.lstrip().startswith("-"):
        raise ValueError("a prompt's text cannot start with '-' (the speech synthesiser would take it for an option)")
    return value


PromptText = Annotated[str, AfterValidator(_prompt_text)]


def unsafe_path_reason(path: Path | str) -> str | None:
    """Why ``path`` cannot be written into Asterisk's files or dialplan (None: it can)."""
    text = str(path)
    if _PATH.fullmatch(text) is None:
        bad = sorted({c for c in text if _PATH.fullmatch(c) is None})
        return f"it contains {', '.join(repr(c) for c in bad)} (allowed: letters, digits, space and ./_+@~:-)"
    if text != text.strip():
        return "it starts or ends with a space"
    return None


def conf_value(value: str) -> str:
    """A value as written after ``key =`` in an Asterisk config file: ``;`` would start a
    comment there, so it is escaped (Asterisk reads ``\\;`` back as ``;``). Line breaks cannot
    be written at all: validation keeps them out; this refuses them too."""
    if _CONTROL.search(value):
        raise ValueError("a value with a line break or a control character cannot be written to an Asterisk file")
    return value.replace(";", "\\;")


_SHOWN_NUMBER = re.compile(r"\+?[0-9*#]{1,32}")


def shown_number(caller: str, default: str = "") -> str:
    """A caller's number as we hand it to Asterisk to show (caller id of an offer, a
    consultation): digits only, else ``default`` (a SIP From user may hold anything)."""
    return caller if _SHOWN_NUMBER.fullmatch(caller) else default
