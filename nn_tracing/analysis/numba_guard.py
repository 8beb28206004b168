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
* :func:`configure` points ``NUMBA_CACHE_DIR`` at a private folder of this user (unless the
  variable is set already), which cuts ``import umap`` from ≈30 s to ≈5 s after the first
  start — but not the first fit's JIT compilation (20–67 s on two cores). Numba unpickles
  what it finds there, so a folder another user could have planted files in is never used
  (:func:`private_cache_dir`);
* :func:`fit_umap` is the one way UMAP is fitted (``NeuronProjector("umap")`` calls it):
  under the lock, with exact nearest neighbours from scikit-learn below
  :data:`UMAP_EXACT_BELOW` rows;
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
import stat
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

import numpy as np

__all__ = [
    "NUMBA_LOCK",
    "UMAP_EXACT_BELOW",
    "WARM_UP_ROWS",
    "WarmUpStatus",
    "configure",
    "fit_umap",
    "numba_has_run",
    "numba_section",
    "private_cache_dir",
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
#: Below this many rows UMAP gets exact nearest neighbours from scikit-learn (see
#: :func:`fit_umap`); above, its own approximate search (pynndescent).
UMAP_EXACT_BELOW = 4096

_CONFIGURED = False
_RAN = False
_STATE_LOCK = threading.Lock()


def _is_private(folder: Path) -> bool:
    """Whether ``folder`` is a real directory (not a symlink) of this user that nobody else
    can write to, and that this process can write to."""
    try:
        info = folder.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def _make_private(folder: Path) -> Path | None:
    """``folder``, created with mode 0o700 if missing, when it is private (:func:`_is_private`);
    ``None`` when it cannot be made or is not private."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return folder if _is_private(folder) else None


def private_cache_dir(candidate: Path) -> Path:
    """``candidate`` if it is, or can be created as, a private folder of this user; otherwise a
    fresh folder from :func:`tempfile.mkdtemp` (private by construction).

    Private means: a real directory, not a symlink, owned by this user, with no group or
    other write permission. Numba's cache unpickles the files it finds, so a folder another
    user created first (in a shared ``/tmp``, say) could make this process run their code.
    """
    folder = _make_private(Path(candidate))
    if folder is not None:
        return folder
    logger.warning(
        "not using %s as the numba cache: it is not a private folder of this user", candidate
    )
    return Path(tempfile.mkdtemp(prefix="nn_tracing-numba-"))


def _default_cache_dir() -> Path:
    """``$NN_TRACING_CACHE_DIR/numba`` (the owner's explicit choice: only checked to be
    writable), else ``~/.cache/nn_tracing/numba`` if private, else a private temp folder."""
    configured = os.environ.get("NN_TRACING_CACHE_DIR", "").strip()
    if configured:
        folder = Path(configured) / "numba"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
        else:
            if os.access(folder, os.W_OK | os.X_OK):
                return folder
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    home = _make_private((Path(xdg) if xdg else Path.home() / ".cache") / "nn_tracing" / "numba")
    if home is not None:
        return home
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return private_cache_dir(Path(tempfile.gettempdir()) / f"nn_tracing-numba-{uid}")


def _warn_on_fork() -> None:
    if _RAN:
        logger.warning(
            "forking a process after numba (UMAP) has run: the child can hang or die when it "
            "runs UMAP; use the 'spawn' start method instead"
        )


def configure() -> str:
    """Prepare numba for this process (idempotent); returns the cache folder.

    Sets ``NUMBA_CACHE_DIR`` to a private folder unless it is set already (numba reads it
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


def fit_umap(
    X: np.ndarray,
    *,
    n_components: int = 2,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    random_state: int | None = None,
    n_jobs: int = -1,
    n_epochs: int = 200,
    progress: Callable[[float, str], None] | None = None,
) -> np.ndarray:
    """Fit UMAP to rows ``X`` of shape (n_rows, n_features) and return the embedding, array of
    shape (n_rows, n_components), holding :data:`NUMBA_LOCK` while numba code runs.

    The parameters are umap-learn's (``n_neighbors`` must be below ``n_rows``); ``progress``
    is called as ``progress(fraction, what)``. Below :data:`UMAP_EXACT_BELOW` rows the exact
    nearest neighbours come from scikit-learn: umap-learn computes them by calling its numba
    distance once per pair from Python (through scikit-learn's ``pairwise_distances``), 50–110 s
    at 3800 rows, where scikit-learn's vectorised search finds the same neighbours in
    milliseconds.
    """

    def report(fraction: float, what: str) -> None:
        if progress is not None:
            progress(fraction, what)

    n = X.shape[0]
    umap = umap_module()
    precomputed: tuple[np.ndarray | None, np.ndarray | None, None] = (None, None, None)
    if n < UMAP_EXACT_BELOW:
        from sklearn.neighbors import NearestNeighbors

        report(0.12, f"exact nearest neighbours of {n} rows")
        search = NearestNeighbors(n_neighbors=n_neighbors, metric=metric).fit(X)
        distances, indices = search.kneighbors(X)
        precomputed = (indices.astype(np.int32), distances.astype(np.float32), None)
    model = umap.UMAP(
        n_components=n_components,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        random_state=random_state,
        n_jobs=n_jobs,
        n_epochs=n_epochs,
        # a spectral start fails on tiny or disconnected graphs; a random start is robust
        init="spectral" if n > 20 else "random",
        precomputed_knn=precomputed,
    )
    waiting = (
        "waiting for UMAP's one-time compilation to finish"
        if warm_up_status().state == "running"
        else f"UMAP on {n} rows"
    )
    report(0.1, waiting)
    with numba_section(), warnings.catch_warnings():
        # without a search index UMAP cannot transform new rows, which is not needed here
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        report(0.15, f"UMAP on {n} rows")
        return model.fit_transform(X)


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
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, float]:
    """Import umap and run one small fit per entry of ``rows``, so that later fits in this
    process find every function compiled. Returns the seconds of each step.

    Runs under :data:`NUMBA_LOCK`: a fit asked for meanwhile waits for the warm-up rather
    than compiling the same functions concurrently. ``progress(fraction, message)`` (a
    :data:`nn_tracing.progress.Progress`; this leaf module imports nothing of the package)
    before each step.
    """

    def report(done: int, what: str) -> None:
        if progress is not None:
            progress(done / (1 + len(rows)), what)

    steps: dict[str, float] = {}
    started = time.perf_counter()
    report(0, "importing umap")
    umap_module()
    steps["import"] = time.perf_counter() - started
    rng = np.random.default_rng(0)
    for i, n in enumerate(rows, start=1):
        report(i, f"compiling UMAP with a fit of {n} rows")
        data = rng.normal(size=(n, 8)).astype(np.float32)
        started = time.perf_counter()
        fit_umap(data, n_neighbors=10, n_epochs=20)  # the code path NeuronProjector runs
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
