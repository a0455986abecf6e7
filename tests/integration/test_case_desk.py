"""The case desk on a real Asterisk: a SIPp caller reaches a SIPp seat, the seat's websocket
pops, the seat registers a dispatched case, and the same number's next call is linked to it."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.platform import SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import ANSWERED, HOTLINE_HANGS_UP, INVITE, SippCall, SippServer, answering_peer, scenario

pytestmark = pytest.mark.integration

CALLER = "13912340001"


class SeatSocket(threading.Thread):
    """A seat desk's websocket, as a browser opens it: no header, the token as first message."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self._url, self._token = url, token
        self.events: list[dict[str, Any]] = []
        self._quit = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(self._url) as socket:
            await socket.send_json({"token": self._token})
            while not self._quit.is_set():
                try:
                    message = await socket.receive(timeout=0.5)
                except TimeoutError:
                    continue
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                self.events.append(json.loads(message.data))

    def stop(self) -> None:
        self._quit.set()
        self.join(timeout=10)

    def wait(self, kind: str, after: int = 0, timeout_s: float = 60) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            return next((e for e in self.events[after:] if e.get("type") == kind), None)

        return wait_for(f"a {kind} event on the seat's socket", probe, timeout_s=timeout_s, interval_s=0.1)


def test_screen_pop_case_and_repeat_call(tmp_path: Path) -> None:
    port = free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path / "platform",
        overrides={
            "seats": [{"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{port}"}],
            "acd": {"wrapup_s": 0, "ring_timeout_s": 8},
        },
        dialplan="queue",
    )
    platform.install_dialplan("queue")
    platform.start_all()
    socket = SeatSocket(f"ws://127.0.0.1:{platform.config.http.port}/api/v1/seats/1001/events", SEAT_TOKEN)
    seat = SippServer(scenario(answering_peer(talk_ms=6000, hang_up=True)), port=port, calls=2)
    try:
        socket.start()
        assert socket.wait("hello")["seat"] == "1001"
        assert platform.http("/api/v1/seats/1001/login", method="POST").status == 200

        first = SippCall(platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller=CALLER)
        pop = socket.wait("call.offered")
        call_id = pop["call_id"]
        assert pop["caller_number"] == CALLER and pop["caller"] == "139****0001"
        assert pop["history"] == {"window_days": 90, "calls": [], "open_cases": []}
        wait_for("the seat to answer", lambda: platform.http(f"/api/v1/calls/{call_id}").body.get("seat") == "1001")
        case = {
            "category": "complaint",
            "matter_type": "market_supervision",
            "location": "五华区青年路",
            "request": "超市卖过期食品",
            "unit": "km_wuhua_market_supervision",
            "outcome": "dispatched",
        }
        registered = platform.http(f"/api/v1/calls/{call_id}/case", token=SEAT_TOKEN, method="POST", body=case)
        assert registered.status == 201, registered.body
        ticket_id = registered.body["case_id"]
        assert socket.wait("case.registered")["ticket_id"] == ticket_id
        again = platform.http(f"/api/v1/calls/{call_id}/case", token=SEAT_TOKEN, method="POST", body=case)
        assert (again.status, again.body["case_id"]) == (409, ticket_id)
        assert first.wait().ok

        ticket = platform.http(f"/api/v1/tickets/{ticket_id}").body
        assert (ticket["source"], ticket["call_id"], ticket["seat"], ticket["state"]) == (
            "phone",
            call_id,
            "1001",
            "dispatched",
        )
        assert ticket["has_audio"] and ticket["caller"] == "139****0001"
        assert platform.http_bytes(f"/api/v1/tickets/{ticket_id}/audio")[:4] == b"RIFF"  # the conversation
        wait_for("the record's case id", lambda: platform.http(f"/api/v1/calls/{call_id}").body["case_id"])

        seen = len(socket.events)
        second = SippCall(platform.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller=CALLER)
        pop = socket.wait("call.offered", after=seen)
        repeat_id = pop["call_id"]
        assert repeat_id != call_id
        assert [c["call_id"] for c in pop["history"]["calls"]] == [call_id]
        assert [c["id"] for c in pop["history"]["open_cases"]] == [ticket_id]
        wait_for("the seat to answer again", lambda: platform.http(f"/api/v1/calls/{repeat_id}").body.get("seat"))
        body = {"ticket_id": ticket_id}
        linked = platform.http(f"/api/v1/calls/{repeat_id}/link", token=SEAT_TOKEN, method="POST", body=body)
        assert linked.status == 200, linked.body
        assert second.wait().ok
        ticket = platform.http(f"/api/v1/tickets/{ticket_id}").body
        assert ticket["linked_call_ids"] == [repeat_id]
        assert ticket["timeline"][-1]["note"].startswith(f"repeat request by phone: call {repeat_id}")
        assert socket.wait("call.ended", after=seen)["call_id"] == repeat_id
    finally:
        socket.stop()
        seat.stop()
        platform.stop_all()
