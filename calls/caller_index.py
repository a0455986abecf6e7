"""Calls by caller number, for the seat's screen pop (the caller's earlier calls).

The index is a sorted set per platform and caller, scored by the call's start (ms):
``hotline:calls:by-caller:<platform>:<digest>``. The digest is an HMAC-SHA256 of the number
with a local secret (``<runtime_dir>/caller-index-key``), so Redis key names never carry a
number in clear (a ``KEYS``/``SCAN``, a slow log or a key-space notification would show it).
The window is ``HISTORY_DAYS``: older entries are trimmed on each write and the key expires
with the last call; at most ``MAX_CALLS_PER_CALLER`` ids are kept per caller.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

KEY_PREFIX = "hotline:"
HISTORY_DAYS = 90
HISTORY_WINDOW = timedelta(days=HISTORY_DAYS)
MAX_CALLS_PER_CALLER = 200


class CallerKeys:
    """Key names derived from caller numbers without the numbers in them."""

    def __init__(self, secret: str | bytes) -> None:
        if not secret:
            raise ValueError("the caller index needs a secret")
        self._secret = secret.encode() if isinstance(secret, str) else secret

    def digest(self, platform: str, number: str) -> str:
        """A stable, keyed digest of ``number`` on ``platform`` (hex, 32 characters)."""
        message = f"{platform}\x00{number.strip()}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def calls_key(self, platform: str, number: str) -> str:
        """The sorted set of this caller's call ids (score: start, ms since the epoch)."""
        return f"{KEY_PREFIX}calls:by-caller:{platform}:{self.digest(platform, number)}"

    def open_cases_key(self, platform: str, number: str) -> str:
        """The sorted set of this caller's open phone cases (score: acceptance, s)."""
        return f"{KEY_PREFIX}cases:open-by-caller:{platform}:{self.digest(platform, number)}"
