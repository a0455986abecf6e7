"""The controller's CPU per IVR call, in one process: exact call counts, profilable.

Issue 20 (controller ≤ 5 ms per call). ``bench/ivr_load.py`` measures the controller on real
Asterisk, but its CPU per call moves by 10 % between phases on a shared box and py-spy at
100 Hz gives a few hundred samples. This bench runs the REAL controller — ``Controller(config)``
as ``hotline12345 run`` builds it: the FastAGI server, IvrEntry and the interpreter, the
CallTracker and its writer, the ended listeners (callback list, reports, figures, wallboard),
the AMI client and its handlers, the HTTP API and the background loops — on a real redis-server
(started here), with JSON logs rendered to a file as in production, and replaces only Asterisk:

- a fake AMI server on the configured AMI port speaks the manager protocol (greeting, Login,
  Ping, CoreShowChannels as an empty list, any other action ``Success``) and sends, per call, the
  events Asterisk 22 sends through the rendered ``eventfilter`` for this walk: ``Newchannel``
  (ring, context ``from-trunk``), ``Newstate`` (up: the entry's ``Answer()``) and ``Hangup``;
- a fake Asterisk FastAGI client opens, per call, the session the rendered entry opens
  (``agi_network_script: ivr``, ``agi_arg_1`` the empty hand-off token, ``agi_arg_2: answered``,
  the channel's variables) and answers like res_agi: ``STREAM FILE`` → ``200 result=0
  endpos=…``, ``GET DATA`` → ``200 result=1`` (the caller pressed 1 in the main menu), others
  ``200 result=0|1``; at the busy_voicemail prompt (the 2nd STREAM FILE) the caller hangs up:
  ``200 result=-1 endpos=…`` then the ``HANGUP`` notice, and the AMI ``Hangup`` follows.

The walk is bench/ivr_load.py's on the shipped kunming dialplan: caller list → hours → welcome →
main menu (key 1) → consultation → queue ``general`` (unstaffed) → busy_voicemail, where the
caller leaves. Each prompt "plays" ``--step-ms`` (default 60 ms, above the writer's 50 ms
gathering: a step's record versions get a round of their own, as on real Asterisk). CPU per
call = ``time.process_time()`` over N calls (``--concurrency`` at a time)
after a warm-up, divided by N, once the writer has saved every record; it includes the
background loops' share for the seconds the run lasts (at some 250 calls a second it is
small) and the fake Asterisk's own work (about 8 % of the profile: the ``bench/ivr_inproc.py``
lines of cProfile's output; the same in before and after). CPU per call still moves by up to
15 % between runs of one tree on a shared box: compare with ``--compare`` over repeats.
Left out: Asterisk itself, RTP, SIP, the network, Redis's CPU (another process) and the idle
loop's cost at real call rates. A second pass of N calls runs under cProfile (top 30 by tottime
and by cumtime).

Run: PYTHONPATH=$PWD .venv/bin/python -m bench.ivr_inproc [--calls 2000] [--concurrency 20]
     before/after in one run: ``--compare DIR`` runs this file alternately against DIR's code
     (PYTHONPATH=DIR: "before") and this tree's ("after"), ``--repeats`` times each.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# run as a file (python DIR/bench/ivr_inproc.py with PYTHONPATH=another tree): import that tree
TEST_NOW = "2026-11-30T10:00:00+08:00"  # a Monday inside kunming's hours (08:00-20:00)
UNIQUE_BASE = 1764468000
PROMPT_CACHE = Path.home() / ".cache" / "hotline12345" / "ivr-inproc-prompts"


def _ami_block(**headers: str) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()


class FakeAmi:
    """Asterisk's manager port: answers actions, sends the call's events when told to."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.connected = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        buffer = b""
        while data := await reader.read(65536):
            buffer += data
            *blocks, buffer = buffer.split(b"\r\n\r\n")
            for block in blocks:
                fields = dict(line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line)
                action, action_id = fields.get("Action", ""), fields.get("ActionID", "")
                if action == "CoreShowChannels":
                    listed = {"ActionID": action_id, "EventList": "start", "Message": "Channels will follow"}
                    writer.write(_ami_block(Response="Success", **listed))
                    done = {"ActionID": action_id, "EventList": "Complete", "ListItems": "0"}
                    writer.write(_ami_block(Event="CoreShowChannelsComplete", **done))
                else:
                    writer.write(_ami_block(Response="Success", ActionID=action_id, Message=f"{action} ok"))
                if action == "Login":
                    self.writers.append(writer)
                    self.connected.set()

    def send(self, data: bytes) -> None:
        for writer in self.writers:
            writer.write(data)


def _channel_headers(n: int, state: str, desc: str) -> dict[str, str]:
    unique = f"{UNIQUE_BASE}.{n}"
    return {
        "Privilege": "call,all",
        "Channel": f"PJSIP/trunk-{n:08x}",
        "ChannelState": state,
        "ChannelStateDesc": desc,
        "CallerIDNum": f"139{n % 100_000_000:08d}",
        "CallerIDName": "<unknown>",
        "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>",
        "Language": "en",
        "AccountCode": "",
        "Context": "from-trunk" if state == "4" else "hotline-entry",
        "Exten": "12345" if state == "4" else "s",
        "Priority": "1" if state == "4" else "2",
        "Uniqueid": unique,
        "Linkedid": unique,
    }


def _environment(n: int, agi_port: int, secret: str) -> bytes:
    unique = f"{UNIQUE_BASE}.{n}"
    lines = {
        "agi_network": "yes",
        "agi_network_script": f"{secret}/ivr",
        "agi_request": f"agi://127.0.0.1:{agi_port}/{secret}/ivr",
        "agi_channel": f"PJSIP/trunk-{n:08x}",
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": unique,
        "agi_version": "22.1.0",
        "agi_callerid": f"139{n % 100_000_000:08d}",
        "agi_calleridname": "unknown",
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": "12345",
        "agi_rdnis": "unknown",
        "agi_context": "hotline-entry",
        "agi_extension": "s",
        "agi_priority": "3",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140000000000000",
        "agi_arg_1": "",
        "agi_arg_2": "answered",
    }
    return ("".join(f"{k}: {v}\n" for k, v in lines.items()) + "\n").encode()


class FakeAsterisk:
    """One call at a time per ``call()``: AMI events and the FastAGI session, as res_agi answers."""

    def __init__(self, ami: FakeAmi, agi_port: int, secret: str, step_s: float) -> None:
        self.step_s = step_s
        self.ami = ami
        self.agi_port = agi_port
        self.secret = secret
        self.transcript: list[str] = []  # the first call's commands, printed once

    async def call(self, n: int, record: bool = False) -> None:
        self.ami.send(_ami_block(Event="Newchannel", **_channel_headers(n, "4", "Ring")))
        self.ami.send(_ami_block(Event="Newstate", **_channel_headers(n, "6", "Up")))
        reader, writer = await asyncio.open_connection("127.0.0.1", self.agi_port)
        writer.write(_environment(n, self.agi_port, self.secret))
        streams = 0
        while line := await reader.readline():
            command = line.decode().strip()
            if record:
                self.transcript.append(command)
            if command.startswith(("STREAM FILE", "GET DATA")) and self.step_s:
                await asyncio.sleep(self.step_s)  # the prompt plays
            if command.startswith("STREAM FILE"):
                streams += 1
                if streams == 2:  # busy_voicemail's prompt: the caller hangs up during it
                    writer.write(b"200 result=-1 endpos=12000\nHANGUP\n")
                    cause = {"Cause": "16", "Cause-txt": "Normal Clearing"}
                    self.ami.send(_ami_block(Event="Hangup", **_channel_headers(n, "6", "Up"), **cause))
                    continue
                writer.write(b"200 result=0 endpos=64000\n")
            elif command.startswith("GET DATA"):
                writer.write(b"200 result=1\n")
            elif command.startswith(("SET VARIABLE", "EXEC")):
                writer.write(b"200 result=1\n" if command.startswith("SET") else b"200 result=0\n")
            elif command.startswith("CHANNEL STATUS"):
                writer.write(b"200 result=6\n")
            else:
                writer.write(b"200 result=0\n")
        writer.close()


async def _settled(controller: object) -> None:
    """Every call of the batch ended and saved (the writer idle)."""
    tracker = controller.tracker  # type: ignore[attr-defined]
    while tracker.live_records() or tracker.unsaved:  # noqa: ASYNC110 — a bench polling the tracker
        await asyncio.sleep(0.01)


async def _batch(asterisk: FakeAsterisk, first: int, calls: int, concurrency: int) -> None:
    queue = iter(range(first, first + calls))

    async def caller() -> None:
        for n in queue:
            await asterisk.call(n)

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def main(args: argparse.Namespace) -> None:  # noqa: PLR0915 — one bench run, top to bottom
    from common.clock import clock_from_environment
    from hotline.cli import token_registry
    from hotline.config import load_config
    from hotline.controller import Controller
    from hotline.local_secrets import local_secrets
    from hotline.logs import configure_logging
    from tests.support.platform import REPO, PlatformUnderTest

    root = Path(tempfile.mkdtemp(prefix="ivr-inproc-"))
    platform = PlatformUnderTest(root, overrides={"recordings": {"enabled": False}, "logging": {"level": "info"}})
    shipped = REPO / "dialplans"
    platform.dialplan_file.write_text((shipped / "kunming.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (platform.dialplan_file.parent / "caller_lists.yaml").write_text(
        (shipped / "caller_lists.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    platform.redis.start()
    PROMPT_CACHE.mkdir(parents=True, exist_ok=True)  # espeak-ng builds them in minutes: once per machine
    shutil.copytree(PROMPT_CACHE, root / "var" / "prompts", dirs_exist_ok=True)
    os.chdir(root)
    config = load_config(platform.config_path)
    log_file = (root / "controller.log").open("w")
    stderr, sys.stderr = sys.stderr, log_file  # production's JSON lines, to a file
    configure_logging(config.logging.level, config.logging.format)
    sys.stderr = stderr
    ami = FakeAmi()
    ami_server = await asyncio.start_server(ami.serve, config.asterisk.ami_host, config.asterisk.ami_port)
    controller = Controller(config, token_registry(config), clock_from_environment({"HOTLINE_TEST_NOW": TEST_NOW}))
    try:
        await controller.start()
        await asyncio.wait_for(ami.connected.wait(), 30)
        await asyncio.sleep(0.5)  # the resync after login
        asterisk = FakeAsterisk(ami, controller.agi.port, local_secrets(config).agi_secret, args.step_ms / 1000)
        await asterisk.call(0, record=True)
        await _settled(controller)
        print("walk (AGI commands of one call):", " | ".join(asterisk.transcript))
        n = 1
        await _batch(asterisk, n, args.warmup, args.concurrency)
        n += args.warmup
        await _settled(controller)
        cpu, wall = time.process_time(), time.perf_counter()
        await _batch(asterisk, n, args.calls, args.concurrency)
        await _settled(controller)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        n += args.calls
        print(f"RESULT cpu_ms_per_call={1000 * cpu / args.calls:.3f} wall_s={wall:.2f} calls={args.calls}")
        stored = await controller.store.get(f"{UNIQUE_BASE}.{n - 1}")
        print(
            "last record:", None if stored is None else
            {k: getattr(stored, k) for k in ("state", "outcome", "ivr_path", "tags", "revision")},
        )  # fmt: skip
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await _batch(asterisk, n, args.calls, args.concurrency)
            await _settled(controller)
            profiler.disable()
            if args.profile_out:
                profiler.dump_stats(args.profile_out)
            for key in ("tottime", "cumtime"):
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(30)
                print(f"--- cProfile top 30 by {key} ({args.calls} calls) ---")
                print("\n".join(out.getvalue().splitlines()[4:]))
    finally:
        await controller.stop()
        ami_server.close()
        platform.redis.stop()
        log_file.close()
        shutil.copytree(root / "var" / "prompts", PROMPT_CACHE, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)


def compare(args: argparse.Namespace) -> None:
    """Alternate before (--compare DIR's code) and after (this tree), --repeats times each."""
    here = Path(__file__).resolve().parents[1]
    trees = {"before": Path(args.compare).resolve(), "after": here}
    results: dict[str, list[float]] = {"before": [], "after": []}
    for repeat in range(args.repeats):
        for name, tree in trees.items():
            load = os.getloadavg()[0]
            run = subprocess.run(
                # this file run in the other tree's imports (run_path: its folder, bench/, is not put
                # on sys.path, where bench/reports.py would hide the reports package)
                [sys.executable, "-c", f"import runpy; runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')",  # noqa: E501
                 "--calls", str(args.calls), "--concurrency", str(args.concurrency), "--warmup", str(args.warmup),
                 "--step-ms", str(args.step_ms)],
                env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=True, cwd=tree,
            )  # fmt: skip
            line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT"))
            ms = float(line.split("cpu_ms_per_call=")[1].split()[0])
            results[name].append(ms)
            print(f"{name} #{repeat + 1}: {ms:.3f} ms/call (load average {load:.1f})", flush=True)
    before, after = statistics.mean(results["before"]), statistics.mean(results["after"])
    print(f"mean before {before:.3f} ms/call, after {after:.3f} ms/call, after/before {after / before:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--step-ms", type=float, default=60.0,
        help="each prompt 'plays' this long: above the writer's 50 ms gathering, so a step's versions get their "
        "own round as on real Asterisk (0: as fast as possible, rounds batch many calls)",
    )  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="a second pass of --calls under cProfile")
    parser.add_argument("--profile-out", help="also write the cProfile stats to this file (pstats)")
    parser.add_argument("--compare", help="a tree to run as 'before' (alternating with this one)")
    parser.add_argument("--repeats", type=int, default=2)
    arguments = parser.parse_args()
    if arguments.compare:
        compare(arguments)
    else:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main(arguments))
