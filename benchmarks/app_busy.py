"""Is the app responsive while runs train? Page times with six sessions browsing, idle vs busy.

Starts the real app (``streamlit run streamlit_app.py`` on a free loopback port, its own runs
folder holding one trace to browse), opens six browser sessions in Debian's headless Chromium
(six contexts: six Streamlit sessions) and has them visit pages round-robin, all at once. Each
visit is timed from navigation until the page is drawn: its heading and first chart
visible. Then two training runs are started in their own processes exactly as the sidebar starts
them (``python -m nn_tracing train … --out runs/<name>/``), and the same visits are timed
again while both train.

    .venv/bin/python benchmarks/app_busy.py                 # prints a table of medians
    .venv/bin/python benchmarks/app_busy.py --rounds 4 --sessions 6 --width 256

Reported: per page, the median visit time idle and busy, and their ratio; and how many epochs
the two runs recorded meanwhile (they must keep training, not starve).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

PAGES = {
    "Overview": "",
    "Neurons": "neurons",
    "Dynamics": "dynamics",
    "Breadcrumbs": "breadcrumbs",
}
CHART = '[data-testid="stVegaLiteChart"]'


def build_trace(path: Path, width: int) -> None:
    """A trace to browse: a 3-layer MLP of ``width`` neurons, 30 recorded epochs."""
    import nn_tracing as nt

    config = nt.TrainConfig(
        dataset="classification",
        hidden_sizes=(width,) * 3,
        epochs=30,
        batch_size=256,
        n_samples=4000,
        probe_size=512,
        seed=0,
    )
    run = nt.train(config)
    assert run.trace is not None
    nt.save_trace(run.trace, path)


def start_training(runs: Path, name: str, width: int) -> subprocess.Popen:
    """A long run in its own process, started exactly as the sidebar starts one
    (:func:`nn_tracing.run_process.spawn_training`: ``python -m nn_tracing train --out
    runs/<name>/ --threads 1``)."""
    import nn_tracing as nt
    from nn_tracing.run_process import spawn_training

    config = nt.TrainConfig(
        dataset="classification",
        hidden_sizes=(width, width),
        epochs=100_000,
        n_samples=8000,
        seed=0,
    )
    run_dir = runs / name
    run_dir.mkdir()
    return spawn_training(config, run_dir)


def recorded(run_dir: Path) -> int:
    try:
        return len(json.loads((run_dir / "manifest.json").read_text())["epochs"])
    except (OSError, ValueError, KeyError):
        return 0


async def visit(page, url: str, name: str) -> float:
    """Seconds from navigation until the page's heading and first chart show."""
    started = time.perf_counter()
    await page.goto(f"{url}/{PAGES[name]}?trace=browse", wait_until="domcontentloaded")
    await page.get_by_role("heading", name=name, exact=True).wait_for(state="visible")
    await page.locator(CHART).first.wait_for(state="visible")
    return time.perf_counter() - started


async def session(browser, url: str, index: int, rounds: int) -> list[tuple[str, float]]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(300_000)
    names = list(PAGES)
    times = []
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(k + index + r) % len(names)]
            times.append((name, await visit(page, url, name)))
    await context.close()
    return times


async def browse(url: str, sessions: int, rounds: int) -> dict[str, list[float]]:
    from e2e_server import BROWSER_ARGS, CHROMIUM
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            results = await asyncio.gather(
                *(session(browser, url, i, rounds) for i in range(sessions))
            )
        finally:
            await browser.close()
    by_page: dict[str, list[float]] = {name: [] for name in PAGES}
    for times in results:
        for name, seconds in times:
            by_page[name].append(seconds)
    return by_page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--width", type=int, default=128, help="width of the browsed trace")
    parser.add_argument("--train-width", type=int, default=256, help="width of the two runs")
    args = parser.parse_args(argv)
    from e2e_server import CHROMIUM, start_server

    if CHROMIUM is None:
        print("Debian's chromium is needed (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        build_trace(base / "browse.nntrace", args.width)
        server = start_server(base, {"browse": base / "browse.nntrace"})
        runs: list[subprocess.Popen] = []
        try:
            print("warming the caches (one session, every page)…", file=sys.stderr)
            asyncio.run(browse(server.url, 1, 1))
            idle = asyncio.run(browse(server.url, args.sessions, args.rounds))
            runs = [start_training(server.runs, f"busy-{i}", args.train_width) for i in (1, 2)]
            while min(recorded(server.runs / f"busy-{i}") for i in (1, 2)) < 2:
                time.sleep(0.5)
            before = [recorded(server.runs / f"busy-{i}") for i in (1, 2)]
            started = time.perf_counter()
            busy = asyncio.run(browse(server.url, args.sessions, args.rounds))
            seconds = time.perf_counter() - started
            after = [recorded(server.runs / f"busy-{i}") for i in (1, 2)]
        finally:
            for run in runs:
                run.send_signal(signal.SIGINT)
            for run in runs:
                run.wait(timeout=120)
            server.stop()
    print(
        f"\n{args.sessions} sessions × {args.rounds} rounds × {len(PAGES)} pages; "
        f"os.cpu_count()={os.cpu_count()}, load {os.getloadavg()[0]:.2f}\n"
    )
    print("| page | idle median s | busy median s | busy / idle | busy max s |")
    print("|---|---|---|---|---|")
    for name in PAGES:
        a, b = statistics.median(idle[name]), statistics.median(busy[name])
        print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f}× | {max(busy[name]):.2f} |")
    everything_idle = statistics.median([t for v in idle.values() for t in v])
    everything_busy = statistics.median([t for v in busy.values() for t in v])
    print(
        f"| all pages | {everything_idle:.2f} | {everything_busy:.2f} | "
        f"{everything_busy / everything_idle:.2f}× | |"
    )
    gained = [b - a for a, b in zip(before, after, strict=True)]
    print(
        f"\nmeanwhile the two runs recorded {gained[0]} and {gained[1]} epochs in {seconds:.0f} s "
        "(each in its own process)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
