"""Every test under tests/browser drives a real Chromium: the `browser` marker and the page fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import page, page_log, pytest_runtest_makereport

__all__ = ["page", "page_log", "pytest_runtest_makereport"]

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)
