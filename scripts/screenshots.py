"""Screenshots of every page of the app on its demo, for the README's tour.

    .venv/bin/python scripts/screenshots.py               # docs/img/<page>.jpg, ~1-3 minutes
    .venv/bin/python scripts/screenshots.py --out /tmp/shots --width 1200 --quality 80

Starts the real app (``streamlit run streamlit_app.py``, the way ``tests/e2e/e2e_server.py``
starts it) on a free 127.0.0.1 port with an empty runs folder, so the app trains its demo
exactly as on a newcomer's first visit; then visits, in headless Chromium, every page of the
app's navigation (the ``ui.page("pages/….py", …)`` entries of ``streamlit_app.py``, and any
other page the sidebar's navigation links to), waits until the page's script has finished and
its charts are drawn, and saves the first screen of each page as a small JPEG (1000 px wide by
default). The README's tour shows these files; re-run this after changing a page.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ENTRYPOINT = ROOT / "streamlit_app.py"
OUT = ROOT / "docs" / "img"
#: The browser window (CSS pixels): wide enough for the app's wide layout.
VIEWPORT = {"width": 1400, "height": 1300}
#: The script run over, no spinner left, and (when the page has charts) one of them drawn.
SETTLED = """(needChart) => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    if (document.querySelector('[data-testid="stSpinner"]')) return false;
    if (!document.querySelector('[data-testid="stMain"] h1, [data-testid="stMain"] h2'))
        return false;
    if (!needChart) return true;
    const charts = [...document.querySelectorAll(
        '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg')];
    return charts.some(el => el.getBoundingClientRect().height > 0);
}"""
#: How long a page may take to draw its first chart before it is shot without one.
CHART_SECONDS = 120.0
#: The sidebar's links to the app's pages.
NAV_LINKS = '[data-testid="stSidebarNav"] a'


@dataclass(frozen=True)
class Page:
    """One page of the app: its title, its URL path ("" for the default page) and the name
    of its screenshot in ``docs/img/``."""

    title: str
    url_path: str
    image: str


def _string(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def app_pages(entrypoint: Path = ENTRYPOINT) -> list[Page]:
    """The pages of the app's navigation, in order, read from the entrypoint's source: every
    call ``….page("pages/<name>.py", "<Title>", …)``; the one with ``default=True`` has the
    URL path ""."""
    pages = []
    for node in ast.walk(ast.parse(entrypoint.read_text(), filename=str(entrypoint))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "page" or len(node.args) < 2:
            continue
        script, title = _string(node.args[0]), _string(node.args[1])
        if script is None or title is None or not script.startswith("pages/"):
            continue
        default = any(
            k.arg == "default" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in node.keywords
        )
        stem = Path(script).stem
        pages.append((node.lineno, Page(title, "" if default else stem, f"{stem}.jpg")))
    return [page for _, page in sorted(pages, key=lambda item: item[0])]


def _settle(tab: object, timeout_s: float) -> bool:
    """Wait until the page is drawn (:data:`SETTLED`: with a chart if one is drawn within
    ``timeout_s``, else without), then a moment for the charts that follow the first;
    False if it never settled."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    def settled(need_chart: bool, seconds: float = timeout_s) -> bool:
        try:
            tab.wait_for_function(  # type: ignore[attr-defined]
                SETTLED, arg=need_chart, polling=250, timeout=seconds * 1000
            )
        except PlaywrightTimeout:
            return False
        return True

    if not (settled(True, min(timeout_s, CHART_SECONDS)) or settled(False)):
        return False
    time.sleep(2.0)  # Vega draws the charts that follow the first one
    return settled(False)


def _nav_pages(tab: object, known: list[Page]) -> list[Page]:
    """Pages the sidebar links to that ``known`` lacks (a page added another way)."""
    paths = {page.url_path for page in known}
    extra = []
    for link in tab.locator(NAV_LINKS).all():  # type: ignore[attr-defined]
        href = (link.get_attribute("href") or "").split("?")[0].rstrip("/")
        path = href.rsplit("/", 1)[-1] if "/" in href else href
        if path.startswith(("http", "127.")) or ":" in path:
            path = ""
        if path not in paths:
            paths.add(path)
            extra.append(Page(link.inner_text().strip() or path, path, f"{path}.jpg"))
    return extra


def take(out: Path, width: int, quality: int, timeout_s: float) -> list[tuple[Page, Path, bool]]:
    """Start the app on its demo, visit every page, write one JPEG per page into ``out``."""
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from e2e_server import BROWSER_ARGS, CHROMIUM, start_server
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        raise SystemExit("Chromium is not installed (apt-get install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    pages = app_pages()
    shots = []
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        server = start_server(Path(folder))  # an empty runs folder: the app trains its demo
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            context = browser.new_context(
                viewport=VIEWPORT, device_scale_factor=width / VIEWPORT["width"]
            )
            tab = context.new_page()
            index = 0
            while index < len(pages):
                page = pages[index]
                started = time.perf_counter()
                tab.goto(f"{server.url}/{page.url_path}")
                settled = _settle(tab, timeout_s)
                if index == 0:
                    pages += _nav_pages(tab, pages)
                path = out / page.image
                tab.screenshot(path=str(path), type="jpeg", quality=quality)
                seconds = time.perf_counter() - started
                print(
                    f"{page.title:<12} {path.stat().st_size / 1024:6.0f} KiB  {seconds:5.1f} s"
                    f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
                    + ("" if settled else "  (did not settle: shot as it was)")
                )
                shots.append((page, path, settled))
                index += 1
        finally:
            browser.close()
            server.stop()
        if "Traceback" in server.log():
            print(server.log()[-3000:], file=sys.stderr)
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the JPEGs (docs/img)")
    parser.add_argument("--width", type=int, default=1000, help="image width in pixels")
    parser.add_argument("--quality", type=int, default=70, help="JPEG quality, 1-100")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait per page")
    args = parser.parse_args(argv)
    shots = take(args.out, args.width, args.quality, args.timeout)
    total = sum(path.stat().st_size for _, path, _ in shots)
    print(f"{len(shots)} pages, {total / 1024:.0f} KiB in all")
    return 0 if all(settled for *_, settled in shots) else 1


if __name__ == "__main__":
    raise SystemExit(main())
