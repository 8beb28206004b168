"""Running numba-compiled code (UMAP and its nearest-neighbour search) safely in a server.

A Streamlit server runs every session's page in a thread of one process, so two users who
project at the same time run UMAP concurrently. Numba's parallel code is not safe under every
threading layer: under ``workqueue`` (what numba falls back to where neither OpenMP nor TBB
loads) two parallel regions at once abort the whole process ("Concurrent access has been
detected"), and a process forked after OpenMP has run can hang when it runs UMAP. So:

* every numba-backed fit runs while holding :data:`NUMBA_LOCK`, one process-wide lock
  (:func:`numba_section`), whatever the threading layer — on two cores, two UMAP fits at once
  gain nothing anyway;
* ``umap`` is imported lazily, under that lock (:func:`umap_module`): importing it compiles
  dozens of functions, which costs ≈30 s without a compilation cache;
* :func:`configure` points ``NUMBA_CACHE_DIR`` at a folder the process can write (unless the
  variable is set already), which cuts ``import umap`` from ≈30 s to ≈5 s after the first
  start — but not the first fit's JIT compilation (20–67 s on two cores);
* :func:`start_warm_up` pays that JIT once per process, in a background thread, with one
  small fit and one of more than 4096 rows (above that UMAP takes another code path, the
  approximate nearest-neighbour search); a user who asks for UMAP meanwhile waits on the lock
  for the rest of it, and :func:`warm_up_status` says how far it is;
* forking after numba has run is never safe: a fork handler logs a warning if it happens;
  nn_tracing itself never forks (openTSNE and scikit-learn use threads).

Nothing here imports numba or umap at import time.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

__all__ = [
    "NUMBA_LOCK",
    "WARM_UP_ROWS",
    "WarmUpStatus",
    "configure",
    "numba_has_run",
    "numba_section",
    "start_warm_up",
    "threading_layer",
    "umap_module",
    "warm_up",
    "warm_up_status",
]

logger = logging.getLogger("nn_tracing.analysis")

#: One lock for every numba-backed computation of this process (re-entrant).
NUMBA_LOCK = threading.RLock()

#: Row counts of the warm-up fits: one below and one above UMAP's 4096-row switch to the
#: approximate nearest-neighbour search (each path compiles its own functions).
WARM_UP_ROWS: tuple[int, ...] = (300, 4200)

_CONFIGURED = False
_RAN = False
_STATE_LOCK = threading.Lock()


def _default_cache_dir() -> Path:
    """``$NN_TRACING_CACHE_DIR/numba``, else ``~/.cache/nn_tracing/numba``, else a temp folder."""
    candidates = []
    configured = os.environ.get("NN_TRACING_CACHE_DIR", "").strip()
    if configured:
        candidates.append(Path(configured) / "numba")
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    candidates.append((Path(xdg) if xdg else Path.home() / ".cache") / "nn_tracing" / "numba")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    candidates.append(Path(tempfile.gettempdir()) / f"nn_tracing-numba-{uid}")
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return candidates[-1]


def _warn_on_fork() -> None:
    if _RAN:
        logger.warning(
            "forking a process after numba (UMAP) has run: the child can hang or die when it "
            "runs UMAP; use the 'spawn' start method instead"
        )


def configure() -> str:
    """Prepare numba for this process (idempotent); returns the cache folder.

    Sets ``NUMBA_CACHE_DIR`` to a writable folder unless it is set already (numba reads it
    when it is first imported; if numba is imported already, its config is updated too), and
    installs the fork warning.
    """
    global _CONFIGURED
    with _STATE_LOCK:
        if not os.environ.get("NUMBA_CACHE_DIR"):
            os.environ["NUMBA_CACHE_DIR"] = str(_default_cache_dir())
        cache_dir = os.environ["NUMBA_CACHE_DIR"]
        numba = sys.modules.get("numba")
        if numba is not None and not getattr(numba.config, "CACHE_DIR", ""):
            numba.config.CACHE_DIR = cache_dir
        if not _CONFIGURED:
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(before=_warn_on_fork)
            _CONFIGURED = True
    return cache_dir


@contextmanager
def numba_section() -> Iterator[None]:
    """Hold :data:`NUMBA_LOCK` around numba-backed work (UMAP, pynndescent)."""
    global _RAN
    configure()
    with NUMBA_LOCK:
        _RAN = True
        yield


def numba_has_run() -> bool:
    """Whether numba-backed work has run in this process (forking is unsafe from then on)."""
    return _RAN


def umap_module() -> ModuleType:
    """``import umap``, lazily and under the lock (the import itself compiles)."""
    module = sys.modules.get("umap")
    if module is not None and hasattr(module, "UMAP"):
        return module
    with numba_section():
        import umap

        return umap


def threading_layer() -> str | None:
    """The threading layer numba chose (``omp``, ``tbb``, ``workqueue``), or ``None`` before
    any parallel numba code has run."""
    numba = sys.modules.get("numba")
    if numba is None:
        return None
    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel code has run yet
        return None


@dataclass(frozen=True)
class WarmUpStatus:
    """Where the process-wide UMAP warm-up stands.

    ``state``: ``idle`` (not started), ``running``, ``done`` or ``failed``; ``started`` and
    ``finished`` are ``time.time()`` stamps; ``steps`` the seconds each step took
    (``import``, ``fit <rows>``); ``error`` the message when it failed.
    """

    state: str = "idle"
    started: float | None = None
    finished: float | None = None
    steps: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def seconds(self) -> float | None:
        """Seconds it ran (so far, while running)."""
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


_STATUS = WarmUpStatus()
_THREAD: threading.Thread | None = None


def warm_up_status() -> WarmUpStatus:
    """The warm-up's status (cheap; safe from any thread)."""
    return _STATUS


def _set_status(**changes: object) -> None:
    global _STATUS
    with _STATE_LOCK:
        _STATUS = replace(_STATUS, **changes)  # type: ignore[arg-type]


def warm_up(
    rows: tuple[int, ...] = WARM_UP_ROWS,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Import umap and run one small fit per entry of ``rows``, so that later fits in this
    process find every function compiled. Returns the seconds of each step.

    Runs under :data:`NUMBA_LOCK`: a fit asked for meanwhile waits for the warm-up rather
    than compiling the same functions concurrently.
    """
    import numpy as np

    steps: dict[str, float] = {}
    started = time.perf_counter()
    if progress is not None:
        progress("importing umap")
    umap_module()
    steps["import"] = time.perf_counter() - started
    from .embedding import NeuronProjector  # the code path the app runs (imported late: a cycle)

    rng = np.random.default_rng(0)
    for n in rows:
        if progress is not None:
            progress(f"compiling UMAP with a fit of {n} rows")
        data = rng.normal(size=(n, 8)).astype(np.float32)
        started = time.perf_counter()
        NeuronProjector("umap", n_neighbors=10, n_epochs=20).fit(data)
        steps[f"fit {n}"] = time.perf_counter() - started
    return steps


def _run_warm_up(rows: tuple[int, ...]) -> None:
    try:
        steps = warm_up(rows)
    except Exception as exc:  # a failed warm-up must never take the server down
        logger.exception("the UMAP warm-up failed")
        _set_status(state="failed", finished=time.time(), error=f"{type(exc).__name__}: {exc}")
        return
    _set_status(state="done", finished=time.time(), steps=steps)
    logger.info("UMAP warm-up done: %s", {k: round(v, 1) for k, v in steps.items()})


def start_warm_up(rows: tuple[int, ...] = WARM_UP_ROWS) -> WarmUpStatus:
    """Start :func:`warm_up` in a daemon thread, once per process; returns the status.

    Set ``NN_TRACING_UMAP_WARMUP=0`` to switch it off (the first UMAP fit then compiles).
    """
    global _THREAD
    if os.environ.get("NN_TRACING_UMAP_WARMUP", "1").strip().lower() in ("0", "false", "no"):
        return _STATUS
    configure()
    with _STATE_LOCK:
        if _THREAD is not None:
            return _STATUS
        _THREAD = threading.Thread(
            target=_run_warm_up, args=(rows,), name="nn_tracing-umap-warm-up", daemon=True
        )
    _set_status(state="running", started=time.time())
    _THREAD.start()
    return _STATUS
