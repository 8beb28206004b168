"""The demo runs: a complete trace to explore on the first visit, made in seconds.

Two demos, both with the weights of every recorded epoch kept (``keep_weights=True``), so
every view of every page works on them — the epoch slider and *Since when?* of Breadcrumbs,
the spectral features of Dynamics, the weight heatmaps and images of Neurons:

``moons``
    :data:`nn_tracing.runs.DEMO_CONFIG` — made by the app when the runs folder is empty
    (:func:`nn_tracing.runs.ensure_demo_trace`), before anything else starts in the server
    (the UMAP warm-up waits for it).
``digits``
    8×8 images of hand-written digits: each first-layer neuron's weights are an image. Made
    in the background right after the moons demo on a first start
    (:func:`make_in_background`, about a second), so the Overview's "Load the digits demo"
    opens it at once; made when asked for (:func:`make_demo`) otherwise.
``moons-seed1``
    The moons demo again with seed 1, so that the Compare page has two runs of one
    configuration to compare on the first visit (it proposes other seeds of the active run).
    Queued on a first start (:func:`make_after_page`) and made in the background only once
    the first page has been drawn (:func:`start_queued`): it never slows the first page, and
    the spinner's figures stay the moons demo's alone.

How long a demo takes is measured, not guessed: ``benchmarks/first_visit.py`` times a fresh
server from its start to the demo drawn in a real browser, and :attr:`Demo.seconds` holds the
figures it printed on the reference machine (two shared cores); the app's spinner says them.

>>> DEMOS["digits"].config.keep_weights
True
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig
from .runs import DEMO_CONFIG, DEMO_NAME, find_run, new_run_path, run_paths, runs_dir

__all__ = [
    "DEMOS",
    "Demo",
    "demo_message",
    "first_demo",
    "make_after_page",
    "make_demo",
    "make_in_background",
    "start_queued",
]


@dataclass(frozen=True)
class Demo:
    """A demo run: its run ``name`` in the runs folder, its ``config``, a ``title`` for
    buttons, and ``seconds``: the time from asking to the trace written, measured on the
    reference machine (``benchmarks/first_visit.py``), quiet and busy."""

    name: str
    config: TrainConfig
    title: str
    seconds: tuple[float, float]

    def describe(self) -> str:
        """The network in words: dataset, layers, epochs, what is kept."""
        cfg = self.config
        sizes = cfg.hidden_sizes
        layers = (
            f"{len(sizes)} hidden layers of {sizes[0]}"
            if len(set(sizes)) == 1
            else f"hidden layers of {', '.join(str(s) for s in sizes)}"
        )
        return (
            f"{cfg.dataset}, {layers} {cfg.activation} neurons, {cfg.epochs} epochs, "
            "the weights of every epoch kept"
        )


DIGITS_DEMO_CONFIG = TrainConfig(
    dataset="digits",
    hidden_sizes=(32, 32),
    activation="relu",
    epochs=20,
    batch_size=64,
    lr=0.01,
    seed=0,
    probe_size=256,
    keep_weights=True,
)

#: The demos by key. ``seconds``: what the spinner covers, (quiet, busy) on two cores —
#: benchmarks/first_visit.py's "spinner" figures: the moons demo in a fresh server (the first
#: imports of torch's optimisers and scikit-learn are most of it: ≈3.5 s quiet, 12.7 s at a
#: load average of 11), the digits demo in a server that has made the moons one (1.0 s at a
#: load of 11).
DEMOS: dict[str, Demo] = {
    "moons": Demo(DEMO_NAME, DEMO_CONFIG, "moons demo", seconds=(4.0, 15.0)),
    "digits": Demo("demo-digits", DIGITS_DEMO_CONFIG, "digits demo", seconds=(1.0, 2.0)),
    "moons-seed1": Demo(
        f"{DEMO_NAME}-seed1", DEMO_CONFIG.replace(seed=1), "moons demo (seed 1)", (1.0, 2.0)
    ),
}

_lock = threading.Lock()
#: Demos waiting for the page being drawn to finish: ``(key, directory, before)``.
_queued: list[tuple[str, Path, Path | None]] = []
logger = logging.getLogger(__name__)


def demo_message(demo: Demo) -> str:
    """What the spinner says while ``demo`` trains (plain text; the spinner adds the time)."""
    return (
        f"Training the {demo.title} ({demo.describe()}). It takes about "
        f"{demo.seconds[0]:.0f} s on a quiet two-core machine ({demo.seconds[1]:.0f} s or more "
        "on a busy one) and happens once."
    )


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread while a demo trains. A demo's layers are tiny: a second thread
    gains nothing, and on a loaded machine torch's spinning threads make training 10–20×
    slower (measured: the digits demo 38 s with two threads, 1.9 s with one, load 12 on two
    cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_and_save(demo: Demo, directory: Path, before: Path | None = None) -> Path:
    """Train ``demo`` and write its trace into ``directory``; with ``before``, dated a second
    before that run's file *before* it appears under its name (written hidden, dated, then
    renamed), so that no page ever sees it as the folder's newest run."""
    from .store import save_trace
    from .training import train

    with one_thread():
        run = train(demo.config)
    assert run.trace is not None
    run.trace.meta["demo"] = True
    path = new_run_path(demo.name, directory)
    if before is None or not before.is_file():
        return save_trace(run.trace, path)
    staged = save_trace(run.trace, directory / f".{path.name}.staged")
    stamp = before.stat().st_mtime - 1.0
    os.utime(staged, (stamp, stamp))
    os.replace(staged, path)  # the date travels with the file
    return path


def make_demo(key: str, directory: Path | None = None, *, before: Path | None = None) -> Path:
    """The path of demo ``key``'s trace in the runs folder, trained and written first if the
    folder holds no run of its name (dated before ``before``'s file, when given). Safe from
    several threads (one trains, the others wait and find its file)."""
    demo = DEMOS[key]
    directory = directory or runs_dir()
    with _lock:
        found = find_run(demo.name, directory)
        return found if found is not None else _train_and_save(demo, directory, before)


def make_in_background(
    key: str, directory: Path | None = None, *, before: Path | None = None
) -> threading.Thread:
    """Start :func:`make_demo` in a daemon thread (its errors go to the log); a visitor who
    asks for the demo meanwhile waits for this one instead of training another.

    ``before``: a run whose trace file stays the folder's newest — the new file is dated a
    second before it, so the run a new visitor opens (the newest) does not change.
    """
    directory = directory or runs_dir()

    def make() -> None:
        try:
            make_demo(key, directory, before=before)
        except Exception:  # a demo made ahead of time must never take the server down
            logger.exception("making the %s demo in the background failed", key)

    thread = threading.Thread(target=make, name=f"nn_tracing-demo-{key}", daemon=True)
    thread.start()
    return thread


def make_after_page(key: str, directory: Path | None = None, *, before: Path | None = None) -> None:
    """Queue demo ``key`` for :func:`make_in_background` once the page being drawn is done
    (:func:`start_queued`, called at the end of every script run)."""
    with _lock:
        _queued.append((key, directory or runs_dir(), before))


def start_queued() -> list[threading.Thread]:
    """Start making the queued demos in the background (one after another: they share the
    demos' lock); the threads started, none when nothing was queued."""
    with _lock:
        queued = list(_queued)
        _queued.clear()
    return [make_in_background(key, folder, before=before) for key, folder, before in queued]


def first_demo(directory: Path | None = None) -> Path | None:
    """The moons demo, trained and written if the runs folder holds no run at all; ``None``
    when it holds one (see :func:`nn_tracing.runs.ensure_demo_trace`)."""
    directory = directory or runs_dir()
    with _lock:
        if run_paths(directory):
            return None
        return _train_and_save(DEMOS["moons"], directory)
