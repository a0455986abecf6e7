"""Pages in a real Chromium (Debian's ``chromium``, driven by Playwright; no browser download).

Fixtures (wired in tests/browser/conftest.py, so every test under tests/browser has them):

- ``page``: a fresh Playwright ``Page`` in its own headless Chromium.
- ``page_log``: what that page said — console messages, uncaught errors, responses ≥ 400.

On a failing test the page's screenshot and its log are written under ``test-artifacts/``
(ignored by git) and the failure report names them, with the log inline.

``AppServer`` serves an aiohttp application on a fixed loopback port and can be stopped and
started again on the same port (a controller restart, as a page left open sees it).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import ConsoleMessage, Error, Page, Response, async_playwright

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]


@dataclass
class PageLog:
    """Everything a page reported while the test ran, in order."""

    lines: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)  # "404 http://…/favicon.ico"
    errors: list[str] = field(default_factory=list)  # uncaught exceptions in the page

    def text(self) -> str:
        return "\n".join(self.lines) or "(the page logged nothing)"


LOG_KEY = pytest.StashKey[PageLog]()
FAILED_KEY = pytest.StashKey[bool]()


def chromium_path() -> str:
    """Debian's chromium (scripts/install-system-deps.sh installs it)."""
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("no chromium on PATH: run `make deps` (or as root: apt-get install -y chromium fonts-noto-cjk)")
    return found


def artifacts_dir(item: pytest.Item) -> Path:
    """test-artifacts/<test node id, made a file name>."""
    return ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    """Name the screenshot and show the page's log in the report of a failing browser test."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    log = item.stash.get(LOG_KEY, None)
    if log is None or report.when != "call" or not report.failed:
        return
    item.stash[FAILED_KEY] = True
    where = artifacts_dir(item)
    report.sections.append(("browser artifacts", f"screenshot {where / 'screenshot.png'}\nlog {where / 'page.log'}"))
    report.sections.append(("browser page log", log.text()))


@pytest.fixture
def page_log(request: pytest.FixtureRequest) -> PageLog:
    log = PageLog()
    request.node.stash[LOG_KEY] = log
    return log


@pytest.fixture
async def page(request: pytest.FixtureRequest, page_log: PageLog) -> AsyncIterator[Page]:
    """A page in a headless Chromium of its own; on failure, a screenshot and the log are saved."""
    executable = chromium_path()

    def on_console(message: ConsoleMessage) -> None:
        page_log.lines.append(f"console.{message.type}: {message.text}")

    def on_error(error: Error) -> None:
        page_log.errors.append(str(error))
        page_log.lines.append(f"uncaught: {error}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            page_log.failed_responses.append(f"{response.status} {response.url}")
            page_log.lines.append(f"response {response.status} {response.request.method} {response.url}")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            opened = await context.new_page()
            opened.on("console", on_console)
            opened.on("pageerror", on_error)
            opened.on("response", on_response)
            yield opened
            if request.node.stash.get(FAILED_KEY, False):
                where = artifacts_dir(request.node)
                where.mkdir(parents=True, exist_ok=True)
                (where / "page.log").write_text(page_log.text() + "\n", encoding="utf-8")
                await opened.screenshot(path=str(where / "screenshot.png"), full_page=True)
        finally:
            await browser.close()


class AppServer:
    """An aiohttp application on 127.0.0.1:<port>, stoppable and restartable on the same port."""

    def __init__(self, app: web.Application, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, app: web.Application | None = None) -> None:
        """Serve ``app`` (a new one: a restarted controller) or the one given at first."""
        if app is not None:
            self.app = app
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        """Close the port and every open connection, as a dead controller does."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
