"""One round of the transfer bench: callers seated in 昆明, every transfer fired at once, the
outcome read back; then the marks from the province's phones and AMI."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp

from bench.e2e_stack import cpu_seconds
from bench.transfer_model import SYSTEMS, Round, Settings, Transfer
from bench.transfer_stack import (
    Callers,
    Network,
    ProvinceRecorder,
    busy_seats,
    leftover_channels,
    province_free_since,
    talking_calls,
)
from tests.support.platform import ADMIN_TOKEN, wait_for

PATIENCE_S = 20.0  # callers hang up this long after 昆明 answered them, if nothing ended the call before


async def fire(base_url: str, transfers: list[Transfer], system: str) -> None:
    """Every transfer's POST at once, one task each; a consultation is completed as soon as
    the other side has answered."""
    to, mode = SYSTEMS[system]
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def complete_when_answered(transfer: Transfer) -> None:
            url = f"{base_url}/api/v1/calls/{transfer.call_id}/transfer"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                async with session.get(url) as response:
                    state = (await response.json(content_type=None)).get("state") if response.status == 200 else None
                if state == "talking":
                    async with session.post(f"{url}/complete") as response:
                        if response.status != 202:
                            transfer.error = f"complete: {response.status} {await response.text()}"[:300]
                    return
                await asyncio.sleep(0.05)
            transfer.error = "the consultation was never answered"

        async def one(transfer: Transfer) -> None:
            url = f"{base_url}/api/v1/calls/{transfer.call_id}/transfer"
            transfer.sent = time.time()
            try:
                body = {"to": to, "mode": mode, "note": "跨市事项，请省级坐席继续处理。"}
                async with session.post(url, json=body) as response:
                    reply = await response.json(content_type=None)
                    transfer.replied = time.time()
                    transfer.status = response.status
                    if response.status == 202:
                        transfer.token = (reply.get("handoff") or {}).get("token", "")
                    else:
                        transfer.error = str(reply)[:300]
                if mode == "attended" and transfer.status == 202:
                    await complete_when_answered(transfer)
            except (aiohttp.ClientError, TimeoutError) as exc:
                transfer.error = repr(exc)

        await asyncio.gather(*(one(t) for t in transfers))


def cpu_now(net: Network) -> dict[str, float]:
    pids = {
        "kunming asterisk": net.kunming.asterisk.pid,
        "province asterisk": net.province.asterisk.pid,
        "kunming controller": net.kunming.controller.pid if net.kunming.controller else None,
        "province controller": net.province.controller.pid if net.province.controller else None,
    }
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def run_round(net: Network, settings: Settings, system: str, round_no: int, folder: Path) -> Round:
    kunming = net.kunming
    # the province publishes its seats every 5 s; a snapshot from the previous round's calls
    # would refuse our transfers ("no free seat") while its seats are in fact free
    since = time.time()
    with contextlib.suppress(AssertionError):  # fire anyway: refusals count as failures
        wait_for(
            "a snapshot of the province with every seat ready",
            lambda: province_free_since(net, since, len(net.province_seats)),
            timeout_s=15,
        )
    before = cpu_now(net)
    callers = Callers(folder / f"callers-{round_no}", kunming.config.sip.port, settings.pairs,
                      settings.arrival_rate, patience_s=PATIENCE_S)  # fmt: skip
    try:
        talking = wait_for(
            f"{settings.pairs} 昆明 seats talking",
            lambda: found if len(found := talking_calls(kunming)) >= settings.pairs else None,
            timeout_s=settings.pairs / settings.arrival_rate + 30,
        )
    except AssertionError:
        talking = talking_calls(kunming)  # go on with the seats that do talk; the table says so
    time.sleep(settings.settle_s)
    transfers = [
        Transfer(system, round_no, call_id, str(kunming.stored_call(call_id)["caller"])) for call_id in talking.values()
    ]
    asyncio.run(fire(kunming.base_url, transfers, system))
    sip_ok, sip_failed = callers.wait()
    end = time.time()
    for each in transfers:
        each.round_end = end
    leftover = leftover_channels(net)
    deadline = time.monotonic() + 20
    while leftover and time.monotonic() < deadline:
        time.sleep(0.5)
        leftover = leftover_channels(net)
    stuck = 0
    try:
        wait_for("every seat ready", lambda: busy_seats(net.kunming) + busy_seats(net.province) == 0, timeout_s=20)
    except AssertionError:
        stuck = busy_seats(net.kunming) + busy_seats(net.province)
    after = cpu_now(net)
    outcomes = {c["call_id"]: c for c in kunming.calls()}
    for each in transfers:
        each.outcome = str(outcomes.get(each.call_id, {}).get("outcome") or "")
        if each.token:
            record = kunming.http(f"/api/v1/handoffs/{each.token}").body
            each.picked_up = isinstance(record, dict) and bool(record.get("picked_up_call_id"))
    return Round(
        system, round_no, settings.pairs, len(talking), transfers, sip_ok, sip_failed, len(leftover), stuck,
        {name: after[name] - before[name] for name in before}, "\n".join(leftover),
    )  # fmt: skip


def attach_marks(net: Network, recorder: ProvinceRecorder, rounds: list[Round]) -> None:
    invites = net.province_phones.invites()
    for r in rounds:
        for t in r.transfers:
            t.rang = next((w for w, caller, _ in invites if caller == t.caller and t.sent <= w < t.round_end), None)
            t.arrived, t.queued = recorder.arrival(t.caller, t.sent, t.round_end)
