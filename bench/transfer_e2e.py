"""Transfer set-up time between platforms: a 昆明 seat's transfer to the provincial seat's ring.

Two real platforms on loopback (昆明 and the province: each its own Asterisk and controller,
one shared Redis; 大理 of the integration test is left out, it plays no part in a transfer).
Each round: ``--pairs`` SIPp callers dial 昆明's 12345 and are seated with as many 昆明 seats
(one SIPp UAS plays every seat); once every seat talks, the bench fires one
``POST /api/v1/calls/{id}/transfer`` per call at once (aiohttp, one task each). 昆明 redirects
each caller into its transfer context, which dials the province over a SIP trunk; the
province's IVR puts the call straight into a queue and its ACD rings one of ``--pairs``
provincial seats (another SIPp UAS, which rings ``--ring-ms``, answers and hangs up after
``--talk-s``; the caller then gets the BYE, and the round ends).

The stopwatch: start = the bench's clock just before each POST is sent; end = the INVITE to a
provincial seat that carries the caller's number, as the seats' SIPp received it (its
``-trace_msg`` log, microsecond timestamps, same host clock). That is the phone ringing. Two
intermediate marks come from the province Asterisk's own AMI events (``timestampevents``):
the transferred call arriving on the province's trunk (``Newchannel``), and the call entering
the hold context (queued for a seat, after the province's IVR).

Systems, alternating round by round in one run on the same stack:
- ours: destination ``province``, a trunk with ``platform: province``: 昆明 writes a hand-off
  record to the shared Redis, its token goes in the SIP header, and the province reads it,
  marks it picked up and starts the call at ``handoff_start`` (a queue node).
- baseline: destination ``province_plain``, a trunk to the same province with no
  ``platform``: the same API, Redirect and Dial, but no record, no header; the province
  starts at ``start`` (the same queue, no priority). Both province paths have no prompt.
- attended: ours, as a consultation (``"mode": "attended"``): Asterisk's attended transfer
  dials the province from the 昆明 seat's channel with the case; the bench completes each one
  (``POST …/transfer/complete``) as soon as the province has answered (its IVR), so the caller
  joins the provincial queue; the stopwatch is the same.

A transfer failed if the API did not answer 202, or no provincial seat rang for the caller,
or 昆明's record of the call did not end ``transferred``; ours also counts hand-offs never
marked picked up.

Run: .venv/bin/python -m bench.transfer_e2e [--quick] [--pairs 20] [--rounds 10] ...

Parts: ``transfer_model`` (settings, systems, a transfer, a round), ``transfer_stack`` (the two
platforms, SIPp, the province's AMI marks), ``transfer_round`` (one round), ``transfer_report``
(the table); this module runs the rounds.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench.e2e_ami import add_observer
from bench.transfer_model import SYSTEMS, Round, Settings
from bench.transfer_report import report
from bench.transfer_round import attach_marks, run_round
from bench.transfer_stack import Network, ProvinceRecorder, surrogates


def run(settings: Settings, workdir: Path) -> None:
    net = Network.create(workdir, settings)
    recorder: ProvinceRecorder | None = None
    rounds: list[Round] = []
    try:
        observer, secret = add_observer(net.province.asterisk.layout.etc_dir)
        net.start()
        recorder = ProvinceRecorder(net.province.config.asterisk.ami_port, observer, secret)
        order = list(SYSTEMS)
        for round_no in range(settings.rounds):
            system = order[round_no % len(order)]
            started = time.monotonic()
            result = run_round(net, settings, system, round_no, workdir / "rounds")
            rounds.append(result)
            statuses = sorted({t.status for t in result.transfers})
            print(f"round {round_no} {system}: {result.seated} seated, POST statuses {statuses}, "
                  f"{len(surrogates(net))} Surrogate channels up, {time.monotonic() - started:.1f} s",
                  flush=True)  # fmt: skip
        attach_marks(net, recorder, rounds)
        report(settings, rounds, surrogates(net))
    finally:
        if recorder is not None:
            recorder.close()
        net.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="6 rounds (2 per system), < 4 min")
    parser.add_argument("--pairs", type=int, default=20, help="concurrent transfers per round")
    parser.add_argument("--rounds", type=int, default=30, help="rounds in all, systems taking turns")
    parser.add_argument("--ring-ms", type=int, default=500, help="provincial seats ring this long, then answer")
    parser.add_argument("--talk-s", type=float, default=1.0, help="provincial seats hang up after this much talk")
    parser.add_argument("--arrival-rate", type=float, default=10.0, help="callers per second into 昆明")
    parser.add_argument("--settle-s", type=float, default=1.0, help="pause once every 昆明 seat talks")
    parser.add_argument("--keep", type=Path, help="keep logs, configs and traces in this folder")
    args = parser.parse_args()
    if args.rounds < len(SYSTEMS):
        parser.error(f"--rounds: at least {len(SYSTEMS)} (one per system)")
    settings = Settings(
        pairs=args.pairs, rounds=2 * len(SYSTEMS) if args.quick else args.rounds, ring_ms=args.ring_ms,
        talk_s=args.talk_s, arrival_rate=args.arrival_rate, settle_s=args.settle_s,
    )  # fmt: skip
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        args.keep.mkdir(parents=True)
        run(settings, args.keep.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="bench-transfer-e2e-") as tmp:
        run(settings, Path(tmp))


if __name__ == "__main__":
    main()
