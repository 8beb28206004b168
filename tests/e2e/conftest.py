"""Fixtures of the end-to-end tests: a real server and Debian's Chromium (see ``e2e_server``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import BROWSER_ARGS, CHROMIUM, TIMEOUT_MS, Server, start_server


@pytest.fixture
def server(tmp_path: Path, tiny_trace_file: Path) -> Iterator[Server]:
    """The app with a runs folder holding ``tiny.nntrace``; no traceback may reach its log."""
    running = start_server(tmp_path, {"tiny": tiny_trace_file})
    try:
        yield running
    finally:
        running.stop()
        assert "Traceback" not in running.log()


@pytest.fixture
def browser() -> Iterator[object]:
    """Debian's Chromium under Playwright (skipped where it is not installed)."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()
