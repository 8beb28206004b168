"""How long a newcomer waits: a fresh server on an empty runs folder, to the demo drawn.

Each repeat starts ``streamlit run streamlit_app.py`` (the end-to-end tests' harness,
``tests/e2e/e2e_server.py``) on an empty runs folder, opens it in Debian's Chromium and
times, from the moment the server process was started:

* ``server up``: its health endpoint answers;
* ``demo written``: the moons demo's trace file is in the runs folder (the app trains it on
  the first visit, before the UMAP warm-up starts);
* ``findings drawn``: the Overview's findings box shows the demo's dead neurons;
* ``seed written``: the moons demo's second seed (for the Compare page) is in the runs
  folder — made in the background once the first page has run, so it must not move
  ``findings drawn``;
* ``digits demo``: from the click on "Load the digits demo" to its findings drawn.

First, what the spinner covers, in fresh interpreters that have imported what a server has
when its first page runs: the moons demo trained and written (torch's import included), then
the digits demo. :data:`nn_tracing.demos.DEMOS`' ``seconds`` come from these figures.

Two variants, interleaved: the app as shipped (UMAP warm-up on, started after the demo) and
``NN_TRACING_UMAP_WARMUP=0`` (no warm-up at all): equal figures say the warm-up no longer
slows the demo. The machine may be shared: the load average is printed with the medians.

    .venv/bin/python benchmarks/first_visit.py              # 3 repeats of each variant
    .venv/bin/python benchmarks/first_visit.py --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from e2e_server import BROWSER_ARGS, CHROMIUM, TIMEOUT_MS, start_server  # noqa: E402

VARIANTS = {"warm-up on (as shipped)": {}, "no warm-up": {"NN_TRACING_UMAP_WARMUP": "0"}}


def _wait_file(path: Path, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was not written within {timeout} s")
        time.sleep(0.05)
    return path.stat().st_mtime


def one_visit(browser, env: dict[str, str]) -> dict[str, float]:
    """Seconds from the server's start to each milestone of a first visit."""
    from playwright.sync_api import expect

    with tempfile.TemporaryDirectory() as folder:
        wall0, started = time.time(), time.perf_counter()
        server = start_server(Path(folder), env=env)
        try:
            up = time.perf_counter() - started
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(server.url)
            written = _wait_file(server.runs / "demo-moons.nntrace") - wall0
            expect(page.get_by_text("hidden neurons are dead").first).to_be_visible()
            drawn = time.perf_counter() - started
            _wait_file(server.runs / "demo-moons-seed1.nntrace")  # (dated before the demo)
            seed = time.time() - wall0
            clicked = time.perf_counter()
            page.get_by_role("button", name="Load the digits demo").click()
            page.wait_for_url("**trace=demo-digits**")
            expect(page.get_by_text("Findings", exact=True)).to_be_visible()
            digits = time.perf_counter() - clicked
            page.close()
        finally:
            server.stop()
    return {
        "server up": up,
        "demo written": written,
        "findings drawn": drawn,
        "seed written": seed,
        "digits demo": digits,
    }


#: Run in a fresh interpreter: what the spinner covers — the demos trained and written, after
#: the imports a server has done when its first page runs (streamlit and the app shell).
_SPINNER = """
import json, sys, tempfile, time
from pathlib import Path
import nn_tracing.ui.app  # what the server has imported when the shell runs
from nn_tracing.demos import make_demo
from nn_tracing.runs import ensure_demo_trace
folder = Path(tempfile.mkdtemp())
started = time.perf_counter()
ensure_demo_trace(folder)
moons = time.perf_counter() - started
started = time.perf_counter()
make_demo("digits", folder)
print(json.dumps({"moons": moons, "digits": time.perf_counter() - started}))
"""


def spinner_times(repeats: int) -> dict[str, float]:
    """Median seconds each demo's spinner runs (fresh interpreters, torch imported inside)."""
    import json
    import subprocess

    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", _SPINNER], cwd=ROOT, capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if CHROMIUM is None:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    spinner = spinner_times(args.repeats)
    print(
        f"the spinner (median of {args.repeats} fresh interpreters): moons demo "
        f"{spinner['moons']:.1f} s, digits demo {spinner['digits']:.1f} s",
        flush=True,
    )

    expect.set_options(timeout=TIMEOUT_MS)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            for repeat in range(args.repeats):
                for name, env in VARIANTS.items():  # interleaved
                    rows[name].append(one_visit(browser, env))
                    print(f"repeat {repeat + 1} {name}: {rows[name][-1]}", flush=True)
        finally:
            browser.close()
    print(
        f"\nmedians of {args.repeats} fresh servers (seconds from the server's start; the "
        f"digits demo from its click); load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores"
    )
    milestones = list(next(iter(rows.values()))[0])
    print(f"{'':26}" + "".join(f"{m:>16}" for m in milestones))
    medians = {}
    for name, runs in rows.items():
        medians[name] = [statistics.median(r[m] for r in runs) for m in milestones]
        print(f"{name:26}" + "".join(f"{v:16.1f}" for v in medians[name]))
    shipped, bare = medians.values()
    print(f"{'ratio':26}" + "".join(f"{a / b:16.2f}" for a, b in zip(shipped, bare)))


if __name__ == "__main__":
    main()
