"""A trace bigger than a page should load: 100k neurons × 101 recorded epochs, in the app.

Writes a synthetic run directory through the writer (:func:`nn_tracing.synthetic.
write_synthetic_run`, no training: 1000 inputs, hidden layers of 50 000 and 40 000 neurons,
8 990 more and 10 outputs, E_0 … E_100), then measures

* in this process: writing one epoch, opening the run directory, the Overview's queries (the
  layer × epoch quartiles, one epoch's brain scan) and a neuron's profile (its metrics over
  training against its layer: the layer's bands once per layer, then per neuron);
* server side, with Streamlit's AppTest (the app's script in this process, no browser): the
  same pages, caches cold;
* in a real server (``streamlit run``, :mod:`tests.e2e.e2e_server`, its background UMAP
  compilation off) driven by headless Chromium: the Overview's first paint (navigation to
  the first chart drawn, and to the whole page drawn, neuron health included) with the
  server's caches cold (the run's digest changed before each try); a neuron opened by its
  link on the Neurons page (its profile — the metrics over training — drawn, then the whole
  page: the script's run over); :data:`PICKS` other neurons picked in turn in the open page
  (a rerun each, no reload; each timed to its own chart drawn); and the server process's
  peak RSS (``VmHWM``). Each wait polls the page at every animation
  frame (:data:`SHOWN`), not at Playwright's ``expect`` intervals (500 ms after the first
  tries), which rounded earlier figures up by as much.

    .venv/bin/python benchmarks/big_trace.py                 # medians, ~3 minutes
    .venv/bin/python benchmarks/big_trace.py --neurons 20000 --epochs 51 --repeats 3
    .venv/bin/python benchmarks/big_trace.py --no-browser    # the library's figures only

Goals (issue 14): Overview first paint ≤ 3 s, a neuron's profile ≤ 1 s, server RSS ≤ 2 GiB.
The machine's load is printed with the figures: on a shared machine they are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def layer_sizes(neurons: int) -> list[int]:
    """Inputs, two wide hidden layers, a third and 10 outputs: ``neurons`` in all."""
    inputs = max(neurons // 100, 2)
    first, second = neurons // 2, (neurons * 2) // 5
    third = neurons - inputs - first - second - 10
    return [inputs, first, second, max(third, 1), 10]


def timed(function: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def library_figures(run: Path, repeats: int) -> dict[str, list[float]]:
    """Open, the Overview's queries and a neuron's profile, in this process."""
    import nn_tracing as nt
    from nn_tracing.analysis.profiles import layer_bands, metric_history
    from nn_tracing.viz import brain_scan_frame, layer_epoch_frame

    figures: dict[str, list[float]] = {}
    figures["open"] = timed(lambda: nt.load_trace(run), repeats)
    trace = nt.load_trace(run)
    last = trace.epochs[-1]
    metrics = ["act_mean", "w_norm", "grad_norm", "act_active", "act_max"][:repeats]
    figures["overview: layer × epoch quartiles"] = [
        timed(lambda m=m: layer_epoch_frame(trace, m), 1)[0] for m in metrics
    ]
    epochs = [last - 7 * i for i in range(repeats)]
    figures["overview: brain scan of one epoch"] = [
        timed(lambda e=e: brain_scan_frame(trace, e, "act_mean"), 1)[0] for e in epochs
    ]
    info = trace.layers[1]
    bands: list[object] = []
    figures["profile: layer bands (once per layer)"] = timed(
        lambda: bands.append(layer_bands(trace, info.name)), 1
    )
    neurons = [info.first_id + 997 * (i + 1) for i in range(repeats)]
    figures["profile: one neuron (bands cached)"] = [
        timed(lambda n=n: metric_history(trace, n, bands[0]), 1)[0]  # type: ignore[arg-type]
        for n in neurons
    ]
    figures["profile: its rows (Its data tab)"] = [
        timed(lambda n=n: trace.neuron_history(n), 1)[0] for n in neurons
    ]
    figures.update(health_figures(trace, info.name, neurons))
    return figures


def health_figures(trace: object, layer: str, neurons: list[int]) -> dict[str, list[float]]:
    """Neuron health: every neuron's (the Overview's, once) against one neuron's flags (the
    Neurons page's health line: its layer's medians once per layer, then per neuron)."""
    from nn_tracing.analysis.health import neuron_health
    from nn_tracing.analysis.health_neuron import layer_references, neuron_flags

    figures = {"health: every neuron at every epoch": timed(lambda: neuron_health(trace), 1)}
    references: list[object] = []
    figures["health: a layer's medians (once per layer)"] = timed(
        lambda: references.append(layer_references(trace, layer)), 1
    )
    figures["health: one neuron's flags (medians cached)"] = [
        timed(lambda n=n: neuron_flags(trace, n, references=references[0]), 1)[0] for n in neurons
    ]
    return figures


def apptest_figures(directory: Path, run: Path, repeats: int) -> dict[str, list[float]]:
    """The same pages as :func:`browser_figures`, server side only: Streamlit's AppTest runs
    the app's script in this process (no browser, no network): what the server spends."""
    os.environ["NN_TRACING_RUNS_DIR"] = str(directory / "runs")
    os.environ["NN_TRACING_UPLOAD_DIR"] = str(directory / "uploads")
    sys.path.insert(0, str(ROOT / "tests" / "app"))
    from apptest_support import new_app

    import nn_tracing as nt

    info = nt.load_trace(run).layers[1]

    def script(query: dict[str, str]) -> float:
        at = new_app()
        for key, value in query.items():
            at.query_params[key] = value
        started = time.perf_counter()
        at.run(timeout=600)
        if at.exception:
            raise RuntimeError(f"the app raised: {[e.value for e in at.exception]}")
        return time.perf_counter() - started

    script({"trace": "small"})  # imports
    figures: dict[str, list[float]] = {"overview": [], "neuron, first of its layer": []}
    figures["neuron, layer seen"] = []
    for k in range(repeats):
        # a new digest (the trace is read again, every cache of the page is cold)
        for touched in (run / "manifest.json", run / "history" / "epoch=0" / "part.parquet"):
            os.utime(touched)
        figures["overview"].append(script({"trace": "big"}))
        for i, label in enumerate(("neuron, first of its layer", "neuron, layer seen")):
            neuron = info.first_id + 1013 * (2 * k + i + 1)
            signature = f"E_100/L_{info.name}/n_{neuron}"
            figures[label].append(script({"trace": "big", "neuron": signature}))
    return figures


def peak_rss(pid: int) -> tuple[float, float]:
    """Peak and current resident memory of process ``pid`` in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {
        k: float(re.search(rf"{k}:\s+(\d+)", status).group(1)) / 1024 for k in ("VmHWM", "VmRSS")
    }  # type: ignore[union-attr]
    return values["VmHWM"], values["VmRSS"]


def browser_figures(directory: Path, run: Path, repeats: int) -> dict[str, list[float]]:
    """The Overview's first paint, a neuron's profile and the server's peak RSS, in a real
    server driven by headless Chromium: a fresh server per repeat (so that every cache is
    cold and the peak RSS is one session's), warmed up on a tiny run first."""
    from e2e_server import CHROMIUM
    from playwright.sync_api import sync_playwright

    import nn_tracing as nt

    if CHROMIUM is None:
        raise SystemExit("Chromium is not installed: run with --no-browser")
    trace = nt.load_trace(run)
    info, last = trace.layers[1], trace.epochs[-1]
    figures: dict[str, list[float]] = {}
    with sync_playwright() as playwright:
        for k in range(repeats):
            for name, values in one_server(playwright, directory, info, last, k).items():
                figures.setdefault(name, []).extend(values)
    return figures


#: Polled at every animation frame in the page (Playwright's ``expect`` polls every 500 ms
#: after its first tries, which rounds a page's time up by as much): an element matching
#: ``css`` laid out more than 20 px wide and high (not the empty one-pixel chart of
#: :func:`nn_tracing.ui.charts.load_charting`) and not marked as drawn before (:data:`MARK`),
#: text matching ``text`` (a regular expression) in the page, and — with ``idle`` — the app's
#: script run finished. The text is the page's ``textContent``, not its ``innerText``: reading
#: ``innerText`` lays the whole page out, and doing so at every frame slowed the very drawing
#: it timed (0.2 s of a picked neuron's 1 s, measured in docs/performance.md).
SHOWN = """({css, text, idle}) => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (idle && (!app || app.getAttribute('data-test-script-state') !== 'notRunning'))
        return false;
    if (css && ![...document.querySelectorAll(css)].some(el => {
        if (el.dataset.nnDrawnBefore) return false;  // a chart of the page before the action
        const box = el.getBoundingClientRect();
        return box.width > 20 && box.height > 20;  // not the 1-pixel chart of load_charting
    })) return false;
    return !text || new RegExp(text).test(document.body.textContent);
}"""
#: Marks every chart the page shows, so that :data:`SHOWN` waits for a new one: after a pick,
#: the neuron's chart drawn, not the previous neuron's still on the page.
MARK = """(css) => document.querySelectorAll(css).forEach(el => {
    el.dataset.nnDrawnBefore = '1';
})"""
#: A Vega chart drawn (its canvas or SVG laid out).
DRAWN_CHART = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
#: Neurons picked in the open page per server (a rerun each: its own figure).
PICKS = 3


def shown(page: object, css: str | None = None, text: str | None = None, idle: bool = False):
    """A check for :func:`one_server`'s visits: wait until the page shows ``css`` / ``text``."""
    page.wait_for_function(  # type: ignore[attr-defined]
        SHOWN, arg={"css": css, "text": text, "idle": idle}, polling="raf", timeout=300_000
    )


def one_server(
    playwright: object, directory: Path, info: object, last: int, k: int
) -> dict[str, list[float]]:
    """One fresh server: the tiny run's Overview and a neuron (the app's floor), then the big
    run's Overview (first chart, whole page), two neurons of one layer opened by their link
    (the first computes the layer's bands; each: its profile chart drawn, then the whole page)
    and a third picked in the open page (a rerun: its profile drawn), and the server's peak
    RSS."""
    from e2e_server import BROWSER_ARGS, CHROMIUM, start_server

    health = "Flagged at E_|No neuron is flagged|Sokar et al"  # the last: dormancy caption
    figures: dict[str, list[float]] = {}
    # without the server's background UMAP compilation (NN_TRACING_UMAP_WARMUP=0): it takes
    # a core for the first minute of every fresh server, which pages of no chart of UMAP wait on
    server = start_server(directory, env={"NN_TRACING_UMAP_WARMUP": "0"})
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)  # type: ignore[attr-defined]

    def timed_checks(name: str, page: object, started: float, done: dict[str, Callable]) -> None:
        for label, check in done.items():
            check(page)
            figures.setdefault(f"{name} ({label})" if label else name, []).append(
                time.perf_counter() - started
            )

    def visit(name: str, path: str, done: dict[str, Callable], keep: bool = False) -> object:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.perf_counter()
        page.goto(f"{server.url}/{path}")
        timed_checks(name, page, started, done)
        if not keep:
            page.close()
        return page

    def profile(n: int) -> dict[str, Callable]:
        return {
            "profile chart drawn": lambda p: shown(p, DRAWN_CHART, rf"Blue: n_{n}\."),
            "whole page drawn": lambda p: shown(p, DRAWN_CHART, "Health at E_", idle=True),
        }

    try:
        # warm-up: the server imports its modules on the first page it draws
        visit("warm-up", "?trace=small", {"": lambda p: shown(p, text=health, idle=True)})
        visit("tiny run: overview", "?trace=small", {"": lambda p: shown(p, text=health)})
        visit("tiny run: neuron", "?trace=small&neuron=E_2/L_hidden_1/n_7", profile(7))
        visit(
            "overview",
            "?trace=big",
            {
                "first chart": lambda p: shown(p, DRAWN_CHART),
                "whole page": lambda p: shown(p, text=health, idle=True),
            },
        )
        page = None
        for i, label in enumerate(("neuron, first of its layer", "neuron, layer seen")):
            neuron = info.first_id + 1009 * (2 * k + i + 1)  # type: ignore[attr-defined]
            signature = f"E_{last}/L_{info.name}/n_{neuron}"  # type: ignore[attr-defined]
            page = visit(label, f"?trace=big&neuron={signature}", profile(neuron), keep=i == 1)
        # other neurons of the layer, picked in the open page: the script reruns, no reload;
        # each timed to its own chart drawn (the previous neuron's charts marked)
        for picked in range(neuron + 3, neuron + 3 + PICKS):
            picker = page.locator('[data-testid="stMain"] [data-testid="stSelectbox"] input').first  # type: ignore[attr-defined]
            picker.click()
            page.keyboard.type(f"E_{last}/L_{info.name}/n_{picked}")  # type: ignore[attr-defined]
            page.evaluate(MARK, DRAWN_CHART)  # type: ignore[attr-defined]
            started = time.perf_counter()
            page.keyboard.press("Enter")  # type: ignore[attr-defined]
            timed_checks("neuron picked in the open page", page, started, profile(picked))
        page.close()  # type: ignore[attr-defined]
        figures["server peak RSS MiB"] = [peak_rss(server.process.pid)[0]]
    finally:
        browser.close()
        server.stop()
    if "Traceback" in server.log():
        print(server.log()[-3000:], file=sys.stderr)
    figures.pop("warm-up", None)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=101, help="recorded epochs, E_0 included")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="keep the run here (default: temp)")
    args = parser.parse_args(argv)

    from nn_tracing.synthetic import write_synthetic_run

    with tempfile.TemporaryDirectory(prefix="nnt-big-") as tmp:
        directory = args.dir or Path(tmp)
        runs = directory / "runs"
        run = runs / "big"
        sizes = layer_sizes(args.neurons)
        if not (run / "manifest.json").exists():
            started = time.perf_counter()
            write_synthetic_run(run, sizes, args.epochs)
            written = time.perf_counter() - started
            write_synthetic_run(runs / "small", [4, 16, 3], 3)
        else:
            written = float("nan")
        size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
        print(
            f"trace: {sum(sizes):,} neurons (layers {sizes}) × {args.epochs} recorded epochs = "
            f"{sum(sizes) * args.epochs / 1e6:.1f}M rows; run directory {size / 2**20:.0f} MiB; "
            f"written in {written:.1f} s ({written / args.epochs * 1000:.0f} ms per epoch, "
            "synthetic values made included)"
        )
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared)")
        rows = [(k, v) for k, v in library_figures(run, args.repeats).items()]
        apptest = apptest_figures(directory, run, args.repeats)
        rows += [(f"server (AppTest): {k}", v) for k, v in apptest.items()]
        if not args.no_browser:
            rows += [
                (f"browser: {k}", v)
                for k, v in browser_figures(directory, run, args.repeats).items()
            ]
        print(f"\n{'step':62s} {'median':>10s}  all")
        for name, values in rows:
            unit = "" if "MiB" in name else " s"
            shown = " ".join(f"{v:.2f}" for v in values)
            print(f"{name:62s} {median(values):>8.2f}{unit}  [{shown}]")
        print(f"machine load after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
