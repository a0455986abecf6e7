"""A request body as a JSON object, within bounds.

Pure: bytes in, a dict or JsonBodyError out. The body is decoded as JSON does (UTF-8, or the
UTF-16/32 its first bytes show), never with the charset a client names (an unknown one would
raise LookupError); nesting is bounded, so neither the parser nor anything that walks the value
later (``str()``, ``repr()``, a model) runs out of stack; text is Unicode (no lone surrogates).
"""

from __future__ import annotations

import json
import re

MAX_DEPTH = 16  # our bodies are flat: {"to": …, "note": …}
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonBodyError(ValueError):
    """The body is not a JSON object within bounds; the message says what is wrong."""


def _check(value: object) -> None:
    """Refuse nesting beyond MAX_DEPTH and text that is not Unicode (a lone surrogate such as
    ``"\\ud800"`` is valid JSON but cannot be written to Redis or a response), without recursion."""
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise JsonBodyError("the body has text that is not Unicode (a lone surrogate)") from None
            continue
        if isinstance(item, dict):
            children: list[object] = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > MAX_DEPTH:
            raise JsonBodyError(f"the body is nested more than {MAX_DEPTH} levels deep")
        pending.extend((child, depth + 1) for child in children)


def json_depth(raw: bytes, limit: int) -> int:
    """How deep ``raw``'s arrays and objects nest (counting stops just past ``limit``); text in
    strings does not count. A cheap scan: the parser is never given a document deeper than this."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


def parse_json_object(raw: bytes) -> dict[str, object]:
    """The JSON object in ``raw``; JsonBodyError when it is not JSON, too deep, or not an object."""
    if json_depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise JsonBodyError(f"the body is nested more than {MAX_DEPTH} levels deep")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JsonBodyError(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:  # also a UnicodeDecodeError, and an integer of more than 4300 digits
        raise JsonBodyError("the body is not valid JSON") from None
    _check(value)
    if not isinstance(value, dict):
        raise JsonBodyError("the body must be a JSON object")
    return value
