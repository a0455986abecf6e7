"""The IVR under load: N concurrent callers through the shipped kunming dialplan on real Asterisk.

Issue 20, measurements 2 (the cost of a call, before/after the cuts) and 4 (the IVR at 200
concurrent calls). Each caller is a SIPp call on the trunk: Asterisk answers and streams the
prompts (RTP), the caller waits out the welcome, presses 1 (RFC 4733) during the main menu,
listens to the next prompt for ``--listen-s`` and hangs up. The kunming walk is caller list →
hours → welcome (STREAM FILE) → main menu (GET DATA) → consultation (set) → queue "general"
(unstaffed in this bench: no seat logged in) → busy_voicemail's prompt, where the caller leaves.

Phases alternate ``before`` / ``after`` (``--repeats`` times), each on a fresh Redis, Asterisk
and controller:

- **after**: this tree, as rendered (manager.conf ``eventfilter``, every cut in the code);
- **before**: the controller of ``--before REV`` (a git revision: its tree is exported to a temp
  folder with ``git archive`` and run with PYTHONPATH there) and this tree's Asterisk files with
  what that revision did not render taken out (the ``eventfilter`` lines, the IVR entry's
  ``Answer()`` and ``answered`` argument) — the configuration it rendered — and, if that
  revision did not depend on hiredis, without it (redis-py's pure-Python parser, as it ran).

Figures per phase: calls placed/failed (SIPp), peak concurrent calls (SIPp), CPU per call of
Asterisk, the controller and Redis (/proc, over the load), the controller's share of Asterisk's
CPU, and from the controller's /metrics: ``hotline_agi_wait_seconds`` (both revisions: every
stretch a channel waited on us, coarse buckets) and ``hotline_agi_step_seconds`` (after only:
reply received → next command sent, fine buckets), as interpolated p50/p99 and the share ≤ 5 ms.
``--profile`` records the controller with py-spy (``--nonblocking``: the blocking sampler
stops the process at each sample and inflates its CPU several times) during each phase (needs py-spy; not a
dependency of the project).
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.e2e_stack import cpu_seconds, shipped_asterisk_settings
from tests.support.platform import REPO, PlatformUnderTest
from tests.support.ports import free_media_port, free_tcp_and_udp_port, rtp_range
from tests.support.sipp import ANSWERED, CALLER_HANGS_UP, HOTLINE_HANGS_UP, INVITE, dtmf, pause, scenario

RTP_PORTS = 4000  # two ports per call: 200 calls need 400, leave room
TEST_NOW = "2026-11-30T10:00:00+08:00"  # a Monday inside kunming's hours (08:00-20:00)


@dataclass(frozen=True)
class Histo:
    """Cumulative buckets of one histogram family, as /metrics exposes them."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]  # cumulative, +Inf last
    total: float

    def minus(self, other: Histo | None) -> Histo:
        if other is None:
            return self
        return Histo(self.bounds, tuple(a - b for a, b in zip(self.counts, other.counts, strict=True)), self.total)

    def quantile(self, q: float) -> float:
        """Linear interpolation inside the bucket (as Prometheus' histogram_quantile)."""
        count = self.counts[-1]
        if count <= 0:
            return float("nan")
        rank, lower, below = q * count, 0.0, 0.0
        for bound, cumulative in zip(self.bounds, self.counts, strict=False):
            if cumulative >= rank:
                inside = cumulative - below
                return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = bound, cumulative
        return float("inf")

    def share_at_most(self, bound: float) -> float:
        count = self.counts[-1]
        index = self.bounds.index(bound)
        return self.counts[index] / count if count else float("nan")


def parse_histogram(text: str, family: str) -> Histo | None:
    found = re.findall(rf'^{family}_bucket{{le="([^"]+)"}} (\S+)$', text, re.MULTILINE)
    if not found:
        return None
    bounds = tuple(float(le) for le, _ in found if le != "+Inf")
    counts = tuple(float(value) for _, value in found)
    total = re.search(rf"^{family}_count (\S+)$", text, re.MULTILINE)
    return Histo(bounds, counts, float(total.group(1)) if total else counts[-1])


def caller_scenario(menu_after_ms: int, listen_ms: int) -> str:
    """Answered; waits out the welcome; presses 1 in the main menu; listens; hangs up (or the
    hotline does first)."""
    unique = "1390000[call_number]"
    invite = INVITE.replace("[caller]", unique).replace("[caller_name]", "")
    listen = f'  <recv request="BYE" timeout="{listen_ms}" ontimeout="callerbye"/>\n'
    ended_by_hotline = HOTLINE_HANGS_UP.replace('<recv request="BYE"/>', "") + '  <nop next="end"/>\n'
    bye = CALLER_HANGS_UP.replace("[caller]", unique).replace("[caller_name]", "")
    return scenario(
        invite,
        ANSWERED.replace("[caller]", unique).replace("[caller_name]", ""),
        pause(menu_after_ms),
        dtmf("1"),
        listen,
        ended_by_hotline,
        '  <label id="callerbye"/>\n',
        bye,
        '  <label id="end"/>\n',
    )


@dataclass(frozen=True)
class SippRun:
    placed: int
    ok: int
    failed: int
    peak: int


def run_callers(sip_port: int, xml: str, *, rate: float, calls: int, limit: int, budget_s: int) -> SippRun:
    with tempfile.TemporaryDirectory(prefix="bench-ivr-") as tmp:
        folder = Path(tmp)
        (folder / "caller.xml").write_text(xml, encoding="utf-8")
        command = [
            "sipp", f"127.0.0.1:{sip_port}", "-s", "12345", "-sf", str(folder / "caller.xml"),
            "-i", "127.0.0.1", "-p", str(free_tcp_and_udp_port()), "-mi", "127.0.0.1",
            "-mp", str(free_media_port()), "-r", str(int(rate * 1000)), "-rp", "1000000",
            "-m", str(calls), "-l", str(limit), "-nostdin", "-timeout", f"{budget_s}s",
            "-trace_stat", "-stf", str(folder / "stat.csv"), "-fd", "1",
        ]  # fmt: skip
        subprocess.run(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        rows = list(csv.DictReader((folder / "stat.csv").open(encoding="utf-8", errors="replace"), delimiter=";"))
    if not rows:
        return SippRun(0, 0, 0, 0)
    last = rows[-1]
    peak = max(int(row["CurrentCall"]) for row in rows)
    return SippRun(int(last["TotalCallCreated"]), int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"]), peak)


def redis_pid(platform: PlatformUnderTest) -> int:
    client = redis.Redis.from_url(platform.redis.url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def prompt_seconds(root: Path, name: str) -> float:
    for path in root.rglob(f"{name}.wav"):
        with wave.open(str(path)) as audio:
            return float(audio.getnframes()) / float(audio.getframerate())
    raise FileNotFoundError(f"no {name}.wav under {root}")


IDLE_S = 10.0


def settle(pid: int | None, timeout_s: float = 180.0) -> None:
    """Wait until the controller has finished starting (prompts synthesised in threads): its CPU
    below 5 % of a core over 2 s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        start = cpu_seconds(pid)
        time.sleep(2.0)
        if cpu_seconds(pid) - start < 0.1:
            return


def export_revision(rev: str, into: Path) -> Path:
    """The tree of ``rev`` in a folder (git archive), to run the 'before' controller from."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    if "hiredis" not in (into / "pyproject.toml").read_text(encoding="utf-8"):
        # that revision ran without redis-py's C parser: hide the one installed here from it
        (into / "hiredis").mkdir()
        (into / "hiredis" / "__init__.py").write_text('raise ImportError("not a dependency of this revision")\n')
    return into


@dataclass(frozen=True)
class PhaseResult:
    name: str
    sipp: SippRun
    cpu_ms: dict[str, float]  # per placed call
    net_ms: dict[str, float]  # per placed call, less the process's idle CPU over the same time
    wait: Histo | None
    step: Histo | None


def build_platform(root: Path, before_tree: Path | None) -> tuple[PlatformUnderTest, dict[str, str]]:
    """The platform with the shipped kunming dialplan; for 'before', manager.conf without the
    eventfilter and the old tree's controller. Returns it and the controller's environment."""
    rtp_min, rtp_max = rtp_range(RTP_PORTS)
    platform = PlatformUnderTest(
        root,
        overrides={
            "sip": {"rtp_port_min": rtp_min, "rtp_port_max": rtp_max},
            "recordings": {"enabled": False},
            "asterisk": shipped_asterisk_settings(),
        },
    )
    shipped = REPO / "dialplans"
    platform.dialplan_file.write_text((shipped / "kunming.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    shutil.copy(shipped / "caller_lists.yaml", platform.dialplan_file.parent / "caller_lists.yaml")
    environment = {"HOTLINE_TEST_NOW": TEST_NOW}
    if before_tree is not None:
        if "eventfilter" not in (before_tree / "telephony" / "asterisk_conf.py").read_text(encoding="utf-8"):
            manager = root / "asterisk-etc" / "manager.conf"
            lines = manager.read_text(encoding="utf-8").splitlines(keepends=True)
            manager.write_text("".join(line for line in lines if not line.startswith("eventfilter")), encoding="utf-8")
        if "ANSWERED_ARGUMENT" not in (before_tree / "telephony" / "extensions_conf.py").read_text(encoding="utf-8"):
            extensions = root / "asterisk-etc" / "extensions.conf"
            extensions.write_text(without_entry_answer(extensions.read_text(encoding="utf-8")), encoding="utf-8")
        if "site.asterisk.verbose" not in (before_tree / "telephony" / "asterisk_conf.py").read_text(encoding="utf-8"):
            as_before_verbose(root, platform)
        if "declined_message_types" not in (before_tree / "telephony" / "asterisk_conf.py").read_text(encoding="utf-8"):
            (root / "asterisk-etc" / "stasis.conf").write_text("", encoding="utf-8")  # nothing declined
        environment["PYTHONPATH"] = str(before_tree)
    return platform, environment


def as_before_verbose(root: Path, platform: PlatformUnderTest) -> None:
    """Revisions before ``asterisk.verbose``: no such key in config.yaml (their models refuse
    it), ``disabledevents`` not rendered, and Asterisk at verbose 3 with messages.log at 3."""
    config = platform.config_path.read_text(encoding="utf-8").splitlines(keepends=True)
    platform.config_path.write_text("".join(line for line in config if "  verbose: " not in line), encoding="utf-8")
    etc = root / "asterisk-etc"
    manager = (etc / "manager.conf").read_text(encoding="utf-8").splitlines(keepends=True)
    (etc / "manager.conf").write_text(
        "".join(line for line in manager if not line.startswith("disabledevents")), encoding="utf-8"
    )
    conf = etc / "asterisk.conf"
    conf.write_text(re.sub(r"(?m)^verbose = \d+$", "verbose = 3", conf.read_text(encoding="utf-8")), encoding="utf-8")
    logger = etc / "logger.conf"
    logger.write_text(logger.read_text(encoding="utf-8").replace(",verbose\n", ",verbose(3)\n"), encoding="utf-8")


def without_entry_answer(extensions: str) -> str:
    """extensions.conf as revisions before the third round rendered it: the IVR AGI answers the
    call itself (no Answer() just before it, no ``answered`` argument)."""
    entry = re.compile(r" same => n,Answer\(\)\n( same => n,AGI\([^\n]*/ivr,[^\n]*),answered\)\n")
    return entry.sub(lambda m: m.group(1) + ")\n", extensions, count=1)


def start_profiler(folder: str, name: str, pid: int | None) -> subprocess.Popen[bytes] | None:
    if not folder:
        return None
    out = Path(folder) / f"{name.replace(' ', '').replace('#', '-')}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "-p", str(pid), "-r", "100", "--gil", "--nonblocking", "-f", "raw", "-o", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_phase(name: str, root: Path, before_tree: Path | None, args: argparse.Namespace) -> PhaseResult:
    platform, environment = build_platform(root, before_tree)
    profiler: subprocess.Popen[bytes] | None = None
    try:
        platform.redis.start()
        platform.asterisk.start()
        platform.start_controller(environment=environment)
        welcome = prompt_seconds(root, "welcome")
        call_s = welcome + 1.5 + 0.4 + args.listen_s
        rate = args.calls / call_s  # Little's law: about --calls up at once
        xml = caller_scenario(int((welcome + 1.5) * 1000), int(args.listen_s * 1000))
        pids = {
            "asterisk": platform.asterisk.pid,
            "controller": platform.controller.pid if platform.controller else None,
            "redis": redis_pid(platform),
        }
        profiler = start_profiler(args.profile, name, pids["controller"])
        settle(pids["controller"])
        idle0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
        time.sleep(IDLE_S)
        before_metrics = platform.http_bytes("/metrics").decode()
        cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
        started = time.monotonic()
        sipp = run_callers(
            platform.config.sip.port, xml, rate=rate, calls=int(rate * args.load_s), limit=args.calls * 2,
            budget_s=int(args.load_s + call_s + 120),
        )  # fmt: skip
        time.sleep(2.0)  # the last hang-ups reach the controller
        cpu1 = {k: cpu_seconds(pid) for k, pid in pids.items()}
        loaded_s = time.monotonic() - started
        after_metrics = platform.http_bytes("/metrics").decode()
    finally:
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(timeout=60)
        platform.stop_all()
    placed = max(sipp.placed, 1)
    cpu_ms = {k: (cpu1[k] - cpu0[k]) * 1000 / placed for k in pids}
    # less what the process spends anyway (timers, the wallboard, the ASR poll) over the same time
    idle_per_s = {k: (cpu0[k] - idle0[k]) / IDLE_S for k in pids}
    net_ms = {k: (cpu1[k] - cpu0[k] - idle_per_s[k] * loaded_s) * 1000 / placed for k in pids}
    histograms = []
    for family in ("hotline_agi_wait_seconds", "hotline_agi_step_seconds"):
        after = parse_histogram(after_metrics, family)
        histograms.append(after.minus(parse_histogram(before_metrics, family)) if after else None)
    return PhaseResult(name, sipp, cpu_ms, net_ms, histograms[0], histograms[1])


def _ms(value: float) -> str:
    return f"{value * 1000:.2f}" if value == value and value != float("inf") else "-"  # noqa: PLR0124 - NaN


def report(results: list[PhaseResult], args: argparse.Namespace) -> None:
    print(
        f"IVR under load: kunming dialplan, ~{args.calls} concurrent callers (Little's law), "
        f"{args.load_s:g} s of arrivals per phase, caller presses 1 then listens {args.listen_s:g} s"
    )
    print("| phase | placed | failed | peak calls | ast ms/call | ctl ms/call | rds ms/call | ctl/ast "
          "| ctl net ms/call | ast net ms/call | net ctl/ast "
          "| wait p50 ms | wait p99 ms | wait ≤5 ms | step n | step p50 ms | step p99 ms | step ≤5 ms |")  # fmt: skip
    print("|---|" + "---:|" * 17)
    for r in results:
        wait, step = r.wait, r.step
        ratio = r.cpu_ms["controller"] / r.cpu_ms["asterisk"] if r.cpu_ms["asterisk"] else float("nan")
        print(
            f"| {r.name} | {r.sipp.placed} | {r.sipp.failed} | {r.sipp.peak} | {r.cpu_ms['asterisk']:.1f} "
            f"| {r.cpu_ms['controller']:.2f} | {r.cpu_ms['redis']:.2f} | {ratio:.1%} "
            f"| {r.net_ms['controller']:.2f} | {r.net_ms['asterisk']:.1f} "
            f"| {r.net_ms['controller'] / r.net_ms['asterisk']:.1%} "
            f"| {_ms(wait.quantile(0.5)) if wait else '-'} | {_ms(wait.quantile(0.99)) if wait else '-'} "
            f"| {f'{wait.share_at_most(0.005):.1%}' if wait else '-'} | {int(step.counts[-1]) if step else '-'} "
            f"| {_ms(step.quantile(0.5)) if step else '-'} | {_ms(step.quantile(0.99)) if step else '-'} "
            f"| {f'{step.share_at_most(0.005):.1%}' if step else '-'} |"
        )
    for kind in ("before", "after"):
        mine = [r for r in results if r.name.startswith(kind)]
        if mine:
            ctl = sum(r.cpu_ms["controller"] for r in mine) / len(mine)
            ast = sum(r.cpu_ms["asterisk"] for r in mine) / len(mine)
            net = sum(r.net_ms["controller"] for r in mine) / len(mine)
            print(f"{kind} (mean of {len(mine)}): controller {ctl:.2f} ms/call ({net:.2f} net of idle), "
                  f"Asterisk {ast:.1f} ms/call, controller/Asterisk {ctl / ast:.1%}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="concurrent callers to aim for")
    parser.add_argument("--load-s", type=float, default=60.0, help="seconds of arrivals per phase")
    parser.add_argument("--listen-s", type=float, default=3.0, help="how long a caller listens after the key")
    parser.add_argument("--before", default="", help="git revision whose controller runs the 'before' phases")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--profile", default="", help="folder for py-spy profiles of the controller")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ivr-load-") as tmp:
        folder = Path(tmp)
        before_tree = export_revision(args.before, folder / "before-tree") if args.before else None
        results: list[PhaseResult] = []
        for repeat in range(1, args.repeats + 1):
            if before_tree is not None:
                results.append(run_phase(f"before #{repeat}", folder / f"before-{repeat}", before_tree, args))
            results.append(run_phase(f"after #{repeat}", folder / f"after-{repeat}", None, args))
        report(results, args)


if __name__ == "__main__":
    main()
