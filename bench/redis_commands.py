"""What Redis was asked, grouped by command and key pattern: a ``MONITOR`` capture summarised.

``erlang_a --monitor DIR`` captures each of our phases' counting windows with
``redis-cli monitor`` (DIR/<phase>-step<n>.txt); this module turns a capture into a table of
commands per offered call, by command and key pattern (ids, numbers and call ids in a key are
replaced by ``*``, so ``acd:kunming:waiting`` and ``call:kunming:1733`` group as they should).

Run on a capture: .venv/bin/python -m bench.redis_commands FILE [--calls N]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

# a MONITOR line: 1733040000.123456 [0 127.0.0.1:5555] "HSET" "key" "field" "value"
_LINE = re.compile(r"^\d+\.\d+ \[\d+ [^\]]*\] (.*)$")
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ID = re.compile(r"\d{4}-\d\d-\d\dT[0-9:.+\-]*[0-9]|[0-9][0-9.\-]*|[0-9a-f]{8,}")
# commands whose first argument is not a key
_NO_KEY = {"MULTI", "EXEC", "PING", "CLIENT", "INFO", "AUTH", "HELLO", "SELECT", "EVALSHA", "EVAL", "SCRIPT"}


def key_pattern(key: str) -> str:
    """A key with its ids blurred: ``call:km:1733040000.12`` → ``call:km:*``."""
    return _ID.sub("*", key)


def parse(line: str) -> tuple[str, str] | None:
    """(command, key pattern) of one MONITOR line, or None for another line."""
    found = _LINE.match(line.strip())
    if found is None:
        return None
    args = _ARG.findall(found.group(1))
    if not args:
        return None
    command = args[0].upper()
    if command in ("EVALSHA", "EVAL") and len(args) > 3:
        return command, key_pattern(args[3])  # EVALSHA sha numkeys key1 …
    if command in _NO_KEY or len(args) < 2:
        return command, ""
    return command, key_pattern(args[1])


def summarise(lines: list[str]) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for line in lines:
        parsed = parse(line)
        if parsed is not None:
            counts[parsed] += 1
    return counts


def table(counts: Counter[tuple[str, str]], calls: int) -> str:
    """A markdown table of commands per call, most frequent first."""
    total = sum(counts.values())
    rows = ["| command | key pattern | per call |", "|---|---|---:|"]
    for (command, key), n in counts.most_common():
        rows.append(f"| {command} | `{key}` | {n / max(calls, 1):.2f} |")
    rows.append(f"| **all** | | **{total / max(calls, 1):.1f}** |")
    return "\n".join(rows)


def start_monitor(port: int, password: str | None, out: Path) -> subprocess.Popen[bytes]:
    """``redis-cli monitor`` writing every command Redis receives to ``out`` until stopped (the
    password in the environment, not on the command line)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "REDISCLI_AUTH": password} if password else None
    with out.open("wb") as sink:
        return subprocess.Popen(["redis-cli", "-p", str(port), "monitor"], stdout=sink, env=environment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("capture", type=Path)
    parser.add_argument("--calls", type=int, default=1, help="divide by this many offered calls")
    args = parser.parse_args()
    print(table(summarise(args.capture.read_text(errors="replace").splitlines()), args.calls))


if __name__ == "__main__":
    main()
