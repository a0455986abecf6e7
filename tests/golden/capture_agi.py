"""Capture FastAGI transcripts from a real Asterisk into tests/golden/*.json.

Run: .venv/bin/python -m tests.golden.capture_agi   (needs the provisioned Asterisk)
A raw socket server stands where the controller's FastAGI server would be, sends a fixed list
of commands, and writes down exactly what Asterisk answered, byte for byte. The unit tests
replay these transcripts against our parser and server.
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
from pathlib import Path

from hotline.local_secrets import local_secrets
from tests.support.platform import PlatformUnderTest
from tests.support.sipp import ANSWERED, CALLER_HANGS_UP, HOTLINE_HANGS_UP, INVITE, pause, run_sipp, scenario

HERE = Path(__file__).resolve().parent

NORMAL = [
    "ANSWER",
    'GET VARIABLE "HOTLINE_PLATFORM"',
    'GET VARIABLE "NO_SUCH_VARIABLE"',
    'SET VARIABLE "HOTLINE_TEST" "值 with space"',
    'GET VARIABLE "HOTLINE_TEST"',
    'STREAM FILE "/nonexistent/prompt" ""',
    "NO SUCH COMMAND",
    "STREAM FILE",
    "CHANNEL STATUS",
    'STREAM FILE "beep" "0123456789*#"',
    'SET VARIABLE "HOTLINE_IVR_DONE" "1"',
]
HANGUP = [
    "ANSWER",
    'STREAM FILE "demo-congrats" ""',
    "CHANNEL STATUS",
    'GET VARIABLE "HOTLINE_PLATFORM"',
]


def _read_reply(conn: socket.socket, buffer: bytearray) -> bytes:
    """Read until a complete reply (one line, or a 520 block) has arrived; return its bytes."""
    while True:
        text = bytes(buffer)
        lines = text.split(b"\n")
        complete = lines[:-1]
        if complete:
            first = complete[0]
            if first == b"HANGUP":
                if len(complete) > 1:
                    rest = b"\n".join(complete[1:])
                    if not rest.startswith(b"520-") or b"\n520 " in rest:
                        end = text.index(b"\n", len(b"HANGUP\n")) + 1
                        del buffer[:end]
                        return text[:end]
            elif not first.startswith(b"520-"):
                end = text.index(b"\n") + 1
                del buffer[:end]
                return text[:end]
            elif b"\n520 " in text:
                end = text.index(b"\n", text.index(b"\n520 ") + 1) + 1
                del buffer[:end]
                return text[:end]
        chunk = conn.recv(4096)
        if not chunk:
            rest = bytes(buffer)
            buffer.clear()
            return rest
        buffer.extend(chunk)


def _serve_one(server: socket.socket, commands: list[str], out: dict[str, object]) -> None:
    conn, _ = server.accept()
    conn.settimeout(30)
    buffer = bytearray()
    while b"\n\n" not in buffer:
        buffer.extend(conn.recv(4096))
    header, _, rest = bytes(buffer).partition(b"\n\n")
    buffer = bytearray(rest)
    out["environment"] = header.decode() + "\n\n"
    exchanges = []
    for command in commands:
        try:
            conn.sendall(command.encode() + b"\n")
            reply = _read_reply(conn, buffer)
        except OSError as exc:
            exchanges.append({"command": command, "reply": "", "error": str(exc)})
            break
        exchanges.append({"command": command, "reply": reply.decode()})
        if not reply:
            break
    out["exchanges"] = exchanges
    conn.close()


def capture(name: str, platform: PlatformUnderTest, commands: list[str], caller_xml: str) -> None:
    server = socket.create_server(("127.0.0.1", platform.config.agi.port))
    out: dict[str, object] = {}
    thread = threading.Thread(target=_serve_one, args=(server, commands, out))
    thread.start()
    result = run_sipp(platform.config.sip.port, caller_xml, caller="13800000000", caller_name="张三丰", timeout_s=40)
    thread.join(timeout=60)
    server.close()
    # the install's AGI key is in the script path: leave it out (replayed servers have none)
    key = local_secrets(platform.config).agi_secret
    out["environment"] = str(out.get("environment", "")).replace(f"{key}/", "")
    out["source"] = "Asterisk " + platform.asterisk.cli("core show version").stdout.split()[1]
    out["sipp_ok"] = result.ok
    (HERE / f"agi_{name}.json").write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"captured {name}: {len(out.get('exchanges', []))} exchanges")  # type: ignore[arg-type]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        platform = PlatformUnderTest(Path(tmp))
        platform.redis.start()
        platform.asterisk.start()
        try:
            capture("normal", platform, NORMAL, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP))
            capture("caller_hangup", platform, HANGUP, scenario(INVITE, ANSWERED, pause(1500), CALLER_HANGS_UP))
        finally:
            platform.asterisk.stop()
            platform.redis.stop()


if __name__ == "__main__":
    main()
