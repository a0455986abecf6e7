"""bench/redis_commands.py: MONITOR lines grouped by command and key pattern (ids blurred)."""

from __future__ import annotations

from bench.redis_commands import key_pattern, parse, summarise, table

LINES = [
    "OK",
    '1796117336.014160 [0 127.0.0.1:34264] "HSET" "hotline:acd:waiting:kunming" "kunming-1796117335.18" "{\\"a\\": 1}"',
    '1796117336.015053 [0 127.0.0.1:34264] "HSET" "hotline:seats:kunming" "2001" "{}"',
    '1796117336.015785 [0 127.0.0.1:34264] "EVALSHA" "ec4d65c5" "3" "hotline:reports:counted:kunming:seat:2001" "x"',
    '1796117336.015853 [0 lua] "HINCRBY" "hotline:reports:seats:kunming:2026120117" "state_ms.ready\\x1f2001" "1946"',
    '1796117336.015860 [0 lua] "HINCRBY" "hotline:reports:seats:kunming:20261201" "state_ms.ready\\x1f2001" "1946"',
    '1796117336.029050 [0 127.0.0.1:34264] "MULTI"',
    '1796117336.029099 [0 127.0.0.1:34264] "SET" "hotline:call:kunming-1796117335.18" "{\\"q\\": \\"\\\\\\"\\"}"',
]


def test_lines_group_by_command_and_blurred_key() -> None:
    assert key_pattern("hotline:call:kunming-1796117335.18") == "hotline:call:kunming-*"
    marker = "hotline:reports:counted:km:seat:2001:2026-12-01T09:28:54.067370+00:00:ready"
    assert key_pattern(marker) == "hotline:reports:counted:km:seat:*:*:ready"  # a timestamp: one star
    assert parse(LINES[0]) is None
    assert parse(LINES[3]) == ("EVALSHA", "hotline:reports:counted:kunming:seat:*")  # the script's first key
    assert parse(LINES[6]) == ("MULTI", "")
    counts = summarise(LINES)
    assert counts[("HINCRBY", "hotline:reports:seats:kunming:*")] == 2  # hour and day: one pattern
    assert counts[("SET", "hotline:call:kunming-*")] == 1
    assert sum(counts.values()) == 7
    assert table(counts, 2).splitlines()[-1] == "| **all** | | **3.5** |"
