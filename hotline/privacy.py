"""Masking of personal data for logs and lists (caller numbers are personal information)."""

from __future__ import annotations


def mask_number(number: str) -> str:
    """Keep the prefix and the last four digits: ``13812345678`` → ``138****5678``.

    Short numbers keep only their last two digits; an empty number stays empty.
    """
    digits = number.strip()
    if len(digits) >= 11:
        head = 4 if digits.startswith("0") else 3
        return digits[:head] + "*" * (len(digits) - head - 4) + digits[-4:]
    if len(digits) >= 7:
        return digits[:2] + "*" * (len(digits) - 6) + digits[-4:]
    if len(digits) > 2:
        return "*" * (len(digits) - 2) + digits[-2:]
    return "*" * len(digits)


def mask_name(name: str) -> str:
    """Keep the family name only: ``张三丰`` → ``张**``."""
    name = name.strip()
    return name[:1] + "*" * (len(name) - 1) if name else ""
