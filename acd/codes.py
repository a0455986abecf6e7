"""The codes a seat gives: a disposition (wrap-up code) for its last call and a reason for a
pause. Which codes a platform has is not the ACD's business: the app shell passes a check
``(platform, code) -> bool`` (the code lists of the units package); without one, a small
built-in set is accepted. A code is a short lower-case name whatever the check says."""

from __future__ import annotations

import re
from collections.abc import Callable

CodeCheck = Callable[[str, str], bool]  # (platform, code) → whether the platform has that code
CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")

# until the app shell passes the platform's own lists
BUILTIN_DISPOSITIONS = frozenset(
    {
        "answered",  # 直接答复: answered at once (knowledge base)
        "dispatched",  # 派单: a case sent to a unit
        "transferred",  # 转接: handed to another hotline
        "repeat",  # 重复来电: joined an open case
        "no_matter",  # 无效来电: silent, wrong number, hung up at once
        "nuisance",  # 骚扰来电
    }
)
BUILTIN_PAUSE_REASONS = frozenset(
    {
        "break",  # 小休
        "meal",  # 用餐
        "training",  # 培训
        "meeting",  # 会议
        "callback",  # 回访外呼: calling callers back
        "case_work",  # 工单处理: after-call work beyond wrap-up
    }
)


def builtin_disposition(platform: str, code: str) -> bool:
    return code in BUILTIN_DISPOSITIONS


def builtin_pause_reason(platform: str, code: str) -> bool:
    return code in BUILTIN_PAUSE_REASONS


class UnknownCode(ValueError):
    """A disposition or pause reason this platform does not have."""


def checked(kind: str, check: CodeCheck, platform: str, code: object) -> str:
    """``code`` if it is a well-formed code the platform has; else UnknownCode saying why
    (never echoing more than a short, printable part of it)."""
    if not isinstance(code, str) or not CODE.fullmatch(code):
        shown = repr(code)[:40] if isinstance(code, str) else type(code).__name__
        raise UnknownCode(f"{kind} {shown} is not a code (a-z, 0-9, _; at most 32)")
    if not check(platform, code):
        raise UnknownCode(f"{kind} {code!r} is not one of this platform's codes")
    return code
