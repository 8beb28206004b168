"""The app in a real browser: ``streamlit run`` on a free loopback port, Debian's Chromium
driven by Playwright (never ``playwright install``), every page visited, a trace uploaded."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from e2e_server import EXCEPTION, TIMEOUT_MS, Server

from nn_tracing import load_trace
from nn_tracing.ui.state import CLUSTERS_MAP_CHART, OVERVIEW_SCAN_CHART
from nn_tracing.views.neurons import first_neuron

pytestmark = pytest.mark.e2e

CHART = '[data-testid="stVegaLiteChart"]'
# Streamlit gives a keyed element's container the class st-key-<key>, other characters as "-"
SCAN = ".st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", OVERVIEW_SCAN_CHART) + " " + CHART
#: the Clusters map (its key ends in the trace's key, so match the prefix)
MAP = '[class*="st-key-' + re.sub(r"[^a-zA-Z0-9_-]", "-", CLUSTERS_MAP_CHART) + '"] ' + CHART


def test_every_page_and_an_upload_in_a_real_browser(
    server: Server, browser, tmp_path: Path, tiny_trace_file: Path
) -> None:
    url = server.url
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    _overview_and_a_click_on_the_brain_scan(page, url)
    _neurons_and_two_uploads(page, url, tmp_path, tiny_trace_file)
    _clusters_dynamics_and_breadcrumbs(page, url)
    _deep_link_in_a_fresh_page(browser, url)


def _overview_and_a_click_on_the_brain_scan(page, url: str) -> None:
    from playwright.sync_api import expect

    # Overview: summary, curves, brain scan, health
    page.goto(url)
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
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator(SCAN)).to_be_visible()


def _neurons_and_two_uploads(page, url: str, tmp_path: Path, tiny_trace_file: Path) -> None:
    from playwright.sync_api import expect

    # Neurons, through the sidebar navigation
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Neurons").click()
    expect(page.get_by_role("heading", name="Neurons")).to_be_visible()
    expect(page.locator(CHART).first).to_be_visible()
    # without a choice, the page opens on the liveliest first-layer neuron (its own test:
    # tests/app/test_neurons_first.py) and puts it in the address
    trace = load_trace(tiny_trace_file)
    opened = trace.signature(trace.epochs[-1], first_neuron(trace)[0])
    expect(page).to_have_url(f"{url}/neurons?trace=tiny&neuron={opened.replace('/', '%2F')}")
    assert page.locator(EXCEPTION).count() == 0

    # A malformed upload: a specific error, and the app goes on
    bad = tmp_path / "bad.nntrace"
    bad.write_bytes(b"definitely not a trace")
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


def _clusters_dynamics_and_breadcrumbs(page, url: str) -> None:
    from playwright.sync_api import expect

    # Clusters: the verdict against chance, the map, a click lists and shares a neuron
    page.goto(f"{url}/clusters?trace=tiny&perms=19")
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
        page.locator('[data-testid="stSidebar"]').get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
        expect(page.locator(CHART).first).to_be_visible()
        assert page.locator(EXCEPTION).count() == 0


def _deep_link_in_a_fresh_page(browser, url: str) -> None:
    from playwright.sync_api import expect

    # A deep link pasted into a fresh page opens the same neuron
    fresh = browser.new_page(viewport={"width": 1400, "height": 1000})
    fresh.set_default_timeout(TIMEOUT_MS)
    fresh.goto(f"{url}/?trace=tiny&neuron=E_3/L_hidden_2/n_12")
    expect(fresh.get_by_role("heading", name="Neurons")).to_be_visible()
    expect(fresh.get_by_text("E_3/L_hidden_2/n_12").first).to_be_visible()
    assert fresh.locator(EXCEPTION).count() == 0
