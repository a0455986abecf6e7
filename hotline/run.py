"""Running controllers in one process: start them, serve until SIGTERM/SIGINT (SIGHUP reloads
the dialplans, the units directory and the knowledge base), then drain them."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from hotline.controller import Controller


async def run_until_signalled(controllers: Sequence[Controller], on_started: Callable[[], None] | None = None) -> None:
    """Start, serve until SIGTERM/SIGINT (SIGHUP reloads the dialplans), then drain. Several
    controllers (the platforms of ``make run``) share one event loop; each logs its platform."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[Any]] = set()

    def on_hangup_signal() -> None:
        for controller in controllers:
            for reload in (
                controller.reload_dialplan("SIGHUP"),
                controller.desk.reload("SIGHUP"),  # the units directory and desk codes
                controller.knowledge.reload("SIGHUP"),
            ):
                task = loop.create_task(reload)
                reloads.add(task)
                task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup_signal)
    started: list[Controller] = []
    try:
        for controller in controllers:
            # tasks the controller starts inherit this binding: its log lines name its platform
            with structlog.contextvars.bound_contextvars(platform=controller.config.platform.id):
                await controller.start()
            started.append(controller)
        if on_started is not None:
            on_started()
        await stop.wait()
    finally:
        for controller in reversed(started):
            await controller.stop()
