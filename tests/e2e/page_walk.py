"""Walk every page of the app in a real browser: wait until it has drawn, take a full-page
screenshot, and measure what overlaps (reusable: the layout test and the README's screenshot
script both walk the pages this way).

* :func:`settle` — wait until Streamlit has finished running the page and its charts are drawn.
* :func:`overlaps` — each chart whose drawn box (the Vega view, SVG or canvas) runs into another
  element of the page, and each chart wider than its own element (clipped).
* :func:`walk` — every page (and every tab of a page) of one trace: a screenshot each, and the
  overlaps and exception boxes found.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

#: The pages and their paths in the app's navigation.
PAGES: dict[str, str] = {
    "overview": "",
    "neurons": "neurons",
    "clusters": "clusters",
    "dynamics": "dynamics",
    "breadcrumbs": "breadcrumbs",
}
EXCEPTION = '[data-testid="stException"]'
_RUNNING = '[data-testid="stStatusWidget"]'
_SPINNERS = '[data-testid="stSpinner"], [data-testid="stProgress"]'

#: For each drawn chart (its SVG or canvas), the other elements of the page its box enters by
#: more than ``slack`` pixels each way; and the charts drawn wider than their element.
_OVERLAP_JS = """
(slack) => {
  const box = (e) => e.getBoundingClientRect();
  const sized = (r) => r.width > 1 && r.height > 1;
  // folded expanders and other tabs keep their elements laid out but not drawn
  const shown = (e) => sized(box(e)) && e.checkVisibility({
    visibilityProperty: true, opacityProperty: true, contentVisibilityAuto: true});
  const describe = (e) => {
    const test = e.getAttribute('data-testid') || e.tagName.toLowerCase();
    const text = (e.innerText || '').trim().replace(/\\s+/g, ' ').slice(0, 60);
    return `${test} "${text}"`;
  };
  const elements = [...document.querySelectorAll(
    '[data-testid="stMain"] [data-testid="stElementContainer"]')].filter(shown);
  const found = [];
  for (const embed of document.querySelectorAll('[data-testid="stMain"] .vega-embed')) {
    const drawn = embed.querySelector(':scope > svg, :scope > canvas');
    if (!drawn) continue;
    const d = box(drawn);
    if (!shown(drawn)) continue;
    const own = embed.closest('[data-testid="stElementContainer"]');
    const title = describe(own);
    const o = box(own);
    if (d.right > o.right + slack) {
      found.push(`${title}: drawn ${Math.round(d.width)} px wide in ${Math.round(o.width)} px`);
    }
    for (const other of elements) {
      if (other === own || other.contains(own) || own.contains(other)) continue;
      const r = box(other);
      const w = Math.min(d.right, r.right) - Math.max(d.left, r.left);
      const h = Math.min(d.bottom, r.bottom) - Math.max(d.top, r.top);
      if (w > slack && h > slack) {
        found.push(`${title} overlaps ${describe(other)} by ${Math.round(w)}×${Math.round(h)}`);
      }
    }
  }
  return found;
}
"""


@dataclass
class PageShot:
    """One page (or tab) as drawn: its screenshot, what overlaps, exception boxes."""

    name: str
    screenshot: Path
    overlaps: list[str] = field(default_factory=list)
    exceptions: int = 0
    charts: int = 0


def settle(page, *, timeout: float = 180.0, quiet: float = 1.5) -> None:
    """Wait until no script runs and no spinner or progress bar shows for ``quiet`` seconds
    (Streamlit's status widget and fragments), then for the charts' Vega views."""
    deadline = time.monotonic() + timeout
    calm_since = None
    while time.monotonic() < deadline:
        busy = page.locator(_RUNNING).count() > 0 or page.locator(_SPINNERS).count() > 0
        if busy:
            calm_since = None
        elif calm_since is None:
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            break
        page.wait_for_timeout(250)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.vega-embed')].every("
        "e => e.querySelector('svg, canvas'))",
        timeout=30_000,
    )


def overlaps(page, slack: int = 3) -> list[str]:
    """What runs into what on the page as drawn (empty: nothing)."""
    return list(page.evaluate(_OVERLAP_JS, slack))


#: The height of the page's content (Streamlit scrolls its main block, not the document).
_CONTENT_HEIGHT_JS = """
() => Math.max(...[...document.querySelectorAll(
  '[data-testid="stMain"], [data-testid="stMainBlockContainer"], [data-testid="stSidebar"]'
)].map(e => e.scrollHeight), document.documentElement.scrollHeight)
"""


def full_page_screenshot(page, path: Path, *, max_height: int = 16_000) -> None:
    """A screenshot of the whole page: the viewport grown to the content's height (Streamlit
    scrolls an inner block, which a plain full-page screenshot cuts at the viewport), then
    set back."""
    viewport = page.viewport_size or {"width": 1400, "height": 1000}
    height = min(int(page.evaluate(_CONTENT_HEIGHT_JS)) + 40, max_height)
    if height > viewport["height"]:
        page.set_viewport_size({"width": viewport["width"], "height": height})
        page.wait_for_timeout(600)  # the charts re-measure their width
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(viewport)


def shoot(page, name: str, directory: Path) -> PageShot:
    path = directory / f"{name}.png"
    found = overlaps(page)
    full_page_screenshot(page, path)
    return PageShot(
        name,
        path,
        found,
        page.locator(EXCEPTION).count(),
        page.locator('[data-testid="stMain"] .vega-embed').count(),
    )


def walk(page, url: str, trace: str, directory: Path, *, tabs: bool = True) -> list[PageShot]:
    """Every page of ``trace`` (and each tab of a page with tabs): screenshots under
    ``directory`` named ``<trace>-<page>[-<tab>].png``, with what overlaps on each."""
    directory.mkdir(parents=True, exist_ok=True)
    shots = []
    for name, path in PAGES.items():
        page.goto(f"{url}/{path}?trace={quote(trace)}")
        settle(page)
        shots.append(shoot(page, f"{trace}-{name}", directory))
        if not tabs:
            continue
        tab_buttons = page.locator('[data-testid="stMain"] [data-testid="stTab"]')
        for i in range(1, tab_buttons.count()):
            tab_buttons.nth(i).click()
            settle(page)
            shots.append(shoot(page, f"{trace}-{name}-tab{i + 1}", directory))
    return shots
