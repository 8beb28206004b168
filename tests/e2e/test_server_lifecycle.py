"""A real server's life with runs training in its sidebar: the runs are processes of their
own that train on when the server stops, and a run started is shown until it ends, on whatever
page, even with several sessions at once."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from e2e_server import EXCEPTION, TIMEOUT_MS, Server, start_server

from nn_tracing import load_trace
from nn_tracing.run_process import stop_run
from nn_tracing.rundir_live import FINAL_STATUSES, process_start, read_writer

pytestmark = pytest.mark.e2e

SIDEBAR = '[data-testid="stSidebar"]'


def open_app(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_role("heading", name="Overview").wait_for()
    return page


def wait_idle(page) -> None:
    """Wait until no script run is in progress (Streamlit's running indicator is gone)."""
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS
    )


def start_run(page, name: str, hidden: str, epochs: int) -> None:
    """Fill the sidebar's training form and press Run training (retrying while the sidebar
    redraws: an expander may close under the pointer when a rerun redraws it)."""
    sidebar = page.locator(SIDEBAR)

    def field(label: str):
        return sidebar.get_by_label(label, exact=True).and_(page.locator("input"))

    for attempt in range(10):
        wait_idle(page)
        try:
            for section in ("New training run", "More settings"):
                expander = sidebar.locator("details", has_text=section).last
                if expander.get_attribute("open", timeout=5000) is None:
                    expander.locator("summary").first.click(timeout=5000)
            field("Hidden layer sizes").fill(hidden, timeout=5000)
            field("Epochs").fill(str(epochs), timeout=5000)
            field("Run name").fill(name, timeout=5000)
            sidebar.get_by_role("button", name="Run training").click(timeout=5000)
            return
        except Exception:
            if attempt == 9:
                raise
            time.sleep(1)


def start_run_and_see_it(page, run_dir: Path, hidden: str, epochs: int) -> None:
    """:func:`start_run`, pressed again when nothing started within a minute: Streamlit can
    drop a click that lands while a rerun replaces the form (see the last test), and a
    dropped click leaves no run directory and the form as it was."""
    for attempt in range(3):
        start_run(page, run_dir.name, hidden, epochs)
        try:
            wait_for(lambda: (run_dir / "manifest.json").exists(), 60, f"{run_dir.name} to start")
            return
        except AssertionError:
            sidebar = page.locator(SIDEBAR).inner_text()
            if attempt == 2 or run_dir.name in sidebar:  # started (slowly), or never will
                message = f"{run_dir.name} did not start; the sidebar says:\n{sidebar}"
                raise AssertionError(message) from None


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


def manifest_of(run_dir: Path) -> dict:
    """The run directory's manifest as written (``{}`` while there is none)."""
    try:
        return json.loads((run_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def recorded_on_disk(run_dir: Path) -> list[int]:
    return list(manifest_of(run_dir).get("epochs", []))


def closed(run_dir: Path) -> bool:
    """Whether the run's writer closed its directory (a final status in the manifest)."""
    return manifest_of(run_dir).get("meta", {}).get("status") in FINAL_STATUSES


def _kill_writer(run_dir: Path) -> None:
    """Clean-up after a failed test: end the run's process (verified by pid and start time)."""
    writer = read_writer(run_dir)
    if writer is not None and process_start(writer.pid) == writer.proc_start != 0:
        os.kill(writer.pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_server_stops_and_its_runs_train_on(
    tmp_path: Path, tiny_trace_file: Path, browser, signum: int
) -> None:
    """Ctrl-C / SIGTERM to the server while a sidebar run trains: the server exits promptly
    and cleanly, and the run — a process of its own — trains on, its directory growing; then
    ``stop_run`` stops it gracefully and the directory holds every epoch, status ``stopped``."""
    server = start_server(tmp_path, {"tiny": tiny_trace_file})
    run_dir = server.runs / "lifecycle"
    try:
        page = open_app(browser, server.url)
        start_run_and_see_it(page, run_dir, "64, 64", 2000)
        try:
            wait_for(lambda: recorded_epochs(page) >= 5, 180, "5 recorded epochs")
        except AssertionError as error:
            sidebar = page.locator(SIDEBAR).inner_text()
            on_disk = recorded_on_disk(run_dir)
            message = f"{error}; on disk {on_disk}; the sidebar says:\n{sidebar}"
            raise AssertionError(message) from None
        assert page.locator(EXCEPTION).count() == 0
        writer = read_writer(run_dir)
        assert writer is not None and writer.pid != server.process.pid
        page.close()
        server.signal(signum)  # the server's whole process group, as a terminal's Ctrl-C
        started = time.monotonic()
        server.wait(timeout=30)
        exit_seconds = time.monotonic() - started
        log = server.log()
        assert "Traceback" not in log, log
        assert exit_seconds < 15, f"the server took {exit_seconds:.1f} s to exit"
        # the run goes on without the server: same process, more epochs on disk
        assert process_start(writer.pid) == writer.proc_start
        seen = recorded_on_disk(run_dir)
        assert len(seen) >= 5 and not closed(run_dir)
        wait_for(lambda: len(recorded_on_disk(run_dir)) > len(seen) + 1, 120, "new epochs")
        assert stop_run(run_dir) is True
        wait_for(lambda: closed(run_dir), 60, "the run to close its directory")
    finally:
        server.stop()
        _kill_writer(run_dir)
    trace = load_trace(run_dir)
    assert trace.status == "stopped"
    assert trace.epochs[: len(seen)] == seen and len(trace.epochs) > len(seen) + 1
    assert trace.meta["partial_epoch"] == trace.epochs[-1]
    assert "stop_requested_at" in trace.meta
    assert not list(server.runs.glob("lifecycle*.nntrace"))  # the directory is the trace
    assert "Traceback" not in (run_dir / "train.log").read_text()


def panel_state(page, name: str) -> str:
    """What the sidebar says of run ``name``: training, ended, or nothing."""
    text = page.locator(SIDEBAR).inner_text()
    if f"Training {name}" in text:
        return "training"
    if f"Run {name} finished" in text or f"Run {name} stopped" in text:
        return "ended"
    return "absent"


def test_runs_started_while_switching_pages_are_shown_until_they_end(
    server: Server, browser
) -> None:
    """Two sessions at once, each pressing Run and switching page in the same instant, three
    times: every run that started closes its run directory, and its session's sidebar — on
    the page it switched to — says that it ended (no frozen progress, no Stop button left
    behind).

    Streamlit itself can drop a click that lands in the same few milliseconds as a page
    switch (the click's rerun is replaced before its callback runs): such a click starts
    nothing and leaves the form as it was, ready to press again; the test counts those.
    """
    pages = [open_app(browser, server.url) for _ in range(2)]
    targets = ["Neurons", "Dynamics", "Overview", "Breadcrumbs"]
    started = 0
    for round_ in range(3):
        names = []
        for i, page in enumerate(pages):
            name = f"switch-{round_}-{i}"
            start_run(page, name, "16, 16", 40)
            page.locator(SIDEBAR).get_by_role("link", name=targets[(round_ + i) % 4]).click()
            names.append((page, name))
        for page, name in names:
            run_dir = server.runs / name
            try:
                wait_for(lambda d=run_dir: closed(d), 90, f"{name} saved")
            except AssertionError:
                wait_idle(page)
                assert panel_state(page, name) == "absent", f"{name} is shown but never saved"
                continue
            started += 1
            wait_for(lambda p=page, n=name: panel_state(p, n) == "ended", 30, f"{name} ended")
            assert page.locator(SIDEBAR).get_by_role("button", name="Stop").count() == 0
            assert page.locator(EXCEPTION).count() == 0
    assert started >= 3, f"only {started} of 6 runs started"
