"""The first visit on a fresh server, in a real browser: an empty runs folder, the demo trained
by the app itself, complete (no page asks to train with ``keep_weights``), every page opening
with its findings; the digits demo one click away."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import EXCEPTION, TIMEOUT_MS, Server, start_server

pytestmark = pytest.mark.e2e

#: The sidebar (its page links are the navigation).
SIDEBAR = '[data-testid="stSidebar"]'
#: What a page says when the trace kept only its final weights.
NOTICE = "keep_weights"


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[tuple[Server, float]]:
    """The app on an empty runs folder, and the time it was started (``perf_counter``)."""
    started = time.perf_counter()
    running = start_server(tmp_path)
    try:
        yield running, started
    finally:
        running.stop()
        assert "Traceback" not in running.log()


def _page(page, name: str, ready: str) -> None:
    from playwright.sync_api import expect

    # the sidebar's link: a page's findings may link to the same page by its name
    page.locator(SIDEBAR).get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    expect(page.get_by_text("Findings on this trace")).to_be_visible()
    expect(page.get_by_text(ready).first).to_be_visible()
    assert page.locator(EXCEPTION).count() == 0
    assert page.get_by_text(NOTICE).count() == 0, f"{name} asks for {NOTICE}"


def test_the_first_visit_shows_the_complete_demo(
    fresh_server: tuple[Server, float], browser
) -> None:
    from playwright.sync_api import expect

    server, started = fresh_server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.url)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("Findings", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"hidden neurons (is|are) dead")).first).to_be_visible()
    ready = time.perf_counter() - started
    print(f"\nfresh server to the demo's findings drawn: {ready:.1f} s (shared machine)")
    assert (server.runs / "demo-moons.nntrace").is_file()
    assert page.locator(EXCEPTION).count() == 0

    # Breadcrumbs: the trail over every recorded epoch ("Since when?") works
    _page(page, "Breadcrumbs", "Since when?")
    # Dynamics: the training map's features include the spectral ones (kept weights)
    _page(page, "Dynamics", "Is there temporal structure at all?")
    # Neurons: the weights at every epoch
    _page(page, "Neurons", "Health at")
    page.get_by_role("tab", name="Inputs and outputs").click()
    panel = page.locator('[role="tabpanel"]:visible')
    expect(panel.locator('[data-testid="stVegaLiteChart"]').nth(2)).to_be_visible()  # history
    assert page.get_by_text(NOTICE).count() == 0

    # the digits demo, from the Overview
    page.locator(SIDEBAR).get_by_role("link", name="Overview", exact=True).click()
    page.get_by_role("button", name="Load the digits demo").click()
    page.wait_for_url("**trace=demo-digits**")
    expect(page.get_by_text("Findings", exact=True)).to_be_visible()
    assert (server.runs / "demo-digits.nntrace").is_file()
    assert page.locator(EXCEPTION).count() == 0
