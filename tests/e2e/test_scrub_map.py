"""The map through time that scrubs in the browser (nn_tracing/viz/through_time.py): dragging
its epoch slider moves the neurons in a real Chromium without a rerun of the page."""

from __future__ import annotations

import pytest
from e2e_server import EXCEPTION, TIMEOUT_MS, Server

pytestmark = pytest.mark.e2e

CHART = '[data-testid="stVegaLiteChart"]'


def _positions(chart) -> list[str]:
    """The drawn points' ``transform``s (one per neuron at the slider's epoch)."""
    return chart.locator("g.mark-symbol.role-mark path").evaluate_all(
        "paths => paths.map(p => p.getAttribute('transform'))"
    )


def test_the_slider_moves_the_neurons_in_the_browser(server: Server, browser) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server.url}/clusters?trace=tiny&perms=5&features=activations&time_map=pca")
    expect(page.get_by_text("How faithful this joint PCA is:")).to_be_visible()
    scrub = page.locator(CHART).filter(has=page.locator("input[type=range]"))
    slider = scrub.locator("input[type=range]")
    expect(slider).to_be_visible()
    expect(scrub.locator("g.mark-symbol.role-mark path").first).to_be_attached()
    at_last = _positions(scrub)
    address = page.url
    slider.evaluate(
        "s => { s.value = s.min; s.dispatchEvent(new Event('input', {bubbles: true})); }"
    )
    page.wait_for_function(
        "([sel, before]) => { const c = [...document.querySelectorAll(sel)].find("
        "  e => e.querySelector('input[type=range]'));"
        "  const now = [...c.querySelectorAll('g.mark-symbol.role-mark path')]"
        "    .map(p => p.getAttribute('transform'));"
        "  return now.join('|') !== before.join('|'); }",
        arg=[CHART, at_last],
        timeout=2000,  # in the browser: no round trip to the server
    )
    assert _positions(scrub)  # the neurons, elsewhere
    assert page.url == address  # no rerun wrote the address bar
    assert page.locator(EXCEPTION).count() == 0
