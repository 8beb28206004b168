"""Draw a sequential test's null versions on several threads, counted in their order.

A test against chance draws null versions one at a time and stops once the verdict is decided
(:mod:`nn_tracing.analysis.sequential`). Each version is independent of the others (its
randomness comes from its own index), so several can be computed at once: :func:`draw_nulls`
keeps ``workers`` versions in flight and counts the results strictly in index order, so the
versions counted, the p-value and the stopping point are exactly those of drawing them one by
one. A version computed beyond the stopping point (at most ``workers - 1`` per null) is
discarded.

Each worker thread runs its native libraries on one thread (``threadpoolctl``): one fit per
core, instead of OpenMP teams that spin-wait for each other on a loaded machine (k-means of
5000 rows: 0.55 s on one thread, 4–15 s with two OpenMP threads on the shared two-core machine,
benchmarks/analysis.py).

>>> from nn_tracing.analysis.parallel_draws import draw_nulls
>>> from nn_tracing.analysis.sequential import SequentialCount
>>> counts = {"a": SequentialCount(19)}
>>> draws = draw_nulls(["a"], lambda name, i: {"silhouette": i / 19}, counts, 0.5, workers=2)
>>> counts["a"].drawn, counts["a"].stopped_early, draws["a"].scores["silhouette"][:2]
(13, True, [0.0, 0.05263157894736842])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from threadpoolctl import threadpool_limits

from .sequential import SequentialCount

__all__ = ["Draws", "draw_nulls"]

#: ``draw(null, index) -> {"silhouette": …, other scores…}``: one null version's scores.
Draw = Callable[[str, int], dict[str, float]]


@dataclass
class Draws:
    """One null's versions as counted.

    Attributes
    ----------
    scores : ``{score name: [value of each counted version, in order]}``
    error : the error that stopped this null (one of ``errors``), or ``None``
    """

    scores: dict[str, list[float]] = field(default_factory=dict)
    error: Exception | None = None

    def add(self, result: dict[str, float]) -> None:
        for key, value in result.items():
            self.scores.setdefault(key, []).append(float(value))


def _one_thread() -> None:
    threadpool_limits(1)  # this worker's OpenMP and BLAS: one thread each


def draw_nulls(
    nulls: Sequence[str],
    draw: Draw,
    counts: dict[str, SequentialCount],
    observed: float,
    *,
    workers: int = 1,
    errors: tuple[type[Exception], ...] = (),
    on_counted: Callable[[str, int], None] | None = None,
) -> dict[str, Draws]:
    """Draw each null's versions until its :class:`SequentialCount` stops.

    Parameters
    ----------
    nulls
        The nulls, drawn in this order (a null's versions before the next null's).
    draw
        ``draw(null, index)``: the scores of one version; its ``"silhouette"`` is counted
        against ``observed``. It must depend on ``index`` only, not on the order of calls.
    counts
        Each null's counter (updated in place).
    workers
        Versions computed at once (threads, each with one-thread native libraries); 1: one by
        one in the calling thread, under the caller's thread limits.
    errors
        Exceptions that end a null (kept in :attr:`Draws.error`) instead of the whole draw.
    on_counted
        ``on_counted(null, index)`` before each version is drawn (``workers == 1``) or as it is
        counted (in the calling thread).
    """
    draws = {name: Draws() for name in nulls}
    if workers <= 1:
        for name in nulls:
            count = counts[name]
            try:
                while not count.stopped:
                    if on_counted is not None:
                        on_counted(name, count.drawn)
                    result = draw(name, count.drawn)
                    draws[name].add(result)
                    count.add(result["silhouette"], observed)
            except errors as exc:
                draws[name].error = exc
        return draws
    with ThreadPoolExecutor(workers, thread_name_prefix="null", initializer=_one_thread) as pool:
        _draw_in_parallel(pool, nulls, draw, counts, observed, draws, workers, errors, on_counted)
    return draws


def _draw_in_parallel(
    pool: ThreadPoolExecutor,
    nulls: Sequence[str],
    draw: Draw,
    counts: dict[str, SequentialCount],
    observed: float,
    draws: dict[str, Draws],
    workers: int,
    errors: tuple[type[Exception], ...],
    on_counted: Callable[[str, int], None] | None,
) -> None:
    submitted = dict.fromkeys(nulls, 0)
    finished: dict[str, dict[int, dict[str, float]]] = {name: {} for name in nulls}
    running: dict[Future[dict[str, float]], tuple[str, int]] = {}

    def active(name: str) -> bool:
        return draws[name].error is None and not counts[name].stopped

    while True:
        for name in nulls:  # fill the free workers, the first unfinished null first
            while (
                len(running) < workers
                and active(name)
                and submitted[name] < counts[name].n_max
                and submitted[name] - counts[name].drawn < workers
            ):
                running[pool.submit(draw, name, submitted[name])] = (name, submitted[name])
                submitted[name] += 1
        if not running:
            return
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in done:
            name, index = running.pop(future)
            try:
                finished[name][index] = future.result()
            except errors as exc:
                draws[name].error = draws[name].error or exc
        for name in nulls:  # count strictly in index order
            count = counts[name]
            while active(name) and count.drawn in finished[name]:
                if on_counted is not None:
                    on_counted(name, count.drawn)
                result = finished[name].pop(count.drawn)
                draws[name].add(result)
                count.add(result["silhouette"], observed)
