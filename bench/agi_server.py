"""FastAGI server throughput: ours vs panoramisk 1.4's ``fast_agi.Application``, same run.

Each server runs alone in a child process with the same five-command IVR-like handler
(ANSWER, GET VARIABLE, two STREAM FILEs, SET VARIABLE). This process plays Asterisk: C
concurrent connections, each running sessions back to back, answering every command at once.
Reported per server: sessions/s, session latency p50/p99, and the server process's CPU per
session (from /proc), with ratios ours / panoramisk.

Run: .venv/bin/python -m bench.agi_server [--sessions 3000] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType

ENVIRONMENT = (
    "agi_network: yes\nagi_network_script: ivr\nagi_request: agi://127.0.0.1/ivr\n"
    "agi_channel: PJSIP/trunk-00000001\nagi_uniqueid: kunming-1.1\nagi_callerid: 13800138000\n"
    "agi_calleridname: 张三丰\nagi_dnid: 12345\nagi_context: hotline-entry\nagi_extension: s\n\n"
)
REPLIES = {
    "ANSWER": "200 result=0\n",
    "GET VARIABLE": "200 result=1 (kunming)\n",
    "STREAM FILE": "200 result=0 endpos=8000\n",
    "SET VARIABLE": "200 result=1\n",
}


def _reply_for(command: str) -> str:
    for prefix, reply in REPLIES.items():
        if command.startswith(prefix):
            return reply
    return "510 Invalid or unknown command\n"


def _serve_ours(port: int, ready: EventType) -> None:
    from telephony.agi_server import AgiServer, AgiSession

    async def handler(session: AgiSession) -> None:
        await session.answer()
        await session.get_variable("HOTLINE_PLATFORM")
        await session.stream_file("/prompts/greeting")
        await session.stream_file("/prompts/goodbye")
        await session.set_variable("HOTLINE_IVR_DONE", "1")

    async def main() -> None:
        server = AgiServer("127.0.0.1", port, {"ivr": handler})
        await server.start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _serve_panoramisk(port: int, ready: EventType) -> None:
    import logging

    from panoramisk.fast_agi import Application

    logging.disable(logging.INFO)

    async def handler(request: object) -> None:
        send = request.send_command  # type: ignore[attr-defined]
        await send("ANSWER")
        await send('GET VARIABLE "HOTLINE_PLATFORM"')
        await send('STREAM FILE "/prompts/greeting" ""')
        await send('STREAM FILE "/prompts/goodbye" ""')
        await send('SET VARIABLE "HOTLINE_IVR_DONE" "1"')

    async def main() -> None:
        app = Application(loop=asyncio.get_running_loop())
        app.add_route("ivr", handler)
        await asyncio.start_server(app.handler, "127.0.0.1", port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def _one_session(port: int) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ENVIRONMENT.encode())
    while True:
        line = await reader.readline()
        if not line:
            break
        writer.write(_reply_for(line.decode().strip()).encode())
    writer.close()
    await writer.wait_closed()
    return time.perf_counter() - started


async def _load(port: int, sessions: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = sessions

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            latencies.append(await _one_session(port))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    name: str
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_session: float


def measure(name: str, target: Callable[[int, EventType], None], port: int, sessions: int, concurrency: int) -> Result:
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=target, args=(port, ready), daemon=True)
    process.start()
    try:
        if not ready.wait(20):
            raise RuntimeError(f"{name} server did not start")
        asyncio.run(_load(port, 100, concurrency))  # warm-up
        assert process.pid is not None
        cpu_before = _cpu_seconds(process.pid)
        latencies, elapsed = asyncio.run(_load(port, sessions, concurrency))
        cpu = _cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        process.join(5)
    latencies.sort()
    return Result(
        name=name,
        rate=sessions / elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000,
        cpu_ms_per_session=cpu / sessions * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    from tests.support.ports import free_port

    ours = measure("ours (telephony.agi_server)", _serve_ours, free_port(), args.sessions, args.concurrency)
    theirs = measure("panoramisk 1.4 fast_agi", _serve_panoramisk, free_port(), args.sessions, args.concurrency)
    print(f"FastAGI, {args.sessions} sessions of 5 commands, {args.concurrency} concurrent, one server process each")
    print(f"{'server':32} {'sessions/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/session':>15}")
    for r in (ours, theirs):
        print(f"{r.name:32} {r.rate:11.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.cpu_ms_per_session:15.3f}")
    print(
        f"{'ratio ours/panoramisk':32} {ours.rate / theirs.rate:11.2f} {ours.p50_ms / theirs.p50_ms:8.2f} "
        f"{ours.p99_ms / theirs.p99_ms:8.2f} {ours.cpu_ms_per_session / theirs.cpu_ms_per_session:15.2f}"
    )


if __name__ == "__main__":
    main()
