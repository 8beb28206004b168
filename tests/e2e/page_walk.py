"""Walk every page of the app in a real browser: wait until it has drawn, take a full-page
screenshot, and measure what overlaps (reusable: the layout test and the README's screenshot
script both walk the pages this way).

* :func:`settle` — wait until Streamlit has finished running the page and its charts are drawn.
* :func:`overlaps` — each chart whose drawn box (the Vega view, SVG or canvas) runs into another
  element of the page, and each chart wider than its own element (clipped).
* :func:`clipped_labels` — each legend label drawn outside its chart's box (cut off), read
  from the Vega view as drawn: the SVG's legend texts, or for a canvas every label painted on
  it (recorded by :data:`CANVAS_TEXTS`, installed by :func:`walk`); and each button or
  dropdown of the page (not the sidebar) whose label is cut short.
* :func:`gaps` — the empty pixels below each chart inside its element (a facet grid keeps its
  own size: an element taller than the grid leaves a gap).
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


#: Installed before a page loads: every text painted on a canvas, with its box in canvas
#: pixels (from the context's transform and the text's metrics), reset when the whole canvas
#: is cleared (Vega repaints from scratch).
CANVAS_TEXTS = """
(() => {
  const proto = CanvasRenderingContext2D.prototype;
  const fill = proto.fillText, clear = proto.clearRect;
  proto.clearRect = function (x, y, w, h) {
    if (x <= 0 && y <= 0 && w >= this.canvas.width && h >= this.canvas.height) {
      this.canvas.__texts = [];
    }
    return clear.apply(this, arguments);
  };
  proto.fillText = function (text, x, y) {
    try {
      const m = this.measureText(text), t = this.getTransform(), align = this.textAlign;
      const right = ['right', 'end'].includes(align);
      const shift = align === 'center' ? m.width / 2 : right ? m.width : 0;
      const map = (px, py) => [t.a * px + t.c * py + t.e, t.b * px + t.d * py + t.f];
      const [x0, y0] = map(x - shift, y - m.actualBoundingBoxAscent);
      const [x1, y1] = map(x - shift + m.width, y + m.actualBoundingBoxDescent);
      (this.canvas.__texts ||= []).push({text: String(text), x0: Math.min(x0, x1),
        x1: Math.max(x0, x1), y0: Math.min(y0, y1), y1: Math.max(y0, y1)});
    } catch (e) {}
    return fill.apply(this, arguments);
  };
})();
"""

_CLIPPED_JS = """
(slack) => {
  const found = [];
  const charts = document.querySelectorAll('[data-testid="stMain"] .vega-embed');
  for (const embed of charts) {
    const drawn = embed.querySelector(':scope > svg, :scope > canvas');
    if (!drawn) continue;
    const d = drawn.getBoundingClientRect();
    if (d.width < 2 || d.height < 2) continue;
    const own = embed.closest('[data-testid="stElementContainer"]');
    const name = (own.innerText || '').trim().replace(/\\s+/g, ' ').slice(0, 50);
    const out = (label, l, r, t, b) => found.push(
      `chart "${name}": label "${label}" drawn at x ${Math.round(l)}…${Math.round(r)}, ` +
      `y ${Math.round(t)}…${Math.round(b)} of a ` +
      `${Math.round(d.width)}×${Math.round(d.height)} box`);
    if (drawn.tagName.toLowerCase() === 'svg') {
      for (const text of drawn.querySelectorAll('.role-legend text')) {
        const r = text.getBoundingClientRect();
        if (r.width < 1) continue;
        if (r.left < d.left - slack || r.right > d.right + slack || r.top < d.top - slack
            || r.bottom > d.bottom + slack) {
          out(text.textContent, r.left - d.left, r.right - d.left, r.top - d.top, r.bottom - d.top);
        }
      }
    } else {  // a canvas: every label painted on it (legend or axis) must lie inside
      const s = drawn.width / d.width;
      for (const t of drawn.__texts || []) {
        if (t.x0 < -slack * s || t.x1 > drawn.width + slack * s || t.y0 < -slack * s
            || t.y1 > drawn.height + slack * s) {
          out(t.text, t.x0 / s, t.x1 / s, t.y0 / s, t.y1 / s);
        }
      }
    }
  }
  return found;
}
"""

_GAPS_JS = """
() => [...document.querySelectorAll('[data-testid="stMain"] .vega-embed')].flatMap(embed => {
  const drawn = embed.querySelector(':scope > svg, :scope > canvas');
  if (!drawn) return [];
  const d = drawn.getBoundingClientRect();
  if (d.height < 2) return [];
  const own = embed.closest('[data-testid="stElementContainer"]').getBoundingClientRect();
  return [Math.round(own.bottom - d.bottom)];
})
"""


_CUT_LABELS_JS = """
() => [...document.querySelectorAll(
    '[data-testid="stMain"] button, [data-testid="stMain"] [data-testid="stSelectbox"] input'
  )].flatMap(el => {
  if (el.getBoundingClientRect().width < 1) return [];
  // the element that cuts the label (overflow hidden, an ellipsis) is somewhere inside
  const cut = [el, ...el.querySelectorAll('*')].find(
    e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1);
  if (!cut) return [];
  const what = el.tagName === 'INPUT'
    ? `select "${el.getAttribute('aria-label')}" showing "${el.value}"`
    : `button "${el.innerText.trim()}"`;
  return [`${what}: its label needs ${cut.scrollWidth} px, ` +
          `has ${cut.clientWidth}`];
})
"""


def clipped_labels(page, slack: int = 4) -> list[str]:
    """Legend labels (every label, on a canvas) drawn outside their chart's box, and button
    labels cut short (an ellipsis): cut off."""
    return [*page.evaluate(_CLIPPED_JS, slack), *page.evaluate(_CUT_LABELS_JS)]


def gaps(page) -> list[int]:
    """Pixels left empty below each drawn chart inside its element, in page order."""
    return [int(g) for g in page.evaluate(_GAPS_JS)]


@dataclass
class PageShot:
    """One page (or tab) as drawn: its screenshot, what overlaps, exception boxes."""

    name: str
    screenshot: Path
    overlaps: list[str] = field(default_factory=list)
    exceptions: int = 0
    charts: int = 0
    clipped: list[str] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)


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
    cut, below = clipped_labels(page), gaps(page)
    full_page_screenshot(page, path)
    return PageShot(
        name,
        path,
        found,
        page.locator(EXCEPTION).count(),
        page.locator('[data-testid="stMain"] .vega-embed').count(),
        cut,
        below,
    )


def walk(page, url: str, trace: str, directory: Path, *, tabs: bool = True) -> list[PageShot]:
    """Every page of ``trace`` (and each tab of a page with tabs): screenshots under
    ``directory`` named ``<trace>-<page>[-<tab>].png``, with what overlaps on each."""
    directory.mkdir(parents=True, exist_ok=True)
    page.add_init_script(CANVAS_TEXTS)  # (before the first page loads)
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
