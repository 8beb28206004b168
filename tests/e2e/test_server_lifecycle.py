"""A real server's life with runs training in its sidebar: stopping the server saves them, and
a run started is shown until it ends, on whatever page, even with several sessions at once."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from e2e_server import EXCEPTION, TIMEOUT_MS, start_server

from nn_tracing import load_trace

pytestmark = pytest.mark.e2e

SIDEBAR = '[data-testid="stSidebar"]'


def open_app(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_role("heading", name="Overview").wait_for()
    return page


def start_run(page, name: str, hidden: str, epochs: int) -> None:
    """Fill the sidebar's training form and press Run training."""
    sidebar = page.locator(SIDEBAR)
    form = sidebar.get_by_text("New training run")
    if (
        not sidebar.get_by_label("Hidden layer sizes", exact=True)
        .and_(page.locator("input"))
        .is_visible()
    ):
        form.click()
    sidebar.get_by_label("Hidden layer sizes", exact=True).and_(page.locator("input")).fill(hidden)
    sidebar.get_by_label("Epochs", exact=True).and_(page.locator("input")).fill(str(epochs))
    more = sidebar.get_by_text("More settings")
    if not sidebar.get_by_label("Run name", exact=True).and_(page.locator("input")).is_visible():
        more.click()
    sidebar.get_by_label("Run name", exact=True).and_(page.locator("input")).fill(name)
    sidebar.get_by_role("button", name="Run training").click()


def recorded_epochs(page) -> int:
    """The sidebar panel's count of recorded epochs (0 while it is not shown)."""
    text = page.locator(SIDEBAR).inner_text()
    match = re.search(r"(\d+) epochs recorded", text)
    return int(match.group(1)) if match else 0


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_server_saves_the_run_that_trains(
    tmp_path: Path, tiny_trace_file: Path, browser, signum: int
) -> None:
    """Ctrl-C / SIGTERM while a sidebar run trains: the run is saved as ``stopped``.

    The run is big enough (132 neurons × > 13 epochs > 1600 rows) that pyarrow would use a
    thread pool to build its neuron table, which Python refuses during interpreter shutdown.
    """
    server = start_server(tmp_path, {"tiny": tiny_trace_file})
    try:
        page = open_app(browser, server.url)
        start_run(page, "lifecycle", "64, 64", 2000)
        wait_for(lambda: recorded_epochs(page) >= 15, 180, "15 recorded epochs")
        assert page.locator(EXCEPTION).count() == 0
        page.close()
        server.signal(signum)
        server.wait(timeout=90)
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log, log
    saved = sorted(server.runs.glob("lifecycle*.nntrace"))
    assert [p.name for p in saved] == ["lifecycle-stopped.nntrace"], log
    trace = load_trace(saved[0])
    assert trace.status == "stopped"
    assert len(trace.epochs) >= 15
    assert trace.n_neurons * len(trace.epochs) > 1600
