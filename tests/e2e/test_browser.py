"""The app in a real browser: ``streamlit run`` on a free loopback port, Debian's Chromium
driven by Playwright (never ``playwright install``), every page visited, a trace uploaded."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from nn_tracing.ui.state import CLUSTERS_MAP_CHART, OVERVIEW_SCAN_CHART

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
EXCEPTION = '[data-testid="stException"]'
CHART = '[data-testid="stVegaLiteChart"]'
# Streamlit gives a keyed element's container the class st-key-<key>, other characters as "-"
SCAN = ".st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", OVERVIEW_SCAN_CHART) + " " + CHART
#: the Clusters map (its key ends in the trace's key, so match the prefix)
MAP = '[class*="st-key-' + re.sub(r"[^a-zA-Z0-9_-]", "-", CLUSTERS_MAP_CHART) + '"] ' + CHART
TIMEOUT_MS = 120_000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url}/_stcore/health did not answer within {timeout} s")


@pytest.fixture
def server(tmp_path: Path, tiny_trace_file: Path) -> Iterator[str]:
    """``streamlit run streamlit_app.py`` on 127.0.0.1 with a runs folder holding one trace."""
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(tiny_trace_file, runs / "tiny.nntrace")
    port = _free_port()
    env = {
        **os.environ,
        "NN_TRACING_RUNS_DIR": str(runs),
        "NN_TRACING_UPLOAD_DIR": str(tmp_path / "uploads"),
    }
    log = (tmp_path / "streamlit.log").open("wb")
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        assert "Traceback" not in (tmp_path / "streamlit.log").read_text(errors="replace")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed "
    "(apt-get install chromium); this test never runs `playwright install`",
)
def test_every_page_and_an_upload_in_a_real_browser(
    server: str, tmp_path: Path, tiny_trace_file: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # the first run imports torch: slow on 2 cores
    bad = tmp_path / "bad.nntrace"
    bad.write_bytes(b"definitely not a trace")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)

            # Overview: summary, curves, brain scan, health
            page.goto(server)
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            expect(page.locator(CHART).first).to_be_visible()
            expect(page.get_by_text("Brain scan")).to_be_visible()
            assert page.locator(EXCEPTION).count() == 0

            # A click on a brain-scan cell opens that neuron on the Neurons page
            # the brain scan's container carries its widget key as a class (st-key-<key>)
            scan = page.locator(SCAN)
            expect(scan.locator("g.mark-rect path").nth(8)).to_be_visible()
            scan.locator("g.mark-rect path").nth(8).click()  # input n_0, n_1, hidden_1 n_2 …
            page.wait_for_url("**/neurons?**")
            assert "neuron=E_4%2FL_hidden_1%2Fn_8" in page.url and "trace=tiny" in page.url
            expect(page.get_by_role("heading", name="Neurons")).to_be_visible()
            assert page.locator(EXCEPTION).count() == 0
            page.get_by_role("link", name="Overview").click()
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            expect(page.locator(SCAN)).to_be_visible()

            # Neurons, through the sidebar navigation
            page.get_by_role("link", name="Neurons").click()
            expect(page.get_by_role("heading", name="Neurons")).to_be_visible()
            expect(page.locator(CHART).first).to_be_visible()
            expect(page).to_have_url(f"{server}/neurons?trace=tiny&neuron=E_4%2FL_hidden_1%2Fn_2")
            assert page.locator(EXCEPTION).count() == 0

            # A malformed upload: a specific error, and the app goes on
            page.get_by_text("Upload a trace").click()
            uploader = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
            uploader.set_input_files(str(bad))
            expect(page.get_by_text("does not start like a zip file")).to_be_visible()
            assert page.locator(EXCEPTION).count() == 0

            # A good upload becomes the active trace
            good = tmp_path / "shared-run.nntrace"
            shutil.copy(tiny_trace_file, good)
            uploader.set_input_files(str(good))
            expect(page.get_by_text("Opened shared-run")).to_be_visible()
            expect(page.locator(CHART).first).to_be_visible()
            assert page.locator(EXCEPTION).count() == 0

            # Clusters: the verdict against chance, the map, a click lists and shares a neuron
            page.goto(f"{server}/clusters?trace=tiny&perms=19")
            expect(page.get_by_role("heading", name="Clusters")).to_be_visible()
            expect(page.get_by_text("Against chance:")).to_be_visible()
            points = page.locator(MAP + " g.mark-symbol.role-mark path")
            expect(points.nth(3)).to_be_visible()
            points.nth(3).click()
            expect(page.get_by_text("1 neuron(s) selected")).to_be_visible()
            page.wait_for_function("location.href.includes('sel=')")
            assert page.locator(EXCEPTION).count() == 0

            # Dynamics and Breadcrumbs, through the sidebar navigation: charts, no exception
            for name in ("Dynamics", "Breadcrumbs"):
                page.get_by_role("link", name=name).click()
                expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
                expect(page.locator(CHART).first).to_be_visible()
                assert page.locator(EXCEPTION).count() == 0

            # A deep link pasted into a fresh page opens the same neuron
            fresh = browser.new_page(viewport={"width": 1400, "height": 1000})
            fresh.set_default_timeout(TIMEOUT_MS)
            fresh.goto(f"{server}/?trace=tiny&neuron=E_3/L_hidden_2/n_12")
            expect(fresh.get_by_role("heading", name="Neurons")).to_be_visible()
            expect(fresh.get_by_text("E_3/L_hidden_2/n_12").first).to_be_visible()
            assert fresh.locator(EXCEPTION).count() == 0
        finally:
            browser.close()
