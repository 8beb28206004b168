"""How long an analysis will take, and how many threads to give it now.

A server must know both before it starts slow work: the app shows the estimates on its buttons
and starts work that is quick without a click, and the projectors take the threads that nothing
else is running on.

* **Cost models** (rough seconds on two cores, fitted to ``benchmarks/analysis.py``):
  :func:`estimate_seconds` for a projector or clusterer, :func:`silhouette_seconds`,
  :func:`chance_test_seconds` for a test against chance, :func:`reinitialisation_seconds` for
  one fresh initialisation of a traced network (the ``untrained`` null).
* **Load sensing**: :func:`available_threads`, the cores that no other process is running on
  (Linux ``/proc/loadavg``, minus this process's own running threads).
* **Size switches**: the row and feature counts at which the analyses change method for speed
  or memory (:data:`OPENTSNE_FROM`, :data:`PCA_FIRST`, :data:`AGGLOMERATIVE_MAX`). The
  estimates follow the same switches, so they are defined here, once.

>>> from nn_tracing.analysis import cost
>>> cost.estimate_seconds("pca", 1000) < cost.estimate_seconds("pca", 20000)
True
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING

import numpy as np

from . import numba_guard

if TYPE_CHECKING:
    from ..trace import NetworkTrace

__all__ = [
    "AGGLOMERATIVE_MAX",
    "CHANCE_PARALLEL_FROM",
    "CHANCE_WORKERS",
    "OPENTSNE_FROM",
    "PCA_FIRST",
    "UMAP_JIT_SECONDS",
    "available_threads",
    "chance_test_seconds",
    "chance_workers",
    "estimate_seconds",
    "reinitialisation_seconds",
    "silhouette_seconds",
]

# -- size switches -------------------------------------------------------------------------------
#: Features wider than this are reduced to this many principal components before t-SNE/UMAP
#: (and before clustering).
PCA_FIRST = 50
#: From this many rows on, t-SNE runs on openTSNE (FFT-accelerated, parallel), below on
#: scikit-learn (faster to start on small inputs). Measured: benchmarks/analysis.py.
OPENTSNE_FROM = 1000
#: Agglomerative clustering needs O(N²) memory (3 GB at 20k neurons): above this many rows it
#: clusters a random sample and gives every other row the cluster of the nearest centroid.
AGGLOMERATIVE_MAX = 5000
#: From this many rows on (clustering the features, not the map), a test against chance draws
#: :data:`CHANCE_WORKERS` null versions side by side, each fit on one thread.
CHANCE_PARALLEL_FROM = 2000
#: Null versions a test against chance draws at once (at most the cores).
CHANCE_WORKERS = 2

# -- cost models ---------------------------------------------------------------------------------
#: UMAP's one-time compilation in a process on two cores: its first fit pays numba's JIT
#: (measured with numba 0.68: +8–9 s below 4096 rows, +24–32 s above; measured with
#: benchmarks/analysis.py: the first fit in a fresh process 20–67 s, the background warm-up
#: 62 s).
UMAP_JIT_SECONDS = 60.0
#: Seconds ≈ a + b · n^p per method, measured on two cores (benchmarks/analysis.py).
_COST: dict[str, tuple[float, float, float]] = {
    "pca": (0.02, 2e-6, 1.0),
    "tsne:sklearn": (0.3, 1.25e-3, 1.25),
    "tsne:opentsne": (1.0, 1.45e-3, 1.14),
    "umap": (0.8, 4.5e-4, 1.0),
    "kmeans": (0.05, 5.2e-7, 1.7),  # PCA to 50 components first above 50 features
    "hdbscan": (0.05, 3e-8, 2.0),
    "agglomerative": (0.05, 1.2e-7, 2.0),
}


def estimate_seconds(method: str, n_rows: int, *, n_features: int = 50) -> float:
    """A rough estimate of how long ``method`` (a projector or clusterer) takes on ``n_rows``
    rows on a two-core machine, before it starts (features are reduced to 50 dimensions first
    for t-SNE and UMAP; HDBSCAN grows with the dimension, which is taken into account).

    UMAP's one-time compilation (:data:`UMAP_JIT_SECONDS`) is added while it has not been
    warmed up.
    """
    key = method
    if method == "tsne":
        key = "tsne:opentsne" if n_rows >= OPENTSNE_FROM else "tsne:sklearn"
    if method == "agglomerative":
        n_rows = min(n_rows, AGGLOMERATIVE_MAX)
    a, b, p = _COST[key]
    seconds = a + b * float(n_rows) ** p
    if method == "hdbscan":
        seconds *= max(1.0, min(n_features, PCA_FIRST) / 8.0)
    status = numba_guard.warm_up_status()
    if method == "umap" and status.state == "running":
        seconds += max(5.0, UMAP_JIT_SECONDS - (status.seconds or 0.0))
    elif method == "umap" and status.state != "done":
        seconds += UMAP_JIT_SECONDS
    return float(seconds) if math.isfinite(seconds) else float("inf")


def silhouette_seconds(n_rows: int, n_features: int = 50) -> float:
    """A rough estimate of the exact silhouette on two cores: ≈4 s for 20 000 rows × 50
    features (O(N²·d); measured in benchmarks/analysis.py)."""
    return 1.05e-8 * float(n_rows) ** 2 * (0.8 + min(n_features, 4096) / 300.0)


def chance_test_seconds(
    n_rows: int,
    n_features: int,
    method: str,
    *,
    projector: str | None = None,
    n_permutations: int = 50,
    n_nulls: int = 2,
    max_neurons: int | None = None,
) -> float:
    """A rough estimate of a test against chance on two cores, before it starts: one fit and
    silhouette of the real rows and of every null version.

    Parameters
    ----------
    n_rows, n_features
        The feature rows tested.
    method
        The clusterer (``kmeans``, ``hdbscan``, ``agglomerative``).
    projector
        The projector when the clusters are found on the 2-D map (every version is projected
        too), else ``None``.
    n_permutations, n_nulls
        Versions per null model, and null models.
    max_neurons
        Rows scored at most (a random sample above it); ``None``: every row.

    The null versions are drawn :func:`chance_workers` at a time. The ``untrained`` null's
    fresh initialisations come on top (:func:`reinitialisation_seconds`, as many at a time).
    """
    rows = n_rows if max_neurons is None else min(n_rows, max_neurons)
    one = estimate_seconds(method, rows, n_features=n_features)
    one += silhouette_seconds(rows, 2 if projector is not None else n_features)
    if projector is not None:
        one += estimate_seconds(projector, rows, n_features=n_features)
        one = max(one, 0.0)
    workers = chance_workers(rows, projector)
    return float(one + n_permutations * n_nulls * one / workers)


def chance_workers(n_rows: int, projector: str | None = None) -> int:
    """Null versions a test against chance on ``n_rows`` rows draws at once: one below
    :data:`CHANCE_PARALLEL_FROM` rows or when clustering the map (projections use the threads
    themselves), else :data:`CHANCE_WORKERS` (at most the cores)."""
    if projector is not None or n_rows < CHANCE_PARALLEL_FROM:
        return 1
    return max(1, min(CHANCE_WORKERS, os.cpu_count() or 1))


def reinitialisation_seconds(trace: NetworkTrace) -> float:
    """A rough estimate of one fresh initialisation of ``trace``'s network, traced at ``E_0``
    on its probe set (one version of the ``untrained`` null).

    It grows with the weights: 0.12 s at 700 parameters (a warm server), 1.1 s at 2.7 M, 5 s
    at 44 M on two loaded cores (benchmarks/analysis.py). Without a parameter count in
    ``trace.meta["model"]`` the network is taken to hold 2000 parameters per neuron.
    """
    model = trace.meta.get("model")
    n_parameters = model.get("n_parameters") if isinstance(model, dict) else None
    if not isinstance(n_parameters, (int, float)):
        n_parameters = 2000.0 * trace.n_neurons
    return 0.12 + 1.2e-7 * float(n_parameters)


# -- load sensing --------------------------------------------------------------------------------
def _own_running_threads() -> int:
    """Threads of this process running right now (Linux ``/proc/self/task``), at least 1 (the
    caller). OpenMP and BLAS threads keep spinning for a while after a parallel region: they
    are ours, not another process's load."""
    running = 0
    try:
        for task in os.scandir("/proc/self/task"):
            try:
                with open(os.path.join(task.path, "stat")) as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            running += state == "R"
    except OSError:
        return 1
    return max(running, 1)


def _running_elsewhere(samples: int = 5) -> float | None:
    """Threads of other processes running right now (Linux ``/proc/loadavg`` minus this
    process's running threads; the median of a few samples 10 ms apart), or ``None`` where that
    cannot be read."""
    counts = []
    try:
        for _ in range(samples):
            with open("/proc/loadavg") as handle:
                running = int(handle.read().split()[3].split("/")[0])
            counts.append(max(running - _own_running_threads(), 0))
            time.sleep(0.01)
    except (OSError, ValueError, IndexError):
        return None
    return float(np.median(counts))


def available_threads(max_threads: int = 2) -> int:
    """Threads worth using now: the cores that nothing else is running on (at least one).

    On a shared two-core machine, OpenMP threads that spin-wait for a core another process
    holds make t-SNE much slower than one thread (measured at 5000 rows with one other process
    busy: openTSNE 54 s on two threads, 34 s on one; scikit-learn's t-SNE of 1000 rows 41 s vs
    9.7 s at a load of 3.4), while on an idle machine two threads are ≈1.5× faster than one.
    """
    cores = os.cpu_count() or 1
    others = _running_elsewhere()
    if others is None:
        try:
            others = max(os.getloadavg()[0] - 1.0, 0.0)  # the 1-minute load includes us
        except OSError:
            others = 0.0
    return int(max(1, min(max_threads, cores - round(others))))
