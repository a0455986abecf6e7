"""Masking of personal data for logs and lists (caller numbers are personal information)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_MOBILE = re.compile(r"1[3-9]\d{9}")
# a local number has 7 or 8 digits; whatever precedes it (area code, country code) is shown at
# most in part, so at least half of the local number's digits are always hidden
_LAST_SHOWN = 3
_FIRST_SHOWN = 3
# fallback messages recorded before the number left the file name (calls/fallback.py)
_OLD_FALLBACK_NAME = re.compile(r"(?<![A-Za-z0-9])(fb-\d{9,11}-)(\d+)(-)")


def mask_number(number: str) -> str:
    """A number with at least half of it hidden.

    A mobile number keeps the usual ``138****5678``. Anything else shows at most its first
    three and last three characters, never more than half of them: ``6512345`` → ``****345``,
    ``087165123456`` → ``087******456`` (a 7- or 8-digit local number keeps at most 3 of its
    digits, with or without the area code before it); ``110`` → ``**0``; empty stays empty.
    """
    digits = number.strip()
    if _MOBILE.fullmatch(digits):
        return digits[:3] + "****" + digits[-4:]
    shown = len(digits) // 2
    last = min(_LAST_SHOWN, shown)
    first = min(_FIRST_SHOWN, shown - last)
    return digits[:first] + "*" * (len(digits) - first - last) + (digits[len(digits) - last :] if last else "")


def mask_fallback_names(text: str) -> str:
    """``text`` with the caller's digits masked in every old-format fallback message name
    (``fb-<epoch>-<caller digits>-<uniqueid>.wav``, still on disk from before the number left
    the name): for logs and lists."""
    return _OLD_FALLBACK_NAME.sub(lambda m: m.group(1) + mask_number(m.group(2)) + m.group(3), text)


def mask_name(name: str) -> str:
    """Keep the family name only: ``张三丰`` → ``张**``."""
    name = name.strip()
    return name[:1] + "*" * (len(name) - 1) if name else ""


def masked_url(url: str) -> str:
    """``url`` fit for a log: a password in it is replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))
